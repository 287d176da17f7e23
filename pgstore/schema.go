package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions, in order; version n is
// migrations[n-1]. "%[1]s" stands for the quoted schema. Never edit one
// that has shipped: append.
var migrations = []string{
	// 1: keys and values, bucket sequences.
	`CREATE TABLE %[1]s.batch_kv (
		bucket text COLLATE "C" NOT NULL,
		key bytea NOT NULL,
		value bytea NOT NULL,
		PRIMARY KEY (bucket, key)
	);
	CREATE TABLE %[1]s.batch_seq (
		bucket text COLLATE "C" PRIMARY KEY,
		seq bigint NOT NULL
	)`,
	// 2: leases of jobs (and of anything else one process must do).
	`CREATE TABLE %[1]s.batch_leases (
		name text COLLATE "C" PRIMARY KEY,
		owner text NOT NULL,
		expires_at timestamptz NOT NULL
	);
	CREATE INDEX batch_leases_owner ON %[1]s.batch_leases (owner)`,
	// 3: rate-limited requests, shared by every server.
	`CREATE TABLE %[1]s.batch_rate_hits (
		key text COLLATE "C" NOT NULL,
		at timestamptz NOT NULL
	);
	CREATE INDEX batch_rate_hits_key_at ON %[1]s.batch_rate_hits (key, at)`,
}

// migrate brings the schema to the latest version. A session advisory lock
// makes processes that start together take turns; each version commits with
// its row in batch_migrations.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer conn.Release()
	key := lockKey(schema, "migrate")
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("pgstore: migrate lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", key) //nolint:errcheck // the session ends with the connection anyway
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %[1]s;
		CREATE TABLE IF NOT EXISTS %[1]s.batch_migrations (
			version integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`, q)); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(max(version), 0) FROM %s.batch_migrations", q)).Scan(&have); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("pgstore: schema %s is at version %d, newer than this program's %d", schema, have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v-1], q)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s.batch_migrations (version) VALUES ($1)", q), v)
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migration %d: %w", v, err)
		}
	}
	return nil
}

// queries are the store's statements with the schema filled in.
type queries struct {
	get, put, del, delBucket, delSeq, nextSeq string

	claim, renew, release string

	rateSweep, rateCount, rateHit string

	scanAll, scanFrom, scanAfter, scanAllRev, scanFromRev, scanBefore string
}

func newQueries(schema string) queries {
	r := strings.NewReplacer("{kv}", schema+".batch_kv", "{seq}", schema+".batch_seq", "{leases}", schema+".batch_leases",
		"{rate}", schema+".batch_rate_hits")
	sel := "SELECT key, value FROM {kv} WHERE bucket = $1"
	return queries{
		get:       r.Replace("SELECT value FROM {kv} WHERE bucket = $1 AND key = $2"),
		put:       r.Replace("INSERT INTO {kv} (bucket, key, value) VALUES ($1, $2, $3) ON CONFLICT (bucket, key) DO UPDATE SET value = EXCLUDED.value"),
		del:       r.Replace("DELETE FROM {kv} WHERE bucket = $1 AND key = $2"),
		delBucket: r.Replace("DELETE FROM {kv} WHERE bucket = $1 OR (bucket >= $2 AND bucket < $3)"),
		delSeq:    r.Replace("DELETE FROM {seq} WHERE bucket = $1 OR (bucket >= $2 AND bucket < $3)"),
		nextSeq:   r.Replace("INSERT INTO {seq} (bucket, seq) VALUES ($1, 1) ON CONFLICT (bucket) DO UPDATE SET seq = {seq}.seq + 1 RETURNING seq"),

		// The lease goes to the caller when nobody holds it, when the caller
		// does, or when the holder let it expire; the row lock of the
		// upsert settles a race between two claimers.
		claim: r.Replace(`INSERT INTO {leases} AS l (name, owner, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
			ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
			WHERE l.owner = EXCLUDED.owner OR l.expires_at < now()
			RETURNING name`),
		renew:   r.Replace("UPDATE {leases} SET expires_at = now() + $2 * interval '1 millisecond' WHERE owner = $1 AND expires_at >= now() RETURNING name"),
		release: r.Replace("DELETE FROM {leases} WHERE name = $1 AND owner = $2"),

		rateSweep: r.Replace("DELETE FROM {rate} WHERE key = $1 AND at <= $2"),
		rateCount: r.Replace("SELECT count(*), coalesce(min(at), $2) FROM {rate} WHERE key = $1"),
		rateHit:   r.Replace("INSERT INTO {rate} (key, at) VALUES ($1, $2)"),

		scanAll:     r.Replace(sel + " ORDER BY key LIMIT $2"),
		scanFrom:    r.Replace(sel + " AND key >= $3 ORDER BY key LIMIT $2"),
		scanAfter:   r.Replace(sel + " AND key > $3 ORDER BY key LIMIT $2"),
		scanAllRev:  r.Replace(sel + " ORDER BY key DESC LIMIT $2"),
		scanFromRev: r.Replace(sel + " AND key <= $3 ORDER BY key DESC LIMIT $2"),
		scanBefore:  r.Replace(sel + " AND key < $3 ORDER BY key DESC LIMIT $2"),
	}
}

// SchemaVersion is the schema version this package migrates to.
var SchemaVersion = len(migrations)

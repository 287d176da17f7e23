// Package pgstore is a [batch.Store] on PostgreSQL, so that several engine
// processes can share one database.
//
// Open takes a connection string, creates the package's tables in the
// chosen schema and migrates them (versioned migrations under an advisory
// lock, so processes starting together are safe). The store is plain SQL
// with no extensions: one table of keys and values per bucket name, one of
// bucket sequences.
//
// Every Update takes a transaction-scoped advisory lock of the schema, so
// updates from all processes run one at a time, exactly as the [batch.Store]
// contract asks; views are REPEATABLE READ read-only transactions and see
// the state of the last committed update when they began. Writes inside an
// update are pipelined to the server and sent at commit or before a read
// they could change.
//
// The store is a [batch.Claimer]: processes lease jobs, ranges of a job's
// items and the leader's work in a table of leases. Each lease carries a
// fencing token that changes whenever the lease changes hands, and an
// update checks it ([batch.LeaseTx]) before it stores the outcomes of items
// run under the lease, so a process that stalled past its lease cannot
// store outcomes of items another process took over.
package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batchworks/batch"
)

// Options configure [Open]. The zero value is ready to use.
type Options struct {
	// Schema holds the package's tables; it is created when missing.
	// Default "public".
	Schema string
	// MaxConns bounds the connection pool. Default 16.
	MaxConns int32
	// LeaseTTL is how long a job lease outlives its last renewal: how
	// long the jobs of a process that died wait before another process
	// takes them over. Default [DefaultLeaseTTL].
	LeaseTTL time.Duration
}

// Store is the PostgreSQL [batch.Store]. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	schema  string
	lockKey int64
	q       queries
	owner   string
	ttl     time.Duration

	// wmu serializes this process's updates before they queue for the
	// advisory lock, so they do not each hold a connection while waiting.
	wmu sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc

	// channel is the schema's LISTEN/NOTIFY channel; a goroutine listens
	// on it on a connection of its own, delivers to notified, and closes
	// listenDone when it ends at Close.
	channel    string
	notified   chan struct{}
	listenDone chan struct{}
}

var _ batch.Store = (*Store)(nil)

// ErrReadOnly is returned by a write inside View.
var ErrReadOnly = errors.New("pgstore: write in a read-only transaction")

// Open connects to the database named by connString, creates or migrates
// the schema, and returns the store.
func Open(ctx context.Context, connString string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 16
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connection string: %w", err)
	}
	cfg.MaxConns = o.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := &Store{
		pool:       pool,
		schema:     o.Schema,
		lockKey:    lockKey(o.Schema, "update"),
		q:          newQueries(pgx.Identifier{o.Schema}.Sanitize()),
		owner:      newOwner(),
		ttl:        o.LeaseTTL,
		channel:    notifyChannel(o.Schema),
		notified:   make(chan struct{}, 1),
		listenDone: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := migrate(ctx, pool, o.Schema); err != nil {
		s.cancel()
		pool.Close()
		return nil, err
	}
	// Listen before returning, so that a store that was opened hears what
	// is notified from then on; a failure here is retried in the
	// background (notifications only make the engine look sooner).
	conn, err := s.listen(ctx)
	if err != nil {
		conn = nil
	}
	go s.listenLoop(conn)
	return s, nil
}

// Pool returns the store's connection pool, for callers that keep their own
// tables beside the store's.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema that holds the store's tables.
func (s *Store) Schema() string { return s.schema }

// lockKey derives an advisory lock key from the schema and a purpose.
func lockKey(schema, purpose string) int64 {
	h := fnv.New64a()
	h.Write([]byte("batch\x00" + schema + "\x00" + purpose))
	return int64(h.Sum64())
}

// View runs fn in a read-only REPEATABLE READ transaction.
func (s *Store) View(fn func(batch.Tx) error) error {
	ctx := s.ctx
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("pgstore: begin view: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a read-only tx has nothing to lose
	return fn(&storeTx{ctx: ctx, tx: tx, q: &s.q})
}

// Update runs fn in a read-write transaction holding the schema's update
// lock, and commits it when fn returns nil.
func (s *Store) Update(fn func(batch.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ctx := s.ctx
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin update: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey); err != nil {
		_ = tx.Rollback(context.Background())
		return fmt.Errorf("pgstore: update lock: %w", err)
	}
	t := &storeTx{ctx: ctx, tx: tx, q: &s.q, writable: true}
	err = fn(t)
	if err == nil {
		err = t.flush()
	}
	if err != nil {
		_ = tx.Rollback(context.Background())
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return nil
}

// Close stops listening for notifications and closes the pool. No call
// may follow it.
func (s *Store) Close() error {
	s.cancel()
	<-s.listenDone
	s.pool.Close()
	return nil
}

// storeTx is one transaction. Writes queue in batch and go to the server
// when the batch grows, at commit, and before a read they could change: a
// scan, or a Get of a key with a queued write. A Get of another key reads
// at once, so a transaction that checks a key before each write (a create
// does) costs one round trip a key, not two.
type storeTx struct {
	ctx      context.Context
	tx       pgx.Tx
	q        *queries
	writable bool
	batch    pgx.Batch
	// queued are the bucket and key ("bucket\x00key") of each queued
	// write; wide is set when a queued write covers whole buckets.
	queued map[string]struct{}
	wide   bool
	err    error // a failed pipelined write poisons the transaction
}

// flushAt is the number of queued writes sent in one round trip.
const flushAt = 512

func (t *storeTx) flush() error {
	if t.err != nil {
		return t.err
	}
	if t.batch.Len() == 0 {
		return nil
	}
	br := t.tx.SendBatch(t.ctx, &t.batch)
	err := br.Close()
	t.batch = pgx.Batch{}
	clear(t.queued)
	t.wide = false
	if err != nil {
		t.err = fmt.Errorf("pgstore: write: %w", err)
	}
	return t.err
}

func (t *storeTx) queue(sql string, args ...any) error {
	if !t.writable {
		return ErrReadOnly
	}
	if t.err != nil {
		return t.err
	}
	t.batch.Queue(sql, args...)
	if t.batch.Len() >= flushAt {
		return t.flush()
	}
	return nil
}

// queuedKey names a key in queued.
func queuedKey(bucket string, key []byte) string { return bucket + "\x00" + string(key) }

// mark notes a queued write of key in bucket.
func (t *storeTx) mark(bucket string, key []byte) {
	if t.queued == nil {
		t.queued = make(map[string]struct{})
	}
	t.queued[queuedKey(bucket, key)] = struct{}{}
}

func (t *storeTx) Get(bucket string, key []byte) []byte {
	if t.err != nil {
		return nil
	}
	if _, ok := t.queued[queuedKey(bucket, key)]; ok || t.wide {
		if t.flush() != nil {
			return nil
		}
	}
	var v []byte
	err := t.tx.QueryRow(t.ctx, t.q.get, bucket, key).Scan(&v)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			t.err = fmt.Errorf("pgstore: get: %w", err)
		}
		return nil
	}
	if v == nil {
		v = []byte{}
	}
	return v
}

func (t *storeTx) Put(bucket string, key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	t.mark(bucket, key)
	return t.queue(t.q.put, bucket, bytes.Clone(key), bytes.Clone(value))
}

func (t *storeTx) Delete(bucket string, key []byte) error {
	t.mark(bucket, key)
	return t.queue(t.q.del, bucket, bytes.Clone(key))
}

func (t *storeTx) DeleteBucket(bucket string) error {
	// Nested buckets are the names that start with bucket+"/"; under the C
	// collation they sort in [bucket+"/", bucket+"0").
	t.wide = true
	if err := t.queue(t.q.delBucket, bucket, bucket+"/", bucket+"0"); err != nil {
		return err
	}
	return t.queue(t.q.delSeq, bucket, bucket+"/", bucket+"0")
}

func (t *storeTx) Scan(bucket string, from []byte, fn func(key, value []byte) bool) error {
	return t.scan(bucket, from, false, fn)
}

func (t *storeTx) ScanReverse(bucket string, from []byte, fn func(key, value []byte) bool) error {
	return t.scan(bucket, from, true, fn)
}

// scan reads the bucket in pages that grow from a few rows (a scan that
// stops early costs little) to a thousand, and hands each page to fn after
// its rows are closed, so fn may use the transaction.
func (t *storeTx) scan(bucket string, from []byte, reverse bool, fn func(key, value []byte) bool) error {
	if err := t.flush(); err != nil {
		return err
	}
	limit := 32
	inclusive := true
	cur := from
	for {
		var sql string
		switch {
		case cur == nil && !reverse:
			sql = t.q.scanAll
		case cur == nil:
			sql = t.q.scanAllRev
		case !reverse && inclusive:
			sql = t.q.scanFrom
		case !reverse:
			sql = t.q.scanAfter
		case inclusive:
			sql = t.q.scanFromRev
		default:
			sql = t.q.scanBefore
		}
		args := []any{bucket, limit}
		if cur != nil {
			args = append(args, cur)
		}
		rows, err := t.tx.Query(t.ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("pgstore: scan: %w", err)
		}
		var keys, vals [][]byte
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return fmt.Errorf("pgstore: scan: %w", err)
			}
			keys, vals = append(keys, k), append(vals, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pgstore: scan: %w", err)
		}
		for i := range keys {
			if !fn(keys[i], vals[i]) {
				return nil
			}
		}
		if len(keys) < limit {
			return nil
		}
		cur, inclusive = keys[len(keys)-1], false
		limit = min(limit*4, 1024)
	}
}

func (t *storeTx) NextSequence(bucket string) (uint64, error) {
	if !t.writable {
		return 0, ErrReadOnly
	}
	if err := t.flush(); err != nil {
		return 0, err
	}
	var n int64
	if err := t.tx.QueryRow(t.ctx, t.q.nextSeq, bucket).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: sequence: %w", err)
	}
	return uint64(n), nil
}

package pgstore_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/batchtest"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// open opens a store on a fresh schema of the test cluster.
func open(t *testing.T) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), pgtest.URL(t), &pgstore.Options{Schema: pgtest.Schema(t), MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreConformance(t *testing.T) {
	t.Parallel()
	batchtest.TestStore(t, func(t *testing.T) batch.Store { return open(t) })
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := pgstore.Open(t.Context(), "host=/nonexistent port=1 connect_timeout=1", nil)
	require.Error(t, err, "no server")
	_, err = pgstore.Open(t.Context(), "postgres://%zz", nil)
	require.ErrorContains(t, err, "connection string")

	// A schema migrated by a newer program is refused, not downgraded.
	s := open(t)
	_, err = s.Pool().Exec(t.Context(), "INSERT INTO "+s.Schema()+".batch_migrations (version) VALUES (999)")
	require.NoError(t, err)
	_, err = pgstore.Open(t.Context(), pgtest.URL(t), &pgstore.Options{Schema: s.Schema()})
	require.ErrorContains(t, err, "newer")
}

// TestReadsSeeQueuedWrites checks that a read inside an update sees the
// writes queued before it: a Get of a key just put or deleted, a Get in a
// bucket just deleted, and a Get of another key (read without sending the
// queue) all answer as if every write had been sent.
func TestReadsSeeQueuedWrites(t *testing.T) {
	t.Parallel()
	s := open(t)
	require.NoError(t, s.Update(func(tx batch.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if err := tx.Put("b", []byte(k), []byte("old")); err != nil {
				return err
			}
		}
		return tx.Put("gone", []byte("k"), []byte("v"))
	}))
	require.NoError(t, s.Update(func(tx batch.Tx) error {
		require.NoError(t, tx.Put("b", []byte("a"), []byte("new")))
		require.NoError(t, tx.Delete("b", []byte("b")))
		require.Equal(t, []byte("old"), tx.Get("b", []byte("c")), "another key")
		require.Equal(t, []byte("new"), tx.Get("b", []byte("a")), "a key just put")
		require.Nil(t, tx.Get("b", []byte("b")), "a key just deleted")
		require.NoError(t, tx.DeleteBucket("gone"))
		require.Nil(t, tx.Get("gone", []byte("k")), "a key of a bucket just deleted")
		require.NoError(t, tx.Put("b", []byte("d"), []byte("later")))
		require.Equal(t, []byte("later"), tx.Get("b", []byte("d")), "a key put after a send")
		return nil
	}))
}

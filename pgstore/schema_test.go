package pgstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	stores := make([]*pgstore.Store, 6)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(context.Background(), url, &pgstore.Options{Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "process %d", i)
		defer stores[i].Close()
	}
	var n int
	require.NoError(t, stores[0].Pool().QueryRow(t.Context(),
		"SELECT count(*) FROM "+schema+".batch_migrations").Scan(&n))
	require.Equal(t, pgstore.SchemaVersion, n, "every migration applied once")
	// All of them see one store.
	require.NoError(t, stores[1].Update(func(tx batch.Tx) error { return tx.Put("b", []byte("k"), []byte("v")) }))
	require.NoError(t, stores[5].View(func(tx batch.Tx) error {
		require.Equal(t, []byte("v"), tx.Get("b", []byte("k")))
		return nil
	}))
}

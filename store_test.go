package batch_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/batchtest"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	batchtest.TestStore(t, func(t *testing.T) batch.Store {
		s := batch.NewMemoryStore()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore(t *testing.T) {
	t.Parallel()
	batchtest.TestStore(t, func(t *testing.T) batch.Store {
		s, err := batch.OpenBoltStore(filepath.Join(t.TempDir(), "store.db"), nil)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore_SecondOpenTimesOut(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := batch.OpenBoltStore(path, nil)
	require.NoError(t, err)
	defer s.Close()
	_, err = batch.OpenBoltStore(path, &batch.BoltOptions{Timeout: 50 * 1e6})
	require.Error(t, err)
}

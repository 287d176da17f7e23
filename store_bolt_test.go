package batch_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/batchtest"
)

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
	require.ErrorContains(t, err, "locked by another process")
}

func TestBoltStore_ScansMatchAModel(t *testing.T) {
	t.Parallel()
	s, err := batch.OpenBoltStore(filepath.Join(t.TempDir(), "store.db"), &batch.BoltOptions{NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	requireScansMatchModel(t, s)
}

// What an update stored is there after the file is closed and opened
// again: keys of nested buckets and sequences.
func TestBoltStore_Reopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := batch.OpenBoltStore(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Update(func(tx batch.Tx) error {
		if _, err := tx.NextSequence("items/job1"); err != nil {
			return err
		}
		return tx.Put("items/job1", []byte("k"), []byte("v"))
	}))
	require.NoError(t, s.Close())

	s, err = batch.OpenBoltStore(path, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Update(func(tx batch.Tx) error {
		require.Equal(t, "v", string(tx.Get("items/job1", []byte("k"))))
		seq, err := tx.NextSequence("items/job1")
		require.Equal(t, uint64(2), seq)
		return err
	}))
}

// A file that is not a store is refused with its name, and left as it was.
func TestBoltStore_RefusesAForeignFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notes.txt")
	content := []byte("these are not the pages you are looking for\n")
	for len(content) < 8192 {
		content = append(content, content...)
	}
	require.NoError(t, os.WriteFile(path, content, 0o600))
	_, err := batch.OpenBoltStore(path, nil)
	require.ErrorContains(t, err, path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, content, got)
}

// A snapshot is a store of its own holding exactly what was committed when
// it was taken.
func TestBoltStore_Snapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := batch.OpenBoltStore(filepath.Join(dir, "store.db"), nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Update(func(tx batch.Tx) error { return tx.Put("items/job1", []byte("k"), []byte("before")) }))
	snap, err := os.Create(filepath.Join(dir, "snap.db"))
	require.NoError(t, err)
	n, err := s.(batch.Snapshotter).Snapshot(snap)
	require.NoError(t, err)
	require.NoError(t, snap.Close())
	info, err := os.Stat(snap.Name())
	require.NoError(t, err)
	require.Equal(t, info.Size(), n)
	require.NoError(t, s.Update(func(tx batch.Tx) error { return tx.Put("items/job1", []byte("k"), []byte("after")) }))

	copied, err := batch.OpenBoltStore(snap.Name(), nil)
	require.NoError(t, err)
	defer copied.Close()
	require.NoError(t, copied.View(func(tx batch.Tx) error {
		require.Equal(t, "before", string(tx.Get("items/job1", []byte("k"))))
		return nil
	}))
}

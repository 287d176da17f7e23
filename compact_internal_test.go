package batch

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCompactNeverFreezesReads is observation 2's frozen store: while a
// long read transaction is open, a compaction waits for it only a bounded
// time and then gives up, and meanwhile other reads and writes are served.
func TestCompactNeverFreezesReads(t *testing.T) {
	old := compactLockWait
	compactLockWait = 500 * time.Millisecond
	defer func() { compactLockWait = old }()
	st, err := OpenBoltStore(filepath.Join(t.TempDir(), "c.db"), nil)
	require.NoError(t, err)
	defer st.Close()
	s := st.(*boltStore)
	require.NoError(t, s.Update(func(tx Tx) error { return tx.Put("b", []byte("k"), []byte("v")) }))

	release := make(chan struct{})
	reading := make(chan struct{})
	go s.View(func(Tx) error { close(reading); <-release; return nil })
	<-reading
	compacted := make(chan error, 1)
	go func() { _, _, err := s.Compact(context.Background()); compacted <- err }()

	time.Sleep(50 * time.Millisecond) // the compaction is waiting now
	served := make(chan struct{})
	go func() {
		_ = s.View(func(tx Tx) error { tx.Get("b", []byte("k")); return nil })
		close(served)
	}()
	select {
	case <-served:
	case <-time.After(2 * time.Second):
		t.Fatal("a read waited for the compaction")
	}
	select {
	case err := <-compacted:
		require.ErrorContains(t, err, "busy")
	case <-time.After(5 * time.Second):
		t.Fatal("the compaction waited for the long read without bound")
	}
	close(release)
	require.NoError(t, s.Update(func(tx Tx) error { return tx.Put("b", []byte("k2"), []byte("v")) }))
	_, _, err = s.Compact(context.Background())
	require.NoError(t, err, "with the long read gone the compaction goes through")
}

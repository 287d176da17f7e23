package batch

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCompactNeverFreezesReads is observation 2's frozen store: while a
// long read transaction is open, a compaction waits for it only a bounded
// time and then gives up, and meanwhile other reads and writes are served.
func TestCompactNeverFreezesReads(t *testing.T) {
	old := compactLockWait
	compactLockWait = 50 * time.Millisecond
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
	// The compaction, once it waits for the long read, waits on until
	// another read was served: that read comes exactly while it waits.
	waiting := make(chan struct{})
	served := make(chan struct{})
	var once sync.Once
	compactBusy = func(what string) {
		if strings.Contains(what, "reads") {
			once.Do(func() { close(waiting); <-served })
		}
	}
	defer func() { compactBusy = nil }()
	compacted := make(chan error, 1)
	go func() { _, _, err := s.Compact(context.Background()); compacted <- err }()

	<-waiting
	go func() {
		_ = s.View(func(tx Tx) error { tx.Get("b", []byte("k")); return nil })
		close(served)
	}()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("a read waited for the compaction")
	}
	select {
	case err := <-compacted:
		require.ErrorContains(t, err, "busy")
	case <-time.After(10 * time.Second):
		t.Fatal("the compaction waited for the long read without bound")
	}
	close(release)
	require.NoError(t, s.Update(func(tx Tx) error { return tx.Put("b", []byte("k2"), []byte("v")) }))
	_, _, err = s.Compact(context.Background())
	require.NoError(t, err, "with the long read gone the compaction goes through")
}

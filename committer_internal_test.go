package batch

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Writes that wait together go into one transaction: while one commit is
// held, n concurrent writes queue up, and all of them are then stored by a
// single Update of the store.
func TestCommitter_ConcurrentWritesShareOneTransaction(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: NewMemoryStore()}
	e, err := New(cs, nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	entered, gate := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- e.update(func(*wtx) error { close(entered); <-gate; return nil })
	}()
	<-entered
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = e.update(func(w *wtx) error { return w.Put("test", []byte{byte(i)}, []byte("v")) })
		})
	}
	require.Eventually(t, func() bool { return e.committer.pending() == n }, 10*time.Second, time.Millisecond)
	before := cs.updates.Load()
	close(gate)
	require.NoError(t, <-held)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), cs.updates.Load()-before, "one transaction for the waiting writes")
	require.Equal(t, n, bucketLen(t, e.store, "test"))
}

// A write that fails in a group commit is answered with its error; the
// writes that shared its transaction are committed without it.
func TestCommitter_FailedWriteLeavesTheOthers(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	boom := errors.New("refused")
	c := e.committer
	audit := bucketLen(t, e.store, bucketAuditLog)
	fail := &write{done: make(chan struct{}), fn: func(w *wtx) error {
		if err := w.Put("test", []byte("bad"), []byte("1")); err != nil {
			return err
		}
		return boom
	}}
	ok := &write{done: make(chan struct{}), fn: func(w *wtx) error {
		if err := w.Put("test", []byte("good"), []byte("1")); err != nil {
			return err
		}
		return w.event(Event{Type: EventTemplateCreated, ObjectID: "template1"})
	}}
	c.mu.Lock()
	c.writes = append(c.writes, fail, ok)
	c.mu.Unlock()
	signal(c.wake)
	<-fail.done
	<-ok.done
	require.ErrorIs(t, fail.err, boom)
	require.NoError(t, ok.err)
	require.NoError(t, e.store.View(func(tx Tx) error {
		require.Nil(t, tx.Get("test", []byte("bad")))
		require.NotNil(t, tx.Get("test", []byte("good")))
		return nil
	}))
	require.Equal(t, audit+1, bucketLen(t, e.store, bucketAuditLog), "the event of the committed write, once")
}

// A write after Close is refused with ErrClosed and stores nothing.
func TestCommitter_WriteAfterCloseRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "batch.db")
	e, err := Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, e.update(func(w *wtx) error { return w.Put("test", []byte("before"), []byte("1")) }))
	require.NoError(t, e.Close(context.Background()))
	err = e.committer.do(func(w *wtx) error { return w.Put("test", []byte("after"), []byte("1")) })
	require.ErrorIs(t, err, ErrClosed)
	s, err := OpenBoltStore(path, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.View(func(tx Tx) error {
		require.NotNil(t, tx.Get("test", []byte("before")))
		require.Nil(t, tx.Get("test", []byte("after")))
		return nil
	}))
}

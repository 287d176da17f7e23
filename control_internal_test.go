package batch

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Issue 18, observation 6: a Wait is woken by its own job only.
func TestWait_WokenOnlyByItsJob(t *testing.T) {
	t.Parallel()
	e, err := Open(filepath.Join(t.TempDir(), "batch.db"), &Options{Retention: -1})
	require.NoError(t, err)
	defer e.Close(context.Background())
	require.NoError(t, e.RegisterOperation("noop", noopOperation))
	release := make(chan struct{})
	require.NoError(t, e.RegisterOperation("hold", OperationFunc(func(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
		return &Plan{Count: 1, Item: func(int64) (Item, error) { return Item{}, nil },
			Run: func(context.Context, *Item) error { <-release; return nil }}, nil
	})))
	held, err := e.Submit(t.Context(), &Batch{Operations: []OperationSpec{{Type: "hold"}}}, nil)
	require.NoError(t, err)
	done := make(chan *Job)
	go func() {
		j, _ := e.Wait(context.Background(), held.ID)
		done <- j
	}()
	var w *jobWaiters
	require.Eventually(t, func() bool {
		e.waitMu.Lock()
		defer e.waitMu.Unlock()
		w = e.waiters[held.ID]
		return w != nil
	}, 5*time.Second, time.Millisecond)
	for range 20 {
		j, err := e.Submit(t.Context(), &Batch{Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": 1}}}}, nil)
		require.NoError(t, err)
		_, err = e.Wait(t.Context(), j.ID)
		require.NoError(t, err)
	}
	select {
	case <-w.ch:
		t.Fatal("the wait was woken by other jobs")
	default:
	}
	close(release)
	select {
	case j := <-done:
		require.Equal(t, StateCompleted, j.Status)
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end with its job")
	}
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	require.Empty(t, e.waiters, "waiters left behind")
}

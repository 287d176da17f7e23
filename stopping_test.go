package batch_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestStopping_OutsideAnItem(t *testing.T) {
	t.Parallel()
	require.Nil(t, batch.Stopping(t.Context()))
}

// longJob submits a job of n "long" items run one at a time by run, and
// returns once its first item has started.
func longJob(t *testing.T, n int, run func(ctx context.Context, it *batch.Item) error) (*testBundle, *batch.Job) {
	t.Helper()
	tb := setup(t, "bolt", nil)
	started := make(chan struct{}, n)
	require.NoError(t, tb.e.RegisterOperation("long", countingOp(func(ctx context.Context, it *batch.Item) error {
		started <- struct{}{}
		return run(ctx, it)
	})))
	job := tb.submit(t, opBatch("long", n, batch.BatchOptions{MaxConcurrent: 1}))
	<-started
	return tb, job
}

// TestStopping_Pause: the first item waits for its job to be asked to stop
// and then finishes; the pause answers once it has, and the item's context
// was never cancelled. The items run after the resume see the channel open.
func TestStopping_Pause(t *testing.T) {
	t.Parallel()
	afterResume := make(chan bool, 10)
	tb, job := longJob(t, 3, func(ctx context.Context, it *batch.Item) error {
		if it.Index > 0 {
			select {
			case <-batch.Stopping(ctx):
				afterResume <- false
			default:
				afterResume <- true
			}
			return nil
		}
		select {
		case <-batch.Stopping(ctx):
			return ctx.Err() // nil: a pause does not cancel the item
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	paused, err := tb.e.Pause(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, paused.Status)
	require.Equal(t, int64(1), paused.Progress.Completed, "the item saw the pause and finished; none started after it")
	require.Zero(t, paused.Progress.Failed)
	require.Empty(t, afterResume)

	_, err = tb.e.Resume(t.Context(), job.ID)
	require.NoError(t, err)
	done := tb.wait(t, job.ID)
	require.Equal(t, batch.StateCompleted, done.Status)
	require.Equal(t, int64(3), done.Progress.Completed)
	require.True(t, <-afterResume, "a resumed run starts with its channel open")
	require.True(t, <-afterResume)
}

// TestStopping_GiveUp: an item that gives up on a pause with
// context.Canceled stays pending, no attempt spent, and runs again from
// the start on resume; with one attempt allowed it is not failed.
func TestStopping_GiveUp(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	tb, job := longJob(t, 1, func(ctx context.Context, it *batch.Item) error {
		if runs.Add(1) > 1 {
			return nil
		}
		<-batch.Stopping(ctx)
		return fmt.Errorf("copying stopped at chunk 3: %w", context.Canceled)
	})
	paused, err := tb.e.Pause(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, paused.Status)
	require.Zero(t, paused.Progress.Completed+paused.Progress.Failed, "the item is pending")

	_, err = tb.e.Resume(t.Context(), job.ID)
	require.NoError(t, err)
	done := tb.wait(t, job.ID)
	require.Equal(t, batch.StateCompleted, done.Status)
	require.Equal(t, int64(1), done.Progress.Completed)
	require.Zero(t, done.Progress.Failed)
	require.Equal(t, int64(2), runs.Load())
}

// TestStopping_Cancel: a cancel closes the channel too, and cancels the
// item's context.
func TestStopping_Cancel(t *testing.T) {
	t.Parallel()
	cancelled := make(chan error, 1)
	tb, job := longJob(t, 1, func(ctx context.Context, it *batch.Item) error {
		<-batch.Stopping(ctx)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	})
	got, err := tb.e.Cancel(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCancelled, got.Status)
	require.ErrorIs(t, <-cancelled, context.Canceled)
}

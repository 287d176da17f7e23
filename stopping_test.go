package batch_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestStopping_OutsideAnItem(t *testing.T) {
	t.Parallel()
	require.Nil(t, batch.Stopping(t.Context()))
}

// TestStopping_Pause: the first item waits for its job to be asked to stop
// and then finishes; the pause answers once it has, and the item's context
// was never cancelled. The items run after the resume see the channel open.
func TestStopping_Pause(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	waiting := make(chan struct{})
	afterResume := make(chan bool, 10)
	require.NoError(t, tb.e.RegisterOperation("long", countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index > 0 {
			select {
			case <-batch.Stopping(ctx):
				afterResume <- false
			default:
				afterResume <- true
			}
			return nil
		}
		close(waiting)
		select {
		case <-batch.Stopping(ctx):
			return ctx.Err() // nil: a pause does not cancel the item
		case <-ctx.Done():
			return ctx.Err()
		}
	})))
	job := tb.submit(t, opBatch("long", 3, batch.BatchOptions{MaxConcurrent: 1}))
	<-waiting

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

// TestStopping_Cancel: a cancel closes the channel too, and cancels the
// item's context.
func TestStopping_Cancel(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	waiting := make(chan struct{})
	cancelled := make(chan error, 1)
	require.NoError(t, tb.e.RegisterOperation("long", countingOp(func(ctx context.Context, it *batch.Item) error {
		close(waiting)
		<-batch.Stopping(ctx)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	})))
	job := tb.submit(t, opBatch("long", 1, batch.BatchOptions{}))
	<-waiting
	got, err := tb.e.Cancel(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCancelled, got.Status)
	require.ErrorIs(t, <-cancelled, context.Canceled)
}

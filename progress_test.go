package batch_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// tokenOp registers "gated": list items that each wait for a token on gate.
func tokenOp(t *testing.T, e *batch.Engine, gate chan struct{}) {
	t.Helper()
	require.NoError(t, e.RegisterOperation("gated", countingOp(heldFrom(0, gate))))
}

func TestEngine_Progress(t *testing.T) {
	t.Parallel()
	onEachStore(t, nil, func(t *testing.T, tb *testBundle) {
		gate := make(chan struct{})
		tokenOp(t, tb.e, gate)
		job := tb.submit(t, opBatch("gated", 6, batch.BatchOptions{MaxConcurrent: 1}))
		ch, err := tb.e.Progress(t.Context(), job.ID)
		require.NoError(t, err)

		first := <-ch
		require.Equal(t, job.ID, first.ID)
		require.Contains(t, []batch.State{batch.StateQueued, batch.StateRunning}, first.Status)
		require.Zero(t, first.Progress.Completed)

		// Let one item through at a time and see each count arrive.
		var seen []*batch.Job
		for i := range 6 {
			gate <- struct{}{}
			for {
				j, ok := <-ch
				require.True(t, ok, "closed before the final state")
				seen = append(seen, j)
				if j.Progress.Completed == int64(i+1) {
					break
				}
			}
		}
		// The final state comes, then the channel closes.
		var last *batch.Job
		for j := range ch {
			last = j
		}
		if last == nil {
			last = seen[len(seen)-1]
		}
		require.Equal(t, batch.StateCompleted, last.Status)
		require.Equal(t, int64(6), last.Progress.Completed)
		for i := 1; i < len(seen); i++ {
			require.GreaterOrEqual(t, seen[i].Progress.Completed, seen[i-1].Progress.Completed, "counts never go back")
		}
	})
}

// TestEngine_ProgressCoalesces: a reader that does not read gets only the
// newest snapshot, never a backlog.
func TestEngine_ProgressCoalesces(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	require.NoError(t, tb.e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	gate := make(chan struct{})
	tokenOp(t, tb.e, gate)
	b := opBatch("gated", 1, batch.BatchOptions{})
	b.Operations = append(b.Operations, batch.OperationSpec{Type: "noop", Params: map[string]any{"count": 500}})
	job := tb.submit(t, b)
	ch, err := tb.e.Progress(t.Context(), job.ID)
	require.NoError(t, err)
	close(gate)
	tb.wait(t, job.ID) // read nothing while the job runs
	var got []*batch.Job
	for j := range ch {
		got = append(got, j)
	}
	require.LessOrEqual(t, len(got), 2, "the channel holds only the newest snapshot")
	require.Equal(t, batch.StateCompleted, got[len(got)-1].Status)
	require.Equal(t, int64(501), got[len(got)-1].Progress.Completed)
}

func TestEngine_ProgressRateIsBounded(t *testing.T) {
	t.Parallel()
	// In a bubble the items' 2ms and the snapshot interval are exact, and
	// 400 items take no real time.
	synctest.Test(t, progressRateIsBounded)
}

func progressRateIsBounded(t *testing.T) {
	tb := setup(t, "memory", nil)
	var n atomic.Int64
	require.NoError(t, tb.e.RegisterOperation("slowish", countingOp(func(ctx context.Context, it *batch.Item) error {
		n.Add(1)
		time.Sleep(2 * time.Millisecond)
		return nil
	})))
	job := tb.submit(t, opBatch("slowish", 400, batch.BatchOptions{MaxConcurrent: 1}))
	ch, err := tb.e.Progress(t.Context(), job.ID)
	require.NoError(t, err)
	start := time.Now()
	count := 0
	for range ch {
		count++
	}
	elapsed := time.Since(start)
	// The first snapshot, at most one per interval, and the final state.
	limit := 2 + int(elapsed/batch.ProgressInterval) + 1
	require.LessOrEqual(t, count, limit, "%d snapshots in %s", count, elapsed)
	require.Greater(t, count, 1)
}

func TestEngine_ProgressOfFinishedJob(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	require.NoError(t, tb.e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	job := tb.submit(t, opBatch("noop", 3, batch.BatchOptions{}))
	tb.wait(t, job.ID)
	ch, err := tb.e.Progress(t.Context(), job.ID)
	require.NoError(t, err)
	var got []*batch.Job
	for j := range ch {
		got = append(got, j)
	}
	require.Len(t, got, 1)
	require.Equal(t, batch.StateCompleted, got[0].Status)
}

func TestEngine_ProgressErrorsAndEnds(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	_, err := tb.e.Progress(t.Context(), "job_nope")
	require.ErrorIs(t, err, batch.ErrNotFound)

	gate := make(chan struct{})
	tokenOp(t, tb.e, gate)
	job := tb.submit(t, opBatch("gated", 2, batch.BatchOptions{}))
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := tb.e.Progress(ctx, job.ID)
	require.NoError(t, err)
	<-ch
	cancel()
	for range ch { // closes when ctx ends
	}
	close(gate)
	tb.wait(t, job.ID)
}

// TestEngine_Watch sees the lifecycle events in the order they happened,
// each before the snapshots that reflect it, and the final state last.
func TestEngine_Watch(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	gate := make(chan struct{})
	tokenOp(t, tb.e, gate)
	job := tb.submit(t, opBatch("gated", 40, batch.BatchOptions{MaxConcurrent: 1}))
	ch, err := tb.e.Watch(t.Context(), job.ID)
	require.NoError(t, err)

	var events []batch.EventType
	var last *batch.Job
	next := func() batch.JobUpdate {
		t.Helper()
		select {
		case u, ok := <-ch:
			require.True(t, ok)
			if u.Event != nil {
				events = append(events, u.Event.Type)
				require.Equal(t, job.ID, u.Event.JobID)
			} else {
				if last != nil && u.Job.Status == last.Status {
					require.GreaterOrEqual(t, u.Job.Progress.Completed, last.Progress.Completed)
				}
				last = u.Job
			}
			return u
		case <-time.After(30 * time.Second):
			t.Fatal("no update")
			return batch.JobUpdate{}
		}
	}
	until := func(ok func(*batch.Job) bool) {
		t.Helper()
		for last == nil || !ok(last) {
			next()
		}
	}
	until(func(j *batch.Job) bool { return j.Status == batch.StateRunning })
	gate <- struct{}{}
	until(func(j *batch.Job) bool { return j.Progress.Completed == 1 })

	// Pause waits for the item in flight.
	_, err = pauseThenOpen(t, tb.e, batch.WithPrincipal(t.Context(), "alice"), job.ID, func() { close(gate) })
	require.NoError(t, err)
	until(func(j *batch.Job) bool { return j.Status == batch.StatePaused })
	require.Contains(t, events, batch.EventJobPaused, "the event comes before the snapshot that shows it")

	_, err = tb.e.Resume(t.Context(), job.ID)
	require.NoError(t, err)
	for u := range ch {
		if u.Event != nil {
			events = append(events, u.Event.Type)
		} else {
			last = u.Job
		}
	}
	require.Equal(t, batch.StateCompleted, last.Status)
	require.Equal(t, int64(40), last.Progress.Completed)
	require.Equal(t, batch.EventJobCompleted, events[len(events)-1])
	require.Subset(t, events, []batch.EventType{batch.EventJobPaused, batch.EventJobResumed, batch.EventJobCompleted})
}

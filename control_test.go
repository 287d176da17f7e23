package batch_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// gatedOp registers "gated": items run until the gate opens, honouring
// their context; started reports each item that began.
func gatedOp(t *testing.T, tb *testBundle) (open func(), started <-chan int64) {
	gate := make(chan struct{})
	ch := make(chan int64, 10000)
	held := heldFrom(0, gate)
	require.NoError(t, tb.e.RegisterOperation("gated", countingOp(func(ctx context.Context, it *batch.Item) error {
		ch <- it.Index
		return held(ctx, it)
	})))
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }, ch
}

// heldFrom is an item handler that holds the items from index n on until
// release is closed (or gives each one a token), honouring their context.
func heldFrom(n int64, release <-chan struct{}) func(ctx context.Context, it *batch.Item) error {
	return func(ctx context.Context, it *batch.Item) error {
		if it.Index < n {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeWhileHeld opens the store at path with ops, submits a job of n
// "stepped" items run one at a time, and once done of them are done closes
// the engine at once, cancelling the item in flight: "stepped" must hold
// its items from index done on.
func closeWhileHeld(t *testing.T, path string, ops map[string]batch.Operation, n, done int64) *batch.Job {
	t.Helper()
	e, err := batch.Open(path, &batch.Options{Operations: ops})
	require.NoError(t, err)
	job, err := e.Submit(t.Context(), opBatch("stepped", int(n), batch.BatchOptions{Parallel: ptr(false)}), nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := e.Job(t.Context(), job.ID)
		return err == nil && j.Progress.Completed == done
	}, 10*time.Second, time.Millisecond)
	over, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, e.Close(over))
	return job
}

// pauseThenOpen pauses running job id as ctx's principal and opens the
// gate of its items in flight exactly once the pause has taken effect, so
// that no item can start between; it returns what Pause returned, once it
// waited for those items.
func pauseThenOpen(t *testing.T, e *batch.Engine, ctx context.Context, id string, open func()) (*batch.Job, error) {
	t.Helper()
	type result struct {
		job *batch.Job
		err error
	}
	paused := make(chan result, 1)
	go func() {
		j, err := e.Pause(ctx, id)
		paused <- result{j, err}
	}()
	require.Eventually(t, func() bool { return batch.StopRequested(e, id) || len(paused) > 0 },
		10*time.Second, 100*time.Microsecond, "the pause takes effect")
	open()
	r := <-paused
	return r.job, r.err
}

func TestEngine_PauseResume(t *testing.T) {
	t.Parallel()
	onEachStore(t, nil, func(t *testing.T, tb *testBundle) {
		open, started := gatedOp(t, tb)
		job := tb.submit(t, opBatch("gated", 20, batch.BatchOptions{MaxConcurrent: 2}))
		<-started
		<-started

		// Pause waits for the two items in flight; none starts after it.
		paused, err := pauseThenOpen(t, tb.e, t.Context(), job.ID, open)
		require.NoError(t, err)
		require.Equal(t, batch.StatePaused, paused.Status)
		require.Equal(t, int64(2), paused.Progress.Completed, "in-flight items finish, no new ones start")

		_, err = tb.e.Pause(t.Context(), job.ID)
		require.ErrorIs(t, err, batch.ErrInvalidState)

		resumed, err := tb.e.Resume(t.Context(), job.ID)
		require.NoError(t, err)
		require.Contains(t, []batch.State{batch.StateQueued, batch.StateRunning}, resumed.Status)
		done := tb.wait(t, job.ID)
		require.Equal(t, batch.StateCompleted, done.Status)
		require.Equal(t, int64(20), done.Progress.Completed)

		_, err = tb.e.Resume(t.Context(), job.ID)
		require.ErrorIs(t, err, batch.ErrInvalidState)
	})
}

func TestEngine_Cancel(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	_, started := gatedOp(t, tb)
	job := tb.submit(t, opBatch("gated", 50, batch.BatchOptions{MaxConcurrent: 3}))
	<-started
	cancelled, err := tb.e.Cancel(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCancelled, cancelled.Status)
	require.Zero(t, cancelled.Progress.Completed+cancelled.Progress.Failed, "cancelled items are not counted as done")
	require.NotNil(t, cancelled.FinishedAt)

	_, err = tb.e.Cancel(t.Context(), job.ID)
	require.ErrorIs(t, err, batch.ErrInvalidState)
	_, err = tb.e.Resume(t.Context(), job.ID)
	require.ErrorIs(t, err, batch.ErrInvalidState)
}

func TestEngine_QueuedJobsWaitForASlot(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", &batch.Options{MaxRunningJobs: 1})
	open, started := gatedOp(t, tb)
	first := tb.submit(t, opBatch("gated", 1, batch.BatchOptions{}))
	<-started
	second := tb.submit(t, opBatch("gated", 1, batch.BatchOptions{}))
	third := tb.submit(t, opBatch("gated", 1, batch.BatchOptions{}))

	j, err := tb.e.Job(t.Context(), second.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateQueued, j.Status)

	// A queued job can be paused, cancelled and deleted without running.
	paused, err := tb.e.Pause(t.Context(), second.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, paused.Status)
	require.NoError(t, tb.e.Delete(t.Context(), third.ID))
	_, err = tb.e.Job(t.Context(), third.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)

	open()
	require.Equal(t, batch.StateCompleted, tb.wait(t, first.ID).Status)
	_, err = tb.e.Resume(t.Context(), second.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, tb.wait(t, second.ID).Status)
}

func TestEngine_Delete(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	open, started := gatedOp(t, tb)
	job := tb.submit(t, opBatch("gated", 3, batch.BatchOptions{}))
	<-started
	err := tb.e.Delete(t.Context(), job.ID)
	require.ErrorIs(t, err, batch.ErrInvalidState, "a running job cannot be deleted")
	open()
	tb.wait(t, job.ID)
	require.NoError(t, tb.e.Delete(t.Context(), job.ID))
	_, err = tb.e.Job(t.Context(), job.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = tb.e.JobErrors(t.Context(), job.ID, nil)
	require.ErrorIs(t, err, batch.ErrNotFound)
	require.ErrorIs(t, tb.e.Delete(t.Context(), job.ID), batch.ErrNotFound)
}

func TestEngine_UnknownJobs(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	for _, id := range []string{"", "batch", "batch0", "batch99", "nope", "batch1x", "batch-1"} {
		_, err := tb.e.Job(t.Context(), id)
		require.ErrorIs(t, err, batch.ErrNotFound, id)
		_, err = tb.e.Pause(t.Context(), id)
		require.ErrorIs(t, err, batch.ErrNotFound, id)
		_, err = tb.e.Resume(t.Context(), id)
		require.ErrorIs(t, err, batch.ErrNotFound, id)
		_, err = tb.e.Cancel(t.Context(), id)
		require.ErrorIs(t, err, batch.ErrNotFound, id)
		require.ErrorIs(t, tb.e.Delete(t.Context(), id), batch.ErrNotFound, id)
	}
}

func TestEngine_JobsListPaged(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	require.NoError(t, tb.e.RegisterOperation("noop", countingOp(func(context.Context, *batch.Item) error { return nil })))
	var ids []string
	for i := range 7 {
		job, err := tb.e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), &batch.SubmitOptions{Owner: []string{"alice", "bob"}[i%2]})
		require.NoError(t, err)
		ids = append(ids, job.ID)
		tb.wait(t, job.ID)
	}
	var got []string
	opts := &batch.ListOptions{Limit: 3}
	for {
		page, err := tb.e.Jobs(t.Context(), opts)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Items), 3)
		for _, j := range page.Items {
			got = append(got, j.ID)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	require.Equal(t, []string{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}, got, "newest first, each once")

	alice, err := tb.e.Jobs(t.Context(), &batch.ListOptions{Owner: "alice"})
	require.NoError(t, err)
	require.Len(t, alice.Items, 4)
	for _, j := range alice.Items {
		require.Equal(t, "alice", j.Owner)
	}
	running, err := tb.e.Jobs(t.Context(), &batch.ListOptions{State: batch.StateRunning})
	require.NoError(t, err)
	require.Empty(t, running.Items)

	for _, bad := range []*batch.ListOptions{{State: "done"}, {Limit: -1}, {Limit: 5000}, {Cursor: "x"}} {
		_, err := tb.e.Jobs(t.Context(), bad)
		require.ErrorIs(t, err, batch.ErrInvalidBatch)
	}
}

func TestEngine_JobErrorsPaged(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	require.NoError(t, tb.e.RegisterOperation("odd", countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index%2 == 1 {
			return batch.ValidationError("item %d is odd", it.Index)
		}
		return nil
	})))
	job := tb.wait(t, tb.submit(t, opBatch("odd", 45, batch.BatchOptions{})).ID)
	require.Equal(t, int64(22), job.Progress.Failed)
	require.Len(t, job.Errors, batch.JobErrorsInline)
	require.InDelta(t, 100*23.0/45, job.Statistics.SuccessRate, 0.05)

	var indexes []int64
	opts := &batch.PageOptions{Limit: 5}
	for {
		page, err := tb.e.JobErrors(t.Context(), job.ID, opts)
		require.NoError(t, err)
		for _, e := range page.Items {
			indexes = append(indexes, e.ItemIndex)
			require.Equal(t, fmt.Sprintf("item %d is odd", e.ItemIndex), e.Error.Message)
			require.Equal(t, fmt.Sprintf("item%d", e.ItemIndex), e.ResourceID)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	require.Len(t, indexes, 22)
	for i, idx := range indexes {
		require.Equal(t, int64(2*i+1), idx)
	}
}

func TestEngine_IdempotencyKey(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 10)
	opts := &batch.SubmitOptions{Owner: "alice", IdempotencyKey: "k1"}
	first, err := tb.e.Submit(t.Context(), docBatch(t), opts)
	require.NoError(t, err)
	again, err := tb.e.Submit(t.Context(), docBatch(t), opts)
	require.NoError(t, err)
	require.Equal(t, first.ID, again.ID)
	other, err := tb.e.Submit(t.Context(), docBatch(t), &batch.SubmitOptions{Owner: "bob", IdempotencyKey: "k1"})
	require.NoError(t, err)
	require.NotEqual(t, first.ID, other.ID, "keys are per owner")
	page, err := tb.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Len(t, page.Items, 2)
}

func TestEngine_RestartResumesRunningJobs(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/restart.db"
	var mu sync.Mutex
	runs := map[int64]int{}
	block := make(chan struct{})
	held := heldFrom(10, block)
	op := countingOp(func(ctx context.Context, it *batch.Item) error {
		mu.Lock()
		runs[it.Index]++
		mu.Unlock()
		return held(ctx, it)
	})
	ops := map[string]batch.Operation{"stepped": op}
	// Close cancels the blocked item: it stays pending.
	job := closeWhileHeld(t, path, ops, 30, 10)

	close(block)
	e, err := batch.Open(path, &batch.Options{Operations: ops})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	j := waitJob(t, e, job.ID)
	require.Equal(t, batch.StateCompleted, j.Status, "%+v", j.Error)
	require.Equal(t, int64(30), j.Progress.Completed)
	mu.Lock()
	defer mu.Unlock()
	for i := range int64(10) {
		require.Equal(t, 1, runs[i], "item %d finished before the restart and must not run again", i)
	}
}

func TestEngine_Events(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	var mu sync.Mutex
	var got []batch.Event
	unsubscribe := tb.e.Subscribe(func(ev batch.Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})
	defer unsubscribe()
	open, started := gatedOp(t, tb)
	ctx := batch.WithPrincipal(t.Context(), "alice")
	job, err := tb.e.Submit(ctx, opBatch("gated", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	require.Equal(t, "alice", job.Owner)
	<-started
	_, err = pauseThenOpen(t, tb.e, ctx, job.ID, open)
	require.NoError(t, err)
	_, err = tb.e.Resume(ctx, job.ID)
	require.NoError(t, err)
	tb.wait(t, job.ID)
	require.NoError(t, tb.e.Delete(ctx, job.ID))

	mu.Lock()
	defer mu.Unlock()
	var types []batch.EventType
	for _, ev := range got {
		types = append(types, ev.Type)
		require.Equal(t, job.ID, ev.JobID)
	}
	require.Equal(t, []batch.EventType{batch.EventJobCreated, batch.EventJobStarted, batch.EventJobPaused, batch.EventJobResumed, batch.EventJobCompleted, batch.EventJobDeleted}, types)
	require.Equal(t, "alice", got[0].Principal)
	require.Equal(t, "alice", got[2].Principal, "the pause names who paused")
}

func TestEngine_ClosedRefusesWork(t *testing.T) {
	t.Parallel()
	e, err := batch.New(batch.NewMemoryStore(), nil)
	require.NoError(t, err)
	require.NoError(t, e.Close(t.Context()))
	require.NoError(t, e.Close(t.Context()), "Close twice is fine")
	_, err = e.Submit(t.Context(), &batch.Batch{}, nil)
	require.ErrorIs(t, err, batch.ErrClosed)
}

// slowScanResource is a mapResource whose Scan can be made to block until
// its context ends.
type slowScanResource struct {
	*mapResource
	block   atomic.Bool
	blocked chan struct{}
}

func (s *slowScanResource) Scan(ctx context.Context, q *batch.Query, fn func(batch.Record) error) error {
	if s.block.Load() {
		select {
		case s.blocked <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return s.mapResource.Scan(ctx, q, fn)
}

func TestEngine_PauseWhileListingRecords(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", &batch.Options{MaxRunningJobs: 1})
	res := &slowScanResource{mapResource: &mapResource{recs: map[string]batch.Record{
		"a": {"id": "a"}, "b": {"id": "b"},
	}}, blocked: make(chan struct{}, 1)}
	require.NoError(t, tb.e.RegisterResource("farms", res))
	open, started := gatedOp(t, tb)
	first := tb.submit(t, opBatch("gated", 1, batch.BatchOptions{}))
	<-started
	second := tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "update", Resource: "farms", Where: "true", Update: map[string]any{"x": 1}}}})
	res.block.Store(true)
	open()
	tb.wait(t, first.ID)
	<-res.blocked // the second job is listing its records

	paused, err := tb.e.Pause(t.Context(), second.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, paused.Status, "interrupting the listing pauses the job, it does not fail it")
	res.block.Store(false)
	_, err = tb.e.Resume(t.Context(), second.ID)
	require.NoError(t, err)
	done := tb.wait(t, second.ID)
	require.Equal(t, batch.StateCompleted, done.Status)
	require.Equal(t, int64(2), done.Progress.Completed)
}

func TestEngine_CloseKeepsQueuedJobs(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/queued.db"
	block := make(chan struct{})
	ops := map[string]batch.Operation{"blocked": countingOp(heldFrom(0, block))}
	e, err := batch.Open(path, &batch.Options{MaxRunningJobs: 1, Operations: ops})
	require.NoError(t, err)
	first, err := e.Submit(t.Context(), opBatch("blocked", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	second, err := e.Submit(t.Context(), opBatch("blocked", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	require.NoError(t, e.Close(ctx), "Close returns with a job still queued")

	close(block)
	e, err = batch.Open(path, &batch.Options{Operations: ops})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	for _, id := range []string{first.ID, second.ID} {
		wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
		j, err := e.Wait(wctx, id)
		wcancel()
		require.NoError(t, err)
		require.Equal(t, batch.StateCompleted, j.Status, id)
	}
}

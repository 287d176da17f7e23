package batch_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

type traceKey struct{}

type otherKey struct{}

// recordingObserver records what the engine reports and carries a trace
// id through the job record.
type recordingObserver struct {
	batch.NopObserver
	mu      sync.Mutex
	jobs    []batch.JobObservation
	jobCtx  []string
	items   []batch.ItemObservation
	commits int
}

func (o *recordingObserver) ObserveJob(ctx context.Context, j batch.JobObservation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.jobs = append(o.jobs, j)
	id, _ := ctx.Value(traceKey{}).(string)
	o.jobCtx = append(o.jobCtx, id)
}

func (o *recordingObserver) ObserveItem(ctx context.Context, it batch.ItemObservation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.items = append(o.items, it)
}

func (o *recordingObserver) ObserveCommit(c batch.CommitObservation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c.Size > 0 && c.Err == nil {
		o.commits++
	}
}

func (o *recordingObserver) Inject(ctx context.Context) map[string]string {
	id, _ := ctx.Value(traceKey{}).(string)
	return map[string]string{"trace": id}
}

func (o *recordingObserver) Extract(ctx context.Context, carrier map[string]string) context.Context {
	return context.WithValue(ctx, traceKey{}, carrier["trace"])
}

func TestObserver_SeesTransitionsAttemptsAndCommits(t *testing.T) {
	t.Parallel()
	obs := &recordingObserver{}
	var mu sync.Mutex
	var runTraces, planTraces []string
	var leaked bool
	tries := map[string]int{}
	op := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		if env.JobID != "" {
			id, _ := ctx.Value(traceKey{}).(string)
			mu.Lock()
			planTraces = append(planTraces, id)
			mu.Unlock()
		}
		return &batch.Plan{Count: 2, Item: func(i int64) (batch.Item, error) { return batch.Item{ResourceID: []string{"a", "b"}[i]}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				id, _ := ctx.Value(traceKey{}).(string)
				mu.Lock()
				defer mu.Unlock()
				runTraces = append(runTraces, id)
				leaked = leaked || ctx.Value(otherKey{}) != nil
				tries[it.ResourceID]++
				if it.ResourceID == "a" && tries["a"] == 1 {
					return batch.NewError(batch.CodeResource, "flaky")
				}
				return nil
			}}, nil
	})
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Observer: obs, Operations: map[string]batch.Operation{"op": op}})
	require.NoError(t, err)
	defer e.Close(context.Background())

	ctx, cancel := context.WithCancel(context.WithValue(context.WithValue(t.Context(), traceKey{}, "trace-1"), otherKey{}, "x"))
	job, err := e.Submit(ctx, opBatch("op", 2, batch.BatchOptions{Retry: batch.RetryOptions{Attempts: 2, Backoff: batch.BackoffImmediate}}), nil)
	require.NoError(t, err)
	cancel() // the job needs nothing of the Submit context but its trace
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	job, err = e.Wait(wctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status)

	mu.Lock()
	require.Equal(t, []string{"trace-1", "trace-1", "trace-1"}, runTraces)
	require.Equal(t, []string{"trace-1"}, planTraces)
	require.False(t, leaked, "other values of the Submit context do not reach the job")
	mu.Unlock()

	obs.mu.Lock()
	defer obs.mu.Unlock()
	var states []batch.State
	for i, j := range obs.jobs {
		states = append(states, j.To)
		require.Equal(t, "trace-1", obs.jobCtx[i])
		require.Equal(t, map[string]string{"trace": "trace-1"}, j.Trace)
		require.Equal(t, job.ID, j.JobID)
		require.NotNil(t, j.Job)
		require.Equal(t, j.To, j.Job.Status)
	}
	require.Equal(t, []batch.State{batch.StateQueued, batch.StateRunning, batch.StateCompleted}, states)
	require.Equal(t, batch.StateQueued, obs.jobs[1].From)
	require.Positive(t, obs.jobs[1].QueueWait)
	require.Positive(t, obs.jobs[2].Duration)
	require.Len(t, obs.items, 3)
	var retried, succeeded int
	for _, it := range obs.items {
		switch it.Outcome {
		case batch.ItemRetried:
			retried++
			require.Equal(t, string(batch.CodeResource), it.ErrorType)
			require.Equal(t, 1, it.Attempt)
		case batch.ItemSucceeded:
			succeeded++
		}
	}
	require.Equal(t, 1, retried)
	require.Equal(t, 2, succeeded)
	require.Positive(t, obs.commits)
}

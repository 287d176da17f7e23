package batch_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestPrincipal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	require.Empty(t, batch.PrincipalFrom(ctx))
	alice := batch.WithPrincipal(ctx, "alice")
	require.Equal(t, "alice", batch.PrincipalFrom(alice))
	require.Equal(t, "bob", batch.PrincipalFrom(batch.WithPrincipal(alice, "bob")), "the innermost principal acts")
	require.Empty(t, batch.PrincipalFrom(ctx), "the parent is unchanged")
}

// Subscribers see a job's events in order, stamped, carrying the job and
// the principal, with the state they report already readable; after
// unsubscribing they see nothing more. (TestEngine_Events follows a job
// through pause and resume.)
func TestSubscribe_JobEventsInOrder(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", &batch.Options{Operations: map[string]batch.Operation{
		"noop": countingOp(func(context.Context, *batch.Item) error { return nil })}})
	var mu sync.Mutex
	var types []batch.EventType
	var ids, principals []string
	whole := true
	var statusAtCompleted batch.State
	unsubscribe := tb.e.Subscribe(func(ev batch.Event) {
		mu.Lock()
		defer mu.Unlock()
		types, ids, principals = append(types, ev.Type), append(ids, ev.JobID), append(principals, ev.Principal)
		whole = whole && !ev.At.IsZero() && ev.Job != nil && ev.Job.ID == ev.JobID
		if ev.Type == batch.EventJobCompleted {
			if j, err := tb.e.Job(context.Background(), ev.JobID); err == nil {
				statusAtCompleted = j.Status
			}
		}
	})
	alice := batch.WithPrincipal(t.Context(), "alice")
	job, err := tb.e.Submit(alice, opBatch("noop", 3, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	tb.wait(t, job.ID)
	unsubscribe()
	require.NoError(t, tb.e.Delete(alice, job.ID))

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []batch.EventType{batch.EventJobCreated, batch.EventJobStarted, batch.EventJobCompleted}, types,
		"no job_deleted after unsubscribing")
	require.Equal(t, []string{job.ID, job.ID, job.ID}, ids)
	require.Equal(t, "alice", principals[0])
	require.True(t, whole, "every event is stamped and carries its job")
	require.Equal(t, batch.StateCompleted, statusAtCompleted)
}

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

// Subscribers see a job's events in order, stamped and carrying the
// principal, with the state they report already readable; after
// unsubscribing they see nothing more.
func TestSubscribe_JobEventsInOrder(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", &batch.Options{Operations: map[string]batch.Operation{
		"noop": countingOp(func(context.Context, *batch.Item) error { return nil })}})
	var mu sync.Mutex
	var events []batch.Event
	var statusAtCompleted batch.State
	unsubscribe := tb.e.Subscribe(func(ev batch.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		if ev.Type == batch.EventJobCompleted {
			j, err := tb.e.Job(context.Background(), ev.JobID)
			if err == nil {
				statusAtCompleted = j.Status
			}
		}
	})
	job, err := tb.e.Submit(batch.WithPrincipal(t.Context(), "alice"), opBatch("noop", 3, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	tb.wait(t, job.ID)
	unsubscribe()
	err = tb.e.Delete(batch.WithPrincipal(t.Context(), "alice"), job.ID)
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	var types []batch.EventType
	for _, ev := range events {
		types = append(types, ev.Type)
		require.Equal(t, job.ID, ev.JobID)
		require.False(t, ev.At.IsZero())
		require.NotNil(t, ev.Job)
	}
	require.Equal(t, []batch.EventType{batch.EventJobCreated, batch.EventJobStarted, batch.EventJobCompleted}, types,
		"no job_deleted after unsubscribing")
	require.Equal(t, "alice", events[0].Principal)
	require.Equal(t, batch.StateCompleted, statusAtCompleted)
}

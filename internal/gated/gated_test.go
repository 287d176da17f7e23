package gated

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// TestRun: an item is held until the gate lets it through, or its context
// ends; with finishOnStop, also until its job is asked to stop.
func TestRun(t *testing.T) {
	e, err := batch.New(batch.NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	gate := make(chan struct{})
	started := make(chan struct{}, 8)
	for name, finishOnStop := range map[string]bool{"held": false, "pausable": true} {
		run := Run(gate, finishOnStop)
		require.NoError(t, e.RegisterOperation(name, batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
			return &batch.Plan{Count: 1, Item: func(int64) (batch.Item, error) { return batch.Item{}, nil },
				Run: func(ctx context.Context, it *batch.Item) error { started <- struct{}{}; return run(ctx, it) }}, nil
		})))
	}
	submit := func(op string) string {
		job, err := e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: op}}}, nil)
		require.NoError(t, err)
		<-started
		return job.ID
	}

	// A pausable item finishes once its job is asked to stop.
	id := submit("pausable")
	job, err := e.Pause(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, job.Status)
	require.Equal(t, int64(1), job.Progress.Completed)

	// A held item passes with a value from the gate, and not before.
	id = submit("held")
	gate <- struct{}{}
	job, err = e.Wait(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status)

	// A held item ends with its context: a cancel leaves it unfinished.
	id = submit("held")
	job, err = e.Cancel(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, batch.StateCancelled, job.Status)
	require.Zero(t, job.Progress.Completed)
}

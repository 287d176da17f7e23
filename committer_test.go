package batch_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// Item outcomes are stored in group commits: with a long CommitDelay and
// room for every item in one batch, a job's outcomes wait for one another
// and share a few transactions (a write arriving meanwhile, like the job's
// start, is not kept waiting and takes the outcomes there with it), not one
// each. In a synctest bubble, so the delay costs the test nothing.
func TestCommitter_OutcomesShareACommit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Observer: rec, CommitDelay: time.Hour, CommitBatchSize: 1000,
			Operations: map[string]batch.Operation{"noop": countingOp(func(context.Context, *batch.Item) error { return nil })}})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		const n = 50
		job, err := e.Submit(t.Context(), opBatch("noop", n, batch.BatchOptions{}), nil)
		require.NoError(t, err)
		job, err = e.Wait(t.Context(), job.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StateCompleted, job.Status)
		require.Equal(t, int64(n), job.Progress.Completed)
		var sizes []int
		for _, c := range rec.snapshot().commits {
			require.NoError(t, c.Err)
			sizes = append(sizes, c.Size)
		}
		require.Less(t, len(sizes), n/5, "commits for %d items: %v", n, sizes)
		require.GreaterOrEqual(t, slices.Max(sizes), n/2, "most outcomes in one commit: %v", sizes)
	})
}

// A job's last outcome is committed at once, not after CommitDelay: the
// runner waits for it. With an hour's delay in a synctest bubble, any
// lingering shows as fake time passing.
func TestCommitter_LastOutcomeDoesNotLinger(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{CommitDelay: time.Hour,
			Operations: map[string]batch.Operation{"noop": countingOp(func(context.Context, *batch.Item) error { return nil })}})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		for range 5 {
			start := time.Now()
			job, err := e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
			require.NoError(t, err)
			job, err = e.Wait(t.Context(), job.ID)
			require.NoError(t, err)
			require.Equal(t, batch.StateCompleted, job.Status)
			require.Less(t, time.Since(start), time.Hour, "the job's last outcome waited out CommitDelay")
		}
	})
}

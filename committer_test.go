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
// and go into one transaction, and the job's last outcome flushes it at
// once rather than waiting out the delay. In a synctest bubble, so "at
// once" is exact.
func TestCommitter_OutcomesShareACommit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Observer: rec, CommitDelay: time.Hour, CommitBatchSize: 1000,
			Operations: map[string]batch.Operation{"noop": countingOp(func(context.Context, *batch.Item) error { return nil })}})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		const n = 50
		start := time.Now()
		job, err := e.Submit(t.Context(), opBatch("noop", n, batch.BatchOptions{}), nil)
		require.NoError(t, err)
		job, err = e.Wait(t.Context(), job.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StateCompleted, job.Status)
		require.Equal(t, int64(n), job.Progress.Completed)
		require.Zero(t, time.Since(start), "the last outcome flushed without lingering")
		var sizes []int
		for _, c := range rec.snapshot().commits {
			require.NoError(t, c.Err)
			sizes = append(sizes, c.Size)
		}
		require.GreaterOrEqual(t, slices.Max(sizes), n, "all the items' outcomes in one commit: %v", sizes)
	})
}

package batch_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// A due schedule fires exactly once per due time, not a moment before,
// and moves its next run on; more scheduler passes at the same time start
// nothing more. Runs in a synctest bubble: the engine's clock and timers
// are the bubble's, so each step is exact.
func TestScheduler_FiresExactlyOnceWhenDue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{SchedulerPoll: time.Minute})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		start := time.Now().UTC()
		due := start.Truncate(24 * time.Hour).Add(2*time.Hour + 30*time.Minute)
		if !due.After(start) {
			due = due.Add(24 * time.Hour)
		}
		s, err := e.CreateSchedule(t.Context(), &batch.Schedule{Name: "nightly", Batch: scheduledBatch(),
			Timing: batch.Timing{Frequency: "daily", Time: "02:30"}})
		require.NoError(t, err)
		require.Equal(t, due, *s.NextRunAt)

		time.Sleep(due.Sub(start) - time.Nanosecond)
		synctest.Wait()
		require.Empty(t, jobsOf(t, e, s.ID), "not before its time")

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		jobs := jobsOf(t, e, s.ID)
		require.Len(t, jobs, 1, "fired at its time")
		got, err := e.Schedule(t.Context(), s.ID)
		require.NoError(t, err)
		require.Equal(t, due.Add(24*time.Hour), *got.NextRunAt)
		require.Equal(t, due, *got.LastRunAt)
		require.Equal(t, jobs[0].ID, got.LastJobID)

		time.Sleep(24*time.Hour - time.Minute) // many polls, nothing due
		synctest.Wait()
		require.Len(t, jobsOf(t, e, s.ID), 1, "once per due time")

		time.Sleep(time.Minute)
		synctest.Wait()
		require.Len(t, jobsOf(t, e, s.ID), 2, "the next day's run")
	})
}

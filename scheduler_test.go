package batch_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// nightly creates a daily 02:30 UTC schedule on e and returns it with its
// first due time, which must be the next 02:30 after now.
func nightly(t *testing.T, e *batch.Engine) (*batch.Schedule, time.Time) {
	t.Helper()
	now := time.Now().UTC()
	due := now.Truncate(24 * time.Hour).Add(2*time.Hour + 30*time.Minute)
	if !due.After(now) {
		due = due.Add(24 * time.Hour)
	}
	s, err := e.CreateSchedule(t.Context(), &batch.Schedule{Name: "nightly", Batch: scheduledBatch(),
		Timing: batch.Timing{Frequency: "daily", Time: "02:30"}})
	require.NoError(t, err)
	require.Equal(t, due, *s.NextRunAt)
	return s, due
}

// stepTo moves the bubble's clock to at and lets the engine settle.
func stepTo(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

// A due schedule fires exactly once per due time, not a moment before,
// and moves its next run on; passes in between start nothing. Runs in a
// synctest bubble: the engine's clock and timers are the bubble's, so
// each step is exact.
func TestScheduler_FiresExactlyOnceWhenDue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{SchedulerPoll: time.Hour})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		s, due := nightly(t, e)
		for day := range 2 {
			at := due.Add(time.Duration(day) * 24 * time.Hour)
			stepTo(at.Add(-time.Nanosecond))
			require.Len(t, jobsOf(t, e, s.ID), day, "day %d: not before its time", day)
			stepTo(at)
			jobs := jobsOf(t, e, s.ID)
			require.Len(t, jobs, day+1, "day %d: fired at its time", day)
			got, err := e.Schedule(t.Context(), s.ID)
			require.NoError(t, err)
			require.Equal(t, at.Add(24*time.Hour), *got.NextRunAt)
			require.Equal(t, at, *got.LastRunAt)
			require.Equal(t, jobs[0].ID, got.LastJobID, "the newest job")
		}
	})
}

// A new schedule wakes the scheduler: with a poll far longer than the
// wait, its first run still fires at its due time.
func TestScheduler_NewScheduleWakesIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e, err := batch.New(batch.NewMemoryStore(), &batch.Options{SchedulerPoll: 72 * time.Hour})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		synctest.Wait() // the scheduler sleeps its poll
		s, due := nightly(t, e)
		stepTo(due)
		require.Len(t, jobsOf(t, e, s.ID), 1)
	})
}

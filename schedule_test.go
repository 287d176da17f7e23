package batch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPreviewTiming_DST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		timing batch.Timing
		from   string
		want   []string
	}{
		{"New York spring: 02:30 runs right after the jump", batch.Timing{Frequency: "daily", Time: "02:30", Timezone: "America/New_York"}, "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"Chicago spring", batch.Timing{Frequency: "daily", Time: "02:30", Timezone: "America/Chicago"}, "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T08:00:00Z", "2026-03-09T07:30:00Z"}},
		{"Amsterdam spring", batch.Timing{Frequency: "daily", Time: "02:30", Timezone: "Europe/Amsterdam"}, "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"New York autumn: the repeated 01:30 runs once", batch.Timing{Frequency: "daily", Time: "01:30", Timezone: "America/New_York"}, "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"Chicago autumn", batch.Timing{Frequency: "daily", Time: "01:30", Timezone: "America/Chicago"}, "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T06:30:00Z", "2026-11-02T07:30:00Z"}},
		{"Amsterdam autumn", batch.Timing{Frequency: "daily", Time: "02:30", Timezone: "Europe/Amsterdam"}, "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"hourly across the autumn change runs each wall time once", batch.Timing{Frequency: "hourly", Time: "00:30", Timezone: "America/New_York"}, "2026-11-01T04:00:00Z",
			[]string{"2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z", "2026-11-01T08:30:00Z"}},
		{"weekly keeps the weekday across the spring change", batch.Timing{Frequency: "weekly", Time: "02:30", DaysOfWeek: []string{"sun"}, Timezone: "America/New_York"}, "2026-03-01T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-15T06:30:00Z"}},
		{"weekly keeps the weekday across the autumn change", batch.Timing{Frequency: "weekly", Time: "09:00", DaysOfWeek: []string{"mon", "friday"}, Timezone: "Europe/Amsterdam"}, "2026-10-23T12:00:00Z",
			[]string{"2026-10-26T08:00:00Z", "2026-10-30T08:00:00Z"}},
		{"monthly skips months without the day", batch.Timing{Frequency: "monthly", DayOfMonth: 31, Time: "06:00"}, "2026-01-31T12:00:00Z",
			[]string{"2026-03-31T06:00:00Z", "2026-05-31T06:00:00Z"}},
		{"document example: daily midnight in Tokyo", batch.Timing{Frequency: "daily", Time: "00:00", Timezone: "Asia/Tokyo"}, "2025-01-19T00:52:03Z",
			[]string{"2025-01-19T15:00:00Z", "2025-01-20T15:00:00Z"}},
		{"cron in a zone", batch.Timing{Cron: "*/30 1-2 * * *", Timezone: "America/New_York"}, "2026-03-08T05:00:00Z",
			[]string{"2026-03-08T06:00:00Z", "2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T05:00:00Z"}},
		{"once", batch.Timing{Frequency: "once", At: "2026-12-24T18:00", Timezone: "Europe/Amsterdam"}, "2026-11-28T00:00:00Z",
			[]string{"2026-12-24T17:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := batch.PreviewTiming(tt.timing, utc(tt.from), len(tt.want))
			require.NoError(t, err)
			var s []string
			for _, g := range got {
				s = append(s, g.UTC().Format(time.RFC3339))
			}
			require.Equal(t, tt.want, s)
		})
	}
}

func TestPreviewTiming_Rejects(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		timing batch.Timing
		field  string
	}{
		{batch.Timing{Frequency: "daily", Timezone: "Mars/Olympus"}, "timing.timezone"},
		{batch.Timing{Frequency: "daily", Time: "25:00"}, "timing.time"},
		{batch.Timing{Frequency: "fortnightly"}, "timing.frequency"},
		{batch.Timing{Cron: "61 * * * *"}, "timing.cron"},
		{batch.Timing{Cron: "0 0 30 2 *"}, "timing.cron"},
		{batch.Timing{Frequency: "weekly", Time: "10:00"}, "timing.days_of_week"},
		{batch.Timing{Frequency: "weekly", DaysOfWeek: []string{"funday"}}, "timing.days_of_week[0]"},
		{batch.Timing{Frequency: "monthly", DayOfMonth: 32}, "timing.day_of_month"},
		{batch.Timing{Frequency: "once"}, "timing.at"},
		{batch.Timing{}, "timing.frequency"},
	} {
		_, err := batch.PreviewTiming(tt.timing, time.Now(), 1)
		require.Contains(t, detailFields(t, err), tt.field, "%+v", tt.timing)
	}
}

// fakeClock is a settable clock for the engine.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func scheduledBatch() batch.Batch {
	return batch.Batch{Operations: []batch.OperationSpec{{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"touched": true}}}}
}

// jobsOf lists the jobs a schedule started.
func jobsOf(t *testing.T, e *batch.Engine, scheduleID string) []*batch.Job {
	page, err := e.Jobs(t.Context(), &batch.ListOptions{Limit: 1000})
	require.NoError(t, err)
	var out []*batch.Job
	for _, j := range page.Items {
		if j.ScheduleID == scheduleID {
			out = append(out, j)
		}
	}
	return out
}

func TestScheduler_FiresOncePerDueTime(t *testing.T) {
	t.Parallel()
	// In a bubble the sleeps below are exact: with SchedulerPoll at 2ms,
	// each is ten more scheduler passes at the same engine clock, each done
	// before the bubble's time moves on.
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{now: utc("2026-03-07T12:00:00Z")}
		path := t.TempDir() + "/sched.db"
		opts := &batch.Options{Now: clock.Now, SchedulerPoll: 2 * time.Millisecond}
		e, err := batch.Open(path, opts)
		require.NoError(t, err)
		fields, _ := e.Collection("fields")
		require.NoError(t, fields.Put(t.Context(), batch.Record{"id": "f1"}))
		s, err := e.CreateSchedule(t.Context(), &batch.Schedule{Name: "nightly", Batch: scheduledBatch(),
			Timing: batch.Timing{Frequency: "daily", Time: "02:30", Timezone: "America/New_York"}})
		require.NoError(t, err)
		require.Equal(t, utc("2026-03-08T07:00:00Z"), *s.NextRunAt, "the spring gap: right after the jump")

		clock.set(utc("2026-03-08T07:00:10Z"))
		require.Eventually(t, func() bool { return len(jobsOf(t, e, s.ID)) == 1 }, 10*time.Second, time.Millisecond)
		require.Eventually(t, func() bool {
			got, err := e.Schedule(t.Context(), s.ID)
			return err == nil && got.NextRunAt != nil && got.NextRunAt.Equal(utc("2026-03-09T06:30:00Z"))
		}, 10*time.Second, time.Millisecond)
		time.Sleep(20 * time.Millisecond) // ten more scheduler passes at the same clock
		require.Len(t, jobsOf(t, e, s.ID), 1, "one job per due time")
		require.NoError(t, e.Close(t.Context()))

		// After a restart the same due time does not fire again.
		e, err = batch.Open(path, opts)
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(context.Background())) }()
		time.Sleep(20 * time.Millisecond) // ten scheduler passes after the restart
		jobs := jobsOf(t, e, s.ID)
		require.Len(t, jobs, 1)
		got, err := e.Schedule(t.Context(), s.ID)
		require.NoError(t, err)
		require.Equal(t, jobs[0].ID, got.LastJobID)
	})
}

func TestScheduler_CatchUpPolicies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		policy string
		want   int
	}{{batch.CatchUpSkip, 0}, {batch.CatchUpRunOnce, 1}} {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{now: utc("2026-01-01T00:00:00Z")}
			path := t.TempDir() + "/catchup.db"
			e, err := batch.Open(path, &batch.Options{Now: clock.Now, SchedulerPoll: 2 * time.Millisecond})
			require.NoError(t, err)
			s, err := e.CreateSchedule(t.Context(), &batch.Schedule{Name: "hourly", Batch: scheduledBatch(), CatchUp: tt.policy,
				Timing: batch.Timing{Frequency: "hourly"}})
			require.NoError(t, err)
			require.NoError(t, e.Close(t.Context()))

			clock.set(utc("2026-01-01T05:20:00Z")) // five runs fell due while down
			e, err = batch.Open(path, &batch.Options{Now: clock.Now, SchedulerPoll: 2 * time.Millisecond})
			require.NoError(t, err)
			defer func() { require.NoError(t, e.Close(context.Background())) }()
			require.Eventually(t, func() bool {
				got, err := e.Schedule(t.Context(), s.ID)
				return err == nil && got.NextRunAt.Equal(utc("2026-01-01T06:00:00Z"))
			}, 10*time.Second, time.Millisecond)
			require.Len(t, jobsOf(t, e, s.ID), tt.want)
		})
	}
}

func TestScheduler_OverlapSkipped(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: utc("2026-01-01T00:00:30Z")}
	release := make(chan struct{})
	defer close(release)
	block := countingOp(func(ctx context.Context, it *batch.Item) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Now: clock.Now, SchedulerPoll: 2 * time.Millisecond, Operations: map[string]batch.Operation{"block": block}})
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		e.Close(ctx)
	}()
	s, err := e.CreateSchedule(t.Context(), &batch.Schedule{Name: "minutely", Batch: batch.Batch{Operations: []batch.OperationSpec{{Type: "block", Params: map[string]any{"count": 1}}}},
		Timing: batch.Timing{Cron: "* * * * *"}})
	require.NoError(t, err)
	clock.set(utc("2026-01-01T00:01:01Z"))
	require.Eventually(t, func() bool { return len(jobsOf(t, e, s.ID)) == 1 }, 10*time.Second, time.Millisecond)
	clock.set(utc("2026-01-01T00:02:01Z"))
	require.Eventually(t, func() bool {
		got, err := e.Schedule(t.Context(), s.ID)
		return err == nil && got.NextRunAt.Equal(utc("2026-01-01T00:03:00Z"))
	}, 10*time.Second, time.Millisecond)
	require.Len(t, jobsOf(t, e, s.ID), 1, "the 00:02 run overlaps the running job and is skipped")
}

func TestSchedule_Conflict(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: utc("2025-01-18T12:00:00Z")}
	tb := setup(t, "memory", &batch.Options{Now: clock.Now})
	tpl, err := tb.e.CreateTemplate(t.Context(), docTemplate(t))
	require.NoError(t, err)
	doc := func() *batch.Schedule {
		return &batch.Schedule{Name: "Daily Field Updates", Description: "Update field status based on sensor data",
			Batch:  batch.Batch{TemplateID: tpl.ID, Parameters: map[string]any{"status": "active", "crop_type": "rice"}},
			Timing: batch.Timing{Frequency: "daily", Time: "00:00", Timezone: "Asia/Tokyo"}}
	}
	first, err := tb.e.CreateSchedule(t.Context(), doc())
	require.NoError(t, err)
	require.Equal(t, utc("2025-01-18T15:00:00Z"), *first.NextRunAt)
	_, err = tb.e.CreateSchedule(t.Context(), doc())
	var be *batch.Error
	require.ErrorAs(t, err, &be)
	require.Equal(t, batch.CodeScheduleConflict, be.Code)
	require.Equal(t, "2025-01-18T15:00:00Z", be.Details[0].Time)
	require.Equal(t, first.ID, be.Details[0].ConflictWith)

	// Another time is fine; pausing the first frees its slot.
	other := doc()
	other.Timing.Time = "01:00"
	_, err = tb.e.CreateSchedule(t.Context(), other)
	require.NoError(t, err)
	_, err = tb.e.PauseSchedule(t.Context(), first.ID)
	require.NoError(t, err)
	_, err = tb.e.CreateSchedule(t.Context(), doc())
	require.NoError(t, err)
	_, err = tb.e.ResumeSchedule(t.Context(), first.ID)
	require.Equal(t, batch.CodeScheduleConflict, batch.CodeOf(err), "resuming into a clash is refused")
	got, err := tb.e.Schedule(t.Context(), first.ID)
	require.NoError(t, err)
	require.Equal(t, batch.SchedulePaused, got.Status)
}

// FuzzTiming feeds timings through validation and preview: no panic; a
// refusal is an INVALID_BATCH *Error with details; accepted timings give
// increasing run times.
func FuzzTiming(f *testing.F) {
	f.Add("daily", "02:30", "America/New_York", "", int64(1772971200))
	f.Add("", "", "Europe/Amsterdam", "*/30 1-2 * * *", int64(1792800000))
	f.Add("weekly", "09:00", "Asia/Tokyo", "", int64(0))
	f.Add("monthly", "25:99", "Mars/Base", "61 * * * *", int64(-5))
	f.Fuzz(func(t *testing.T, freq, at, zone, cron string, from int64) {
		timing := batch.Timing{Frequency: freq, Time: at, Timezone: zone, Cron: cron}
		if freq == "weekly" {
			timing.DaysOfWeek = []string{"mon"}
		}
		runs, err := batch.PreviewTiming(timing, time.Unix(from, 0), 5)
		var be *batch.Error
		if errors.As(err, &be) {
			require.Equal(t, batch.CodeInvalidBatch, be.Code)
			require.NotEmpty(t, be.Details)
			return
		}
		if err != nil {
			return // a valid cron whose next run cannot be found from this start (a past year, say)
		}
		for i := 1; i < len(runs); i++ {
			require.True(t, runs[i].After(runs[i-1]), "runs increase: %v", runs)
		}
	})
}

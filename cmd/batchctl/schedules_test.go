package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestSchedule_PreviewPauseResumeAndTiming(t *testing.T) {
	tb := setup(t, nil)
	s := runOK[batch.Schedule](t, tb, docSchedule, "schedule", "create", "-")
	require.NotNil(t, s.NextRunAt)

	r := tb.cliWith(t, runOptions{ttyOut: true}, "schedule", "list")
	require.Regexp(t, `(?m)^`+s.ID+`\s+Daily Field Updates\s+active\s+daily 00:00 Asia/Tokyo\s+`, r.stdout)

	r = tb.cli(t, "schedule", "preview", s.ID, "-n", "3")
	require.Equal(t, 0, r.code, r.stderr)
	runs := decode[struct{ Runs []string }](t, r.stdout).Runs
	require.Len(t, runs, 3)
	require.True(t, strings.HasSuffix(runs[0], "T15:00:00Z"), "midnight in Tokyo: %v", runs)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "schedule", "preview", s.ID, "--count", "2")
	require.Equal(t, "NEXT RUNS\n"+runs[0]+"\n"+runs[1]+"\n", r.stdout)
	r = tb.cli(t, "schedule", "preview", "sched404")
	require.Equal(t, exitNotFound, r.code)

	r = tb.cli(t, "schedule", "pause", s.ID)
	require.Equal(t, batch.SchedulePaused, decode[batch.Schedule](t, r.stdout).Status)
	r = tb.cli(t, "schedule", "pause", s.ID)
	require.Equal(t, exitFailure, r.code, "pausing a paused schedule is a 409: %s", r.stderr)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "schedule", "resume", s.ID)
	require.Regexp(t, `(?m)^Status:\s+active$`, r.stdout)
	require.Regexp(t, `(?m)^Timing:\s+daily 00:00 Asia/Tokyo$`, r.stdout)
	require.Regexp(t, `(?m)^Batch:\s+1 operation\(s\)$`, r.stdout)

	updated := strings.Replace(docSchedule, `"time": "00:00"`, `"time": "06:30"`, 1)
	r = tb.cliWith(t, runOptions{stdin: updated}, "schedule", "update", s.ID, "-")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "06:30", decode[batch.Schedule](t, r.stdout).Timing.Time)
}

func TestTimingText(t *testing.T) {
	for _, tc := range []struct {
		timing batch.Timing
		want   string
	}{
		{batch.Timing{Frequency: "daily", Time: "00:00", Timezone: "Asia/Tokyo"}, "daily 00:00 Asia/Tokyo"},
		{batch.Timing{Cron: "0 6 * * *", Timezone: "UTC"}, "cron 0 6 * * * UTC"},
		{batch.Timing{Frequency: "weekly", DaysOfWeek: []string{"mon", "thu"}, Time: "06:00"}, "weekly mon,thu 06:00"},
		{batch.Timing{Frequency: "monthly", DayOfMonth: 15}, "monthly day 15"},
		{batch.Timing{Frequency: "once", At: "2026-01-01T00:00:00Z"}, "once 2026-01-01T00:00:00Z"},
	} {
		require.Equal(t, tc.want, timingText(tc.timing))
	}
}

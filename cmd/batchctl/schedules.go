package main

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batchworks/batch"
)

var scheduleKind = newKind("schedule", "schedules", "SCHEDULE_ID", "name",
	[]any{"ID", "NAME", "STATUS", "TIMING", "NEXT RUN", "LAST JOB"},
	func(x *batch.Schedule) []any {
		return []any{x.ID, x.Name, x.Status, timingText(x.Timing), x.NextRunAt, x.LastJobID}
	},
	func(t *tableWriter, x *batch.Schedule) {
		t.kv("Schedule", x.ID)
		t.kv("Name", x.Name)
		t.kv("Description", x.Description)
		t.kv("Status", x.Status)
		t.kv("Timing", timingText(x.Timing))
		t.kv("Next run", x.NextRunAt)
		t.kv("Last run", x.LastRunAt)
		t.kv("Last job", x.LastJobID)
		t.kv("Catch-up", x.CatchUp)
		t.kv("Overlap", x.Overlap)
		if x.Batch.TemplateID != "" {
			t.kv("Batch", "template "+x.Batch.TemplateID+" "+string(marshalJSON(x.Batch.Parameters)))
		} else {
			t.kv("Batch", strconv.Itoa(len(x.Batch.Operations))+" operation(s)")
		}
	})

// timingText is "daily 00:00 Asia/Tokyo" or "cron 0 6 * * * UTC".
func timingText(tm batch.Timing) string {
	parts := []string{}
	if tm.Cron != "" {
		parts = append(parts, "cron", tm.Cron)
	} else {
		parts = append(parts, tm.Frequency)
		if tm.At != "" {
			parts = append(parts, tm.At)
		}
		if len(tm.DaysOfWeek) > 0 {
			parts = append(parts, strings.Join(tm.DaysOfWeek, ","))
		}
		if tm.DayOfMonth != 0 {
			parts = append(parts, "day "+strconv.Itoa(tm.DayOfMonth))
		}
		if tm.Time != "" {
			parts = append(parts, tm.Time)
		}
	}
	if tm.Timezone != "" {
		parts = append(parts, tm.Timezone)
	}
	return strings.Join(parts, " ")
}

func (a *app) scheduleCommand() *cobra.Command {
	var n int
	preview := a.onObject(scheduleKind, "preview", "Show a schedule's next run times", func(cmd *cobra.Command, id string) error {
		var out struct {
			Runs []string `json:"runs"`
		}
		raw, err := a.api.get(cmd.Context(), scheduleKind.path(id)+"/preview", url.Values{"n": {strconv.Itoa(n)}}, &out)
		if err != nil {
			return err
		}
		return a.print(raw, func(t *tableWriter) {
			t.row("NEXT RUNS")
			for _, r := range out.Runs {
				t.row(r)
			}
		})
	})
	preview.Flags().IntVarP(&n, "count", "n", 5, "how many run times (at most 100)")
	cmds := append(a.crudCommands(scheduleKind),
		a.objectAction(scheduleKind, "pause", "Pause a schedule: it starts no jobs until resumed"),
		a.objectAction(scheduleKind, "resume", "Resume a paused schedule"),
		preview)
	return group("schedule", "Manage schedules that submit batches on a timetable", cmds...)
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// docTemplate is the API document's template, as YAML.
const docTemplate = `template:
  name: bulk_field_update
  description: Update multiple field properties
  parameters:
    - {name: status, type: string, required: true, enum: [active, inactive]}
    - {name: crop_type, type: string, required: false}
    - {name: area_min, type: integer, required: false, default: 0}
  operations:
    - type: update
      resource: fields
      filter: {status: active}
      template:
        status: "${status}"
        crop_type: "${crop_type}"
`

func TestTemplate_CreateListGetRunDelete(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	file := filepath.Join(t.TempDir(), "template.yaml")
	require.NoError(t, os.WriteFile(file, []byte(docTemplate), 0o600))

	r := tb.cli(t, "template", "create", file)
	require.Equal(t, 0, r.code, r.stderr)
	tmpl := decode[batch.Template](t, r.stdout)
	require.Equal(t, "bulk_field_update", tmpl.Name)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "template", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^`+tmpl.ID+`\s+bulk_field_update\s+status\*,crop_type,area_min\s+1\s+`, r.stdout)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "template", "get", tmpl.ID)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^status\s+string\s+true\s+-\s+\["active","inactive"\]`, r.stdout)

	// Run by name, with typed parameters, and follow the job.
	r = tb.cli(t, "template", "run", "bulk_field_update", "--param", "status=inactive", "-p", "crop_type=rice", "--param", "area_min=3", "--wait")
	require.Equal(t, 0, r.code, r.stderr)
	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, tmpl.ID, job.TemplateID)
	require.EqualValues(t, 40, job.Progress.Completed, "every active field")
	rec, err := tb.fields.Get(t.Context(), "field0001")
	require.NoError(t, err)
	require.Equal(t, "inactive", rec["status"])
	require.Equal(t, "rice", rec["crop_type"])

	// A value the template refuses is the API's 400.
	r = tb.cli(t, "template", "run", tmpl.ID, "--param", "status=dormant")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "INVALID_BATCH")
	require.Contains(t, r.stderr, "status")
	// A value that does not fit the declared type never leaves.
	r = tb.cli(t, "template", "run", tmpl.ID, "--param", "status=active", "--param", "area_min=many")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, `--param area_min: "many" is not an integer`)

	r = tb.cli(t, "template", "delete", tmpl.ID)
	require.Equal(t, 0, r.code, r.stderr)
	r = tb.cli(t, "template", "get", tmpl.ID)
	require.Equal(t, exitNotFound, r.code)
}

func TestSchedule_Lifecycle(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	body := `{"schedule": {"name": "Daily Field Updates", "description": "Update field status based on sensor data",
		"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "update": {"checked": true}}]},
		"timing": {"frequency": "daily", "time": "00:00", "timezone": "Asia/Tokyo"}}}`
	r := tb.cliWith(t, runOptions{stdin: body}, "schedule", "create", "-")
	require.Equal(t, 0, r.code, r.stderr)
	s := decode[batch.Schedule](t, r.stdout)
	require.NotNil(t, s.NextRunAt)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "schedule", "list")
	require.Regexp(t, `(?m)^`+s.ID+`\s+Daily Field Updates\s+active\s+daily 00:00 Asia/Tokyo\s+`, r.stdout)

	r = tb.cli(t, "schedule", "preview", s.ID, "-n", "3")
	require.Equal(t, 0, r.code, r.stderr)
	runs := decode[struct{ Runs []string }](t, r.stdout).Runs
	require.Len(t, runs, 3)
	require.True(t, strings.HasSuffix(runs[0], "T15:00:00Z"), "midnight in Tokyo: %v", runs)

	r = tb.cli(t, "schedule", "pause", s.ID)
	require.Equal(t, batch.SchedulePaused, decode[batch.Schedule](t, r.stdout).Status)
	r = tb.cli(t, "schedule", "resume", s.ID)
	require.Equal(t, batch.ScheduleActive, decode[batch.Schedule](t, r.stdout).Status)

	updated := strings.Replace(body, `"time": "00:00"`, `"time": "06:30"`, 1)
	r = tb.cliWith(t, runOptions{stdin: updated}, "schedule", "update", s.ID, "-")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "06:30", decode[batch.Schedule](t, r.stdout).Timing.Time)

	r = tb.cli(t, "schedule", "delete", s.ID)
	require.Equal(t, 0, r.code, r.stderr)
	r = tb.cli(t, "schedule", "get", s.ID)
	require.Equal(t, exitNotFound, r.code)
}

func TestWebhook_Lifecycle(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	r := tb.cli(t, "webhook", "create", "--url", tb.srv.URL+"/hook", "--event", "job_completed", "--event", "job_failed", "--description", "ci")
	require.Equal(t, 0, r.code, r.stderr)
	h := decode[batch.Webhook](t, r.stdout)
	require.True(t, strings.HasPrefix(h.Secret, "whsec_"), "the secret is shown once, at creation")
	require.Equal(t, []batch.EventType{"job_completed", "job_failed"}, h.Events)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "webhook", "list")
	require.Regexp(t, `(?m)^`+h.ID+`\s+`+tb.srv.URL+`/hook\s+job_completed,job_failed\s+ci$`, r.stdout)

	done := tb.cliWith(t, runOptions{stdin: docRequest}, "submit", "-", "--wait")
	require.Equal(t, 0, done.code, done.stderr)
	require.Eventually(t, func() bool {
		r = tb.cli(t, "webhook", "deliveries", h.ID)
		return r.code == 0 && len(decode[batch.DeliveryPage](t, r.stdout).Items) == 1
	}, 10*time.Second, 20*time.Millisecond)

	r = tb.cli(t, "webhook", "create", "-", "--url", "http://x")
	require.Equal(t, exitInvalid, r.code)
	r = tb.cli(t, "webhook", "create", "--url", "ftp://example.com/x")
	require.Equal(t, exitInvalid, r.code, "the API refuses the URL: %s", r.stderr)

	r = tb.cli(t, "webhook", "delete", h.ID)
	require.Equal(t, 0, r.code, r.stderr)
	r = tb.cli(t, "webhook", "get", h.ID)
	require.Equal(t, exitNotFound, r.code)
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	id := submitJob(t, tb, docRequest)

	r := tb.cli(t, "completion", "bash")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "__start_batchctl")

	// The shell asks for job ids; they come from the server.
	r = tb.cli(t, "__complete", "status", "")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, id+"\t")

	r = tb.cli(t, "__complete", "list", "--state", "")
	require.Contains(t, r.stdout, "paused\n")
}

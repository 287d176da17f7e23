package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// decode reads a JSON result.
func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "output: %s", s)
	return v
}

// submitJob submits a batch and returns its id.
func submitJob(t *testing.T, tb *testBundle, body string) string {
	t.Helper()
	r := tb.cliWith(t, runOptions{stdin: body}, "submit", "-")
	require.Equal(t, 0, r.code, r.stderr)
	return decode[batch.Job](t, r.stdout).ID
}

func TestSubmit_WaitFollowsTheDocumentRequestToCompletion(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)

	r := tb.cliWith(t, runOptions{stdin: docRequest}, "submit", "-", "--wait")
	require.Equal(t, 0, r.code, r.stderr)

	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	// Active and irrigated: i%3 != 2 and i even, among 60 fields.
	require.EqualValues(t, 20, job.Progress.TotalOperations)
	require.EqualValues(t, 20, job.Progress.Completed)
	require.Equal(t, 100, job.Progress.Percentage)
	require.Contains(t, r.stderr, "submitted job "+job.ID)
	require.Contains(t, r.stderr, job.ID+" completed 20/20 (100%) failed=0", "the last progress line shows the end")
	require.Equal(t, 1, tb.requested("GET "+httpapi.Prefix+"/jobs/"+job.ID+"/stream$"), "followed on the progress stream")
	require.Zero(t, tb.requested("GET "+httpapi.Prefix+"/jobs/"+job.ID+"$"), "without polling")
	// Every line is one update: no carriage returns or escape codes when
	// stderr is not a terminal.
	require.NotContains(t, r.stderr, "\r")
	require.NotContains(t, r.stderr, "\x1b")

	rec, err := tb.fields.Get(t.Context(), "field0001")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"frequency": "daily", "start_time": "06:00", "duration_minutes": float64(30)}, rec["irrigation_schedule"])
}

func TestSubmit_YAMLFileAndBareBatch(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "job.yaml")
	require.NoError(t, os.WriteFile(yamlFile, []byte(`# the document's request as YAML, without the wrapper
type: field_update
operations:
  - type: update
    resource: fields
    filter: {status: inactive}
    update:
      irrigation_schedule: {frequency: weekly, start_time: "06:00", since: 2025-01-19}
`), 0o600))

	r := tb.cli(t, "submit", yamlFile, "--wait", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.EqualValues(t, 20, job.Progress.Completed)

	rec, err := tb.fields.Get(t.Context(), "field0003")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"frequency": "weekly", "start_time": "06:00", "since": "2025-01-19"}, rec["irrigation_schedule"],
		"an unquoted YAML date stays the text it was written as")
}

func TestSubmit_WithoutWaitPrintsTheQueuedJob(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	r := tb.cliWith(t, runOptions{stdin: docRequest, ttyOut: true}, "submit", "-")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^Job:\s+batch\d+$`, r.stdout, "a table on a terminal")
	require.Regexp(t, `(?m)^Type:\s+field_update$`, r.stdout)
}

func TestSubmit_IdempotencyKeyReturnsTheFirstJob(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	first := tb.cliWith(t, runOptions{stdin: docRequest}, "submit", "-", "--idempotency-key", "nightly-1")
	second := tb.cliWith(t, runOptions{stdin: docRequest}, "submit", "-", "--idempotency-key", "nightly-1")
	require.Equal(t, 0, first.code, first.stderr)
	require.Equal(t, 0, second.code, second.stderr)
	require.Equal(t, decode[batch.Job](t, first.stdout).ID, decode[batch.Job](t, second.stdout).ID)
}

// failingBatch fails: a validation rule no inactive field passes, with no
// failures allowed.
const failingBatch = `{"batch": {"type": "check", "operations": [{"type": "validate", "resource": "fields",
	"filter": {"status": "inactive"}, "rules": {"huge": "record.area > 1000"}}], "options": {"max_failure_rate": 0}}}`

func TestWait_FailedJobExitsOneWithTheJobsError(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	r := tb.cliWith(t, runOptions{stdin: failingBatch}, "submit", "-", "--wait")
	require.Equal(t, exitFailure, r.code, r.stderr)
	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateFailed, job.Status, "the failed job is still printed")
	require.Contains(t, r.stderr, "Error: job "+job.ID+" failed")
	require.Contains(t, r.stderr, "EXECUTION_ERROR")
	require.Contains(t, r.stderr, "VALIDATION_ERROR", "the item errors that failed it are listed")

	again := tb.cli(t, "wait", job.ID)
	require.Equal(t, exitFailure, again.code, "wait on a finished failed job")
}

func TestPauseResumeCancel(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	// Ten items, one at a time: the pause takes hold long before the last.
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 10}}], "options": {"parallel": false}}}`)
	tb.waitRunning(t, id)

	var r result
	tb.letItemsThrough(func() { r = tb.cli(t, "pause", id) })
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, batch.StatePaused, decode[batch.Job](t, r.stdout).Status)

	r = tb.cli(t, "pause", id)
	require.Equal(t, exitFailure, r.code, "pausing a paused job is a 409")
	require.Contains(t, r.stderr, "HTTP 409")

	r = tb.cli(t, "resume", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotEqual(t, batch.StatePaused, decode[batch.Job](t, r.stdout).Status)

	r = tb.cli(t, "cancel", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, batch.StateCancelled, decode[batch.Job](t, r.stdout).Status)

	r = tb.cli(t, "wait", id)
	require.Equal(t, exitFailure, r.code, "a cancelled job is not a success")
	require.Contains(t, r.stderr, "job "+id+" cancelled")

	r = tb.cli(t, "delete", id)
	require.Equal(t, 0, r.code, r.stderr)
	r = tb.cli(t, "status", id)
	require.Equal(t, exitNotFound, r.code)
	r = tb.cli(t, "events", id, "--all")
	require.Equal(t, 0, r.code, "the audit trail outlives the job: %s", r.stderr)
	var types []string
	for _, e := range decode[batch.EventPage](t, r.stdout).Items {
		types = append(types, string(e.Type))
	}
	require.Equal(t, []string{"job_created", "job_paused", "job_resumed", "job_cancelled", "job_deleted"}, filterJobEvents(types))
}

// filterJobEvents drops job_started, whose place depends on timing.
func filterJobEvents(types []string) []string {
	var out []string
	for _, s := range types {
		if s != "job_started" {
			out = append(out, s)
		}
	}
	return out
}

func TestWait_ProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 2}}]}}`)
	tb.release()
	r := tb.cliWith(t, runOptions{ttyErr: true}, "wait", id, "--poll-interval", "20ms")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "100%", "the bar fills when the job completes")
	require.Contains(t, r.stderr, "[==============================]")
	require.Contains(t, r.stderr, id+" completed 2/2")
	require.Contains(t, r.stderr, "\r", "the bar redraws in place")
}

func TestErrorsAndArtifacts(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	r := tb.cliWith(t, runOptions{stdin: `{"batch": {"type": "export_and_check", "operations": [
		{"type": "export", "resource": "fields", "filter": {"crop_type": "rice"}, "destination": {"format": "json"}},
		{"type": "validate", "resource": "fields", "filter": {"status": "inactive"}, "rules": {"big": "record.area > 20"}}]}}`},
		"submit", "-", "--wait")
	require.Equal(t, 0, r.code, "a completed job with failed items succeeds: %s", r.stderr)
	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Positive(t, job.Progress.Failed)

	// errors: every failed item, across pages.
	r = tb.cli(t, "errors", job.ID, "--limit", "3", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	errs := decode[batch.ErrorPage](t, r.stdout).Items
	require.Len(t, errs, int(job.Progress.Failed))
	for _, e := range errs {
		require.Equal(t, batch.CodeValidation, e.Error.Code)
		require.Contains(t, e.Error.Message, "big")
	}
	r = tb.cli(t, "errors", job.ID, "--limit", "3")
	page := decode[batch.ErrorPage](t, r.stdout)
	require.Len(t, page.Items, 3)
	require.NotEmpty(t, page.NextCursor)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "errors", job.ID, "--limit", "3")
	require.Regexp(t, `(?m)^INDEX\s+OPERATION\s+RESOURCE\s+CODE`, r.stdout)
	require.Regexp(t, `(?m)^\d+\s+(1|-)\s+field\d+\s+VALIDATION_ERROR\s+1\s+failed\s+failed rules: big$`, r.stdout)
	require.Contains(t, r.stderr, "more: --cursor "+page.NextCursor)

	// status shows the first errors and the results.
	r = tb.cliWith(t, runOptions{ttyOut: true}, "status", job.ID)
	require.Regexp(t, `(?m)^ERROR INDEX\s+OPERATION\s+RESOURCE\s+CODE\s+ATTEMPTS\s+MESSAGE$`, r.stdout)
	require.Regexp(t, `(?m)^RESULT\s+TYPE\s+ARTIFACT\s+SIZE\s+SUMMARY\n0\s+export\s+\S+\.json\s+\d+\s+`, r.stdout)
	if job.Progress.Failed > batch.JobErrorsInline {
		require.Contains(t, r.stdout, fmt.Sprintf("... %d more: batchctl errors %s", job.Progress.Failed-batch.JobErrorsInline, job.ID))
	}

	// artifacts: listed, then downloaded byte for byte.
	r = tb.cli(t, "artifact", "list", job.ID)
	require.Equal(t, 0, r.code, r.stderr)
	arts := decode[struct{ Artifacts []batch.Artifact }](t, r.stdout).Artifacts
	require.Len(t, arts, 1)
	_, rc, err := tb.engine.OpenArtifact(t.Context(), job.ID, arts[0].Name)
	require.NoError(t, err)
	want, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())

	out := filepath.Join(t.TempDir(), "fields.json")
	r = tb.cli(t, "artifact", "get", job.ID, arts[0].Name, "-o", out)
	require.Equal(t, 0, r.code, r.stderr)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Len(t, decode[[]map[string]any](t, string(got)), 20, "the export holds the rice fields")

	r = tb.cli(t, "artifact", "get", job.ID, arts[0].Name)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, string(want), r.stdout, "without -o the artifact goes to stdout")

	missing := filepath.Join(t.TempDir(), "missing.json")
	r = tb.cli(t, "artifact", "get", job.ID, "nope.json", "-o", missing)
	require.Equal(t, exitNotFound, r.code)
	require.NoFileExists(t, missing, "a failed download leaves no file")
}

func TestList_FiltersAndPages(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	var completed, failed []string
	for _, body := range []string{docRequest, failingBatch, docRequest, failingBatch} {
		r := tb.cliWith(t, runOptions{stdin: body}, "submit", "-", "--wait", "--quiet")
		job := decode[batch.Job](t, r.stdout)
		if job.Status == batch.StateFailed {
			failed = append(failed, job.ID)
		} else {
			completed = append(completed, job.ID)
		}
	}
	require.Len(t, failed, 2)

	r := tb.cli(t, "list", "--state", "failed")
	require.Equal(t, 0, r.code, r.stderr)
	var ids []string
	for _, j := range decode[batch.JobPage](t, r.stdout).Items {
		ids = append(ids, j.ID)
	}
	require.ElementsMatch(t, failed, ids)

	r = tb.cli(t, "list", "--limit", "3")
	first := decode[batch.JobPage](t, r.stdout)
	require.Len(t, first.Items, 3)
	require.NotEmpty(t, first.NextCursor)
	r = tb.cli(t, "list", "--limit", "3", "--cursor", first.NextCursor)
	second := decode[batch.JobPage](t, r.stdout)
	require.Len(t, second.Items, 1)
	require.Empty(t, second.NextCursor)

	r = tb.cli(t, "list", "--limit", "1", "--all")
	require.Len(t, decode[batch.JobPage](t, r.stdout).Items, 4)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "list")
	require.Regexp(t, `(?m)^JOB ID\s+STATUS\s+TYPE\s+PROGRESS`, r.stdout)
	require.Regexp(t, `(?m)^`+failed[1]+`\s+failed\s+check\s+`, r.stdout)
	require.Regexp(t, `(?m)^`+completed[1]+`\s+completed\s+field_update\s+20/20 \(100%\)`, r.stdout)

	r = tb.cli(t, "list", "--state", "sleeping")
	require.Equal(t, exitInvalid, r.code, "a bad filter is the API's 400")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(docRequest), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("operations:\n  - type: update\n    resource: fields\n    fliter: {status: active}\n"), 0o600))
	env := map[string]string{envServer: "ftp://nowhere"} // validate needs no server

	r := runCLI(t, runOptions{}, env, "validate", good)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, map[string]any{"valid": true, "operations": float64(1)}, decode[map[string]any](t, r.stdout))

	r = runCLI(t, runOptions{}, env, "validate", bad)
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "INVALID_BATCH")
	require.Contains(t, r.stderr, "operations[0].fliter")

	r = runCLI(t, runOptions{stdin: "{\"batch\": {\"operations\": [}"}, env, "validate", "-")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "not valid JSON")
}

func TestGlobalFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	id := submitJob(t, tb, docRequest)

	// Flags win over the environment.
	r := runCLI(t, runOptions{}, map[string]string{envServer: "http://127.0.0.1:1", envAPIKey: "wrong"},
		"--server", tb.srv.URL, "--api-key", testKey, "status", id)
	require.Equal(t, 0, r.code, r.stderr)

	// The server URL may name the API prefix and omit the scheme.
	host := strings.TrimPrefix(tb.srv.URL, "http://")
	r = runCLI(t, runOptions{}, map[string]string{envServer: host + "/api/v1/batch/", envAPIKey: testKey}, "status", id)
	require.Equal(t, 0, r.code, r.stderr)

	// JSON when piped, a table on a terminal, either on request.
	r = tb.cli(t, "status", id)
	require.Equal(t, id, decode[batch.Job](t, r.stdout).ID)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "status", id)
	require.Regexp(t, `(?m)^Job:\s+`+id+`$`, r.stdout)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "status", id, "--output", "json")
	require.Equal(t, id, decode[batch.Job](t, r.stdout).ID)
	r = tb.cli(t, "status", id, "--output", "table")
	require.Regexp(t, `(?m)^Progress:\s+\d+/20 `, r.stdout)
	r = tb.cli(t, "status", id, "--output", "yaml")
	require.Equal(t, exitInvalid, r.code)
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	id := submitJob(t, tb, docRequest)

	tests := []struct {
		name   string
		env    map[string]string
		stdin  string
		args   []string
		code   int
		stderr []string
	}{
		{name: "invalid batch is 2 with the details", stdin: `{"batch": {"operations": [{"type": "process"}]}}`, args: []string{"submit", "-"},
			code: exitInvalid, stderr: []string{"Invalid batch job configuration (INVALID_BATCH, HTTP 400)", "operations[0].type: INVALID_OPERATION: Unknown operation type: process"}},
		{name: "not JSON or YAML is 2", stdin: "operations: [", args: []string{"submit", "-"}, code: exitInvalid, stderr: []string{"not valid JSON or YAML"}},
		{name: "unknown job is 3", args: []string{"status", "batch999"}, code: exitNotFound, stderr: []string{"NOT_FOUND, HTTP 404"}},
		{name: "unknown template is 3", args: []string{"template", "run", "nothing"}, code: exitNotFound, stderr: []string{"no template with id or name \"nothing\""}},
		{name: "wrong key is 5", env: map[string]string{envAPIKey: "wrong"}, args: []string{"status", id}, code: exitAuth, stderr: []string{"UNAUTHORIZED, HTTP 401"}},
		{name: "no key is 5", env: map[string]string{envAPIKey: ""}, args: []string{"list"}, code: exitAuth, stderr: []string{"a valid API key is required"}},
		{name: "conflict is 1", args: []string{"resume", id}, code: exitFailure, stderr: []string{"HTTP 409"}},
		{name: "unreachable server is 1", env: map[string]string{envServer: "http://127.0.0.1:1"}, args: []string{"list"}, code: exitFailure, stderr: []string{"connection refused"}},
		{name: "missing argument is 2", args: []string{"status"}, code: exitInvalid, stderr: []string{"needs 1 argument(s) (JOB_ID)"}},
		{name: "unknown flag is 2", args: []string{"list", "--colour"}, code: exitInvalid, stderr: []string{"unknown flag: --colour"}},
		{name: "unknown command is 2", args: []string{"sumbit"}, code: exitInvalid, stderr: []string{`unknown command "sumbit"`}},
		{name: "bad param is 2", args: []string{"template", "run", "x", "--param", "novalue"}, code: exitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tb.cliWith(t, runOptions{stdin: tt.stdin, env: tt.env}, tt.args...)
			require.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
			for _, s := range tt.stderr {
				require.Contains(t, r.stderr, s)
			}
			require.Empty(t, r.stdout, "errors go to stderr only")
		})
	}
}

func TestExitCodes_RateLimited(t *testing.T) {
	t.Parallel()
	tb := setup(t, &serverOptions{rateLimits: rateLimitsStatus(2)})
	id := submitJob(t, tb, docRequest)
	for range 2 {
		r := tb.cli(t, "status", id)
		require.Equal(t, 0, r.code, r.stderr)
	}
	r := tb.cli(t, "status", id)
	require.Equal(t, exitRateLimit, r.code)
	require.Contains(t, r.stderr, "RATE_LIMITED, HTTP 429")
	require.Regexp(t, `retry after \d+`, r.stderr)
}

func TestWait_GivesUpAfterWaitTimeout(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil)
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 1}}]}}`)
	r := tb.cli(t, "wait", id, "--wait-timeout", "300ms", "--poll-interval", "20ms")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "job "+id+" did not finish within 300ms (it goes on on the server)")
	require.Empty(t, r.stdout)
	j, err := tb.engine.Job(t.Context(), id)
	require.NoError(t, err)
	require.False(t, j.Status.Final(), "giving up does not touch the job")
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestSubmit_WaitFollowsTheDocumentRequestToCompletion(t *testing.T) {
	tb := setup(t, nil)

	r := tb.cliWith(t, runOptions{stdin: docRequest}, "submit", "-", "--wait")
	require.Equal(t, 0, r.code, r.stderr)

	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	// Active and irrigated: 16 of the 60 demo fields.
	require.EqualValues(t, 16, job.Progress.TotalOperations)
	require.EqualValues(t, 16, job.Progress.Completed)
	require.Equal(t, 100, job.Progress.Percentage)
	require.Contains(t, r.stderr, "submitted job "+job.ID)
	require.Contains(t, r.stderr, job.ID+" completed 16/16 (100%) failed=0", "the last progress line shows the end")
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

func TestSubmit_WithoutWaitPrintsTheQueuedJob(t *testing.T) {
	tb := setup(t, nil)
	r := tb.cliWith(t, runOptions{stdin: docRequest, ttyOut: true}, "submit", "-")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^Job:\s+batch\d+$`, r.stdout, "a table on a terminal")
	require.Regexp(t, `(?m)^Type:\s+field_update$`, r.stdout)
}

func TestSubmit_IdempotencyKeyReturnsTheFirstJob(t *testing.T) {
	tb := setup(t, nil)
	first := runOK[batch.Job](t, tb, docRequest, "submit", "-", "--idempotency-key", "nightly-1")
	second := runOK[batch.Job](t, tb, docRequest, "submit", "-", "--idempotency-key", "nightly-1")
	require.Equal(t, first.ID, second.ID)
}

// failingBatch fails: a validation rule no inactive field passes, with no
// failures allowed.
const failingBatch = `{"batch": {"type": "check", "operations": [{"type": "validate", "resource": "fields",
	"filter": {"status": "inactive"}, "rules": {"huge": "record.area > 1000"}}], "options": {"max_failure_rate": 0}}}`

func TestWait_FailedJobExitsOneWithTheJobsError(t *testing.T) {
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
	tb := setup(t, nil)
	// Ten items, one at a time; the item in flight finishes once the pause
	// takes hold, and none starts after it.
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 10, "finish_on_stop": true}}], "options": {"parallel": false}}}`)
	tb.waitRunning(t, id)

	r := tb.cli(t, "pause", id)
	require.Equal(t, 0, r.code, r.stderr)
	paused := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StatePaused, paused.Status)
	require.LessOrEqual(t, paused.Progress.Completed, int64(1))

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

func TestErrors(t *testing.T) {
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
}

func TestList_FiltersAndPages(t *testing.T) {
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
	require.Regexp(t, `(?m)^`+completed[1]+`\s+completed\s+field_update\s+16/16 \(100%\)`, r.stdout)

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

func TestWait_GivesUpAfterWaitTimeout(t *testing.T) {
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

package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// TestDryRun_HTTP: POST /jobs?dry_run=true answers what the document's
// request would do and stores no job.
func TestDryRun_HTTP(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.must(t, http.StatusOK, "POST", "/jobs?dry_run=true", docRequest)
	ops := res.data["operations"].([]any)
	require.Len(t, ops, 1)
	op := ops[0].(map[string]any)
	require.Equal(t, 50.0, op["items"])
	require.Equal(t, "update", op["type"])
	samples := op["samples"].([]any)
	require.Len(t, samples, batch.DryRunSamples)
	s := samples[0].(map[string]any)
	require.Equal(t, "field000", s["resource_id"])
	require.NotContains(t, s["before"], "irrigation_schedule")
	require.Contains(t, s["after"], "irrigation_schedule")
	require.NotEmpty(t, op["estimated_duration"])
	require.Empty(t, tb.do(t, "GET", "/jobs", "").data["jobs"], "nothing stored")

	bad := tb.do(t, "POST", "/jobs?dry_run=maybe", docRequest)
	require.Equal(t, http.StatusBadRequest, bad.status)
	bad = tb.do(t, "POST", "/jobs?dry_run=true", `{"batch": {"operations": [{"type": "nope"}]}}`)
	require.Equal(t, http.StatusBadRequest, bad.status)
	require.Equal(t, "INVALID_BATCH", bad.err["code"])
}

// TestDryRun_HTTPRateBudget: dry runs spend the status budget, not the
// job-creation one.
func TestDryRun_HTTPRateBudget(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{RateLimits: httpapi.RateLimits{
		JobCreation:  httpapi.Limit{Requests: 1, Per: time.Hour},
		StatusChecks: httpapi.Limit{Requests: 3, Per: time.Hour},
	}}, nil)
	for range 3 {
		require.Equal(t, http.StatusOK, tb.do(t, "POST", "/jobs?dry_run=true", docRequest).status)
	}
	res := tb.do(t, "POST", "/jobs?dry_run=true", docRequest)
	require.Equal(t, http.StatusTooManyRequests, res.status, "the status budget is spent")
	require.Equal(t, http.StatusCreated, tb.do(t, "POST", "/jobs", docRequest).status, "the creation budget is not")
	require.Equal(t, http.StatusTooManyRequests, tb.do(t, "POST", "/jobs", docRequest).status)
}

// TestRevert_HTTP: POST /jobs/{job_id}/revert makes the linked revert job
// for the owner only; reverting again is 409.
func TestRevert_HTTP(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("alice-key", "bob-key")}, nil)
	alice := bearer("alice-key")
	bob := bearer("bob-key")
	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=10s", docRequest, alice...)
	id := res.data["job_id"].(string)
	require.Equal(t, "completed", res.data["status"])

	require.Equal(t, http.StatusNotFound, tb.do(t, "POST", "/jobs/"+id+"/revert", "", bob...).status, "not bob's job")
	require.Equal(t, http.StatusNotFound, tb.do(t, "POST", "/jobs/"+id+"/revert?dry_run=true", "", bob...).status, "not bob's job")
	dr := tb.must(t, http.StatusOK, "POST", "/jobs/"+id+"/revert?dry_run=true", "", alice...)
	op := dr.data["operations"].([]any)[0].(map[string]any)
	require.Equal(t, 50.0, op["items"])
	require.Equal(t, "revert", op["type"])
	s := op["samples"].([]any)[0].(map[string]any)
	require.Equal(t, "fields/field000", s["resource_id"])
	require.Contains(t, s["before"], "irrigation_schedule", "as it is")
	require.NotContains(t, s["after"], "irrigation_schedule", "as it would be again")
	require.Empty(t, tb.do(t, "GET", "/jobs/"+id, "", alice...).data["reverted_by"], "a dry run reverts nothing")
	bad := tb.do(t, "POST", "/jobs/"+id+"/revert", `{"force": "yes"}`, alice...)
	require.Equal(t, http.StatusBadRequest, bad.status)

	rv := tb.must(t, http.StatusCreated, "POST", "/jobs/"+id+"/revert", `{"force": false}`, alice...)
	rid := rv.data["job_id"].(string)
	require.Equal(t, id, rv.data["reverts"])
	require.Equal(t, httpapi.Prefix+"/jobs/"+rid, rv.header.Get("Location"))
	tb.waitStatus(t, rid, "completed", alice...)
	got := tb.do(t, "GET", "/jobs/"+rid, "", alice...)
	require.Equal(t, map[string]any{"restored": 50.0, "skipped": 0.0, "forced": 0.0}, got.data["revert"])
	require.Equal(t, rid, tb.do(t, "GET", "/jobs/"+id, "", alice...).data["reverted_by"])

	again := tb.must(t, http.StatusConflict, "POST", "/jobs/"+id+"/revert", "", alice...)
	require.Equal(t, "INVALID_STATE", again.err["code"])
	require.Contains(t, again.err["message"], "reverted it already")
}

package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestCreateAndGetJob(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.must(t, http.StatusCreated, "POST", "/jobs", docRequest)
	id, _ := res.data["job_id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "queued", res.data["status"])
	require.NotEmpty(t, res.data["created_at"])
	require.NotEmpty(t, res.data["estimated_completion"])
	require.Equal(t, map[string]any{"total_operations": 50.0, "completed": 0.0, "failed": 0.0, "percentage": 0.0}, res.data["progress"])
	require.Equal(t, httpapi.Prefix+"/jobs/"+id, res.header.Get("Location"))

	tb.waitStatus(t, id, "completed")
	got := tb.must(t, http.StatusOK, "GET", "/jobs/"+id, "")
	p := got.data["progress"].(map[string]any)
	require.Equal(t, 50.0, p["completed"])
	require.Equal(t, 100.0, p["percentage"])
	st := got.data["statistics"].(map[string]any)
	require.Equal(t, 100.0, st["success_rate"])
	require.IsType(t, "", st["average_operation_time"])
	require.NotEmpty(t, got.data["started_at"])
}

func TestCreateJob_Wait(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=10s", docRequest)
	require.Equal(t, "completed", res.data["status"])

	failing := `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "field001"}]}], "options": {"validation": {"on_error": "abort"}}}}`
	res = tb.must(t, http.StatusInternalServerError, "POST", "/jobs?wait=10s", failing)
	require.Equal(t, "EXECUTION_ERROR", res.err["code"])
	details := res.err["details"].([]any)
	require.Len(t, details, 1)
	d := details[0].(map[string]any)
	require.Equal(t, 0.0, d["operation_index"])
	require.Equal(t, "RESOURCE_ERROR", d["code"])
	require.Equal(t, "Resource already exists: field001", d["message"])

	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/jobs?wait=soon", docRequest).status)
}

func TestJobControl(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	tb := setup(t, nil, &batch.Options{Operations: map[string]batch.Operation{"gated": pausableOp(gate, 20)}})
	id := tb.submit(t, `{"batch": {"operations": [{"type": "gated"}], "options": {"max_concurrent": 2}}}`)

	tb.waitStatus(t, id, "running")
	require.Equal(t, http.StatusConflict, tb.do(t, "DELETE", "/jobs/"+id, "").status)
	require.Equal(t, http.StatusConflict, tb.do(t, "POST", "/jobs/"+id+"/resume", "").status)
	// The items in flight (two at most) finish once the pause takes hold;
	// none starts after it, or it would finish at once too.
	res := tb.must(t, http.StatusOK, "POST", "/jobs/"+id+"/pause", "")
	require.Equal(t, "paused", res.data["status"])
	require.LessOrEqual(t, res.data["progress"].(map[string]any)["completed"], 2.0)
	res = tb.must(t, http.StatusConflict, "POST", "/jobs/"+id+"/pause", "")
	require.Equal(t, "INVALID_STATE", res.err["code"])
	close(gate)
	tb.must(t, http.StatusOK, "POST", "/jobs/"+id+"/resume", "")
	tb.waitStatus(t, id, "completed")
	require.Equal(t, http.StatusConflict, tb.do(t, "POST", "/jobs/"+id+"/cancel", "").status)

	list := tb.must(t, http.StatusOK, "GET", "/jobs?state=completed", "")
	require.Len(t, list.data["jobs"], 1)
	require.Equal(t, http.StatusBadRequest, tb.do(t, "GET", "/jobs?state=done", "").status)
	require.Equal(t, http.StatusBadRequest, tb.do(t, "GET", "/jobs?limit=0", "").status)

	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/jobs/"+id, "").status)
	for _, path := range []string{"/jobs/" + id, "/jobs/nope", "/jobs/batch999/errors"} {
		res := tb.must(t, http.StatusNotFound, "GET", path, "")
		require.Equal(t, "NOT_FOUND", res.err["code"])
	}
	for _, path := range []string{"/jobs/batch999/pause", "/jobs/batch999/resume", "/jobs/batch999/cancel"} {
		require.Equal(t, http.StatusNotFound, tb.do(t, "POST", path, "").status, path)
	}
}

func TestErrorsAndArtifacts(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	// Five creates collide with existing fields; one export.
	var recs []string
	for i := range 15 {
		recs = append(recs, fmt.Sprintf(`{"id": "field%03d"}`, i*20+1))
	}
	body := `{"batch": {"operations": [
		{"type": "create", "resource": "fields", "records": [` + strings.Join(recs, ",") + `]},
		{"type": "export", "resource": "fields", "filter": {"status": "inactive"}, "destination": {"format": "csv"}}
	]}}`
	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=10s", body)
	id := res.data["job_id"].(string)
	p := res.data["progress"].(map[string]any)
	require.Equal(t, 10.0, p["failed"])
	require.Len(t, res.data["errors"], 10)

	var seen []any
	cursor := ""
	for {
		page := tb.must(t, http.StatusOK, "GET", "/jobs/"+id+"/errors?limit=4&cursor="+cursor, "")
		for _, e := range page.data["errors"].([]any) {
			em := e.(map[string]any)
			require.Equal(t, "RESOURCE_ERROR", em["error"].(map[string]any)["code"])
			require.Equal(t, "failed", em["status"])
			seen = append(seen, em["resource_id"])
		}
		next, _ := page.data["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, seen, 10)

	results := res.data["results"].([]any)
	require.Len(t, results, 1)
	art := results[0].(map[string]any)["artifact"].(map[string]any)
	url := art["url"].(string)
	require.Equal(t, httpapi.Prefix+"/jobs/"+id+"/artifacts/export-1.csv", url)
	dl, err := http.Get(tb.srv.URL + url)
	require.NoError(t, err)
	defer dl.Body.Close()
	require.Equal(t, http.StatusOK, dl.StatusCode)
	require.Equal(t, "text/csv", dl.Header.Get("Content-Type"))
	require.Equal(t, `attachment; filename=export-1.csv`, dl.Header.Get("Content-Disposition"))
	csv, err := io.ReadAll(dl.Body)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(len(csv)), dl.Header.Get("Content-Length"))
	require.Equal(t, 101, bytes.Count(csv, []byte("\n")), "a header and 100 inactive fields")
	head := tb.must(t, http.StatusOK, "HEAD", "/jobs/"+id+"/artifacts/export-1.csv", "")
	require.Empty(t, head.body, "HEAD answers the headers only")
	require.Equal(t, strconv.Itoa(len(csv)), head.header.Get("Content-Length"))
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/jobs/"+id+"/artifacts/missing.csv", "").status)
}

// TestAuthAndOwnership: a job belongs to the principal that created it;
// another gets 404 for it on every route and never sees it in a list. Its
// audit trail names who did what and stays private after the job is
// deleted.
func TestAuthAndOwnership(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("alice-key", "bob-key")}, nil)
	alice, bob := bearer("alice-key"), bearer("bob-key")
	id := tb.submit(t, docRequest, alice...)
	tb.must(t, http.StatusOK, "GET", "/jobs/"+id, "", alice...)
	for _, c := range []struct{ method, path string }{{"GET", "/jobs/" + id}, {"GET", "/jobs/" + id + "/errors"}, {"POST", "/jobs/" + id + "/cancel"}, {"DELETE", "/jobs/" + id}} {
		tb.must(t, http.StatusNotFound, c.method, c.path, "", bob...)
	}
	require.Empty(t, tb.do(t, "GET", "/jobs", "", bob...).data["jobs"], "bob never sees alice's job")
	require.Len(t, tb.do(t, "GET", "/jobs", "", alice...).data["jobs"], 1)

	tb.waitStatus(t, id, "completed", alice...)
	tb.must(t, http.StatusNoContent, "DELETE", "/jobs/"+id, "", alice...)
	require.Eventually(t, func() bool {
		events := tb.do(t, "GET", "/jobs/"+id+"/events", "", alice...)
		list, _ := events.data["events"].([]any)
		return events.status == http.StatusOK && len(list) >= 4 && list[len(list)-1].(map[string]any)["type"] == "job_deleted"
	}, 10*time.Second, 5*time.Millisecond)
	events := tb.do(t, "GET", "/jobs/"+id+"/events", "", alice...)
	var types []string
	for _, ev := range events.data["events"].([]any) {
		m := ev.(map[string]any)
		types = append(types, m["type"].(string))
		require.NotEmpty(t, m["at"])
	}
	require.Equal(t, []string{"job_created", "job_started", "job_completed", "job_deleted"}, types)
	first := events.data["events"].([]any)[0].(map[string]any)
	require.Equal(t, first["principal"], events.data["events"].([]any)[3].(map[string]any)["principal"])
	require.NotEmpty(t, first["principal"])
	page := tb.must(t, http.StatusOK, "GET", "/jobs/"+id+"/events?limit=2", "", alice...)
	require.Len(t, page.data["events"], 2, "the trail pages")
	tb.must(t, http.StatusNotFound, "GET", "/jobs/"+id+"/events", "", bob...)
	tb.must(t, http.StatusNotFound, "GET", "/jobs/batch9999/events", "", alice...)
}

// TestCreateJob_WaitOutlivesWriteTimeout: POST /jobs?wait= answers a job
// that takes longer than the server's WriteTimeout, which the wait extends
// for its own connection.
func TestCreateJob_WaitOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 100 * time.Millisecond
	gate := make(chan struct{})
	var openGate sync.Once
	e := newEngine(t, &batch.Options{Operations: map[string]batch.Operation{"gated": gatedOp(gate, 1)}})
	srv := httptest.NewUnstartedServer(httpapi.New(e, &httpapi.Options{DisableRateLimits: true}))
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	// Runs before srv.Close (cleanups run last first), so a failed test
	// does not leave the handler waiting on the gate.
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) })

	type answer struct {
		res *http.Response
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := http.Post(srv.URL+httpapi.Prefix+"/jobs?wait=10s", "application/json", strings.NewReader(`{"batch": {"operations": [{"type": "gated"}]}}`))
		answered <- answer{res, err}
	}()
	// The handler has the request once its job runs; the gate holds the
	// job, and so the answer, past the WriteTimeout.
	require.Eventually(t, func() bool {
		page, err := e.Jobs(t.Context(), &batch.ListOptions{State: batch.StateRunning})
		return err == nil && len(page.Items) == 1
	}, 10*time.Second, time.Millisecond, "the job runs")
	time.Sleep(3 * writeTimeout) // exceeds the timeout: it waits for no event
	openGate.Do(func() { close(gate) })

	a := <-answered
	require.NoError(t, a.err)
	defer a.res.Body.Close()
	var body struct {
		Data batch.Job `json:"data"`
	}
	require.NoError(t, json.NewDecoder(a.res.Body).Decode(&body))
	require.Equal(t, http.StatusCreated, a.res.StatusCode)
	require.Equal(t, batch.StateCompleted, body.Data.Status)
}

// TestJobRequests_Edges: ?wait= is a duration, status is another name for
// state, and the revert body is an optional {"force": bool}.
func TestJobRequests_Edges(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.must(t, http.StatusBadRequest, "POST", "/jobs?wait=-1s", docRequest)
	require.Equal(t, "wait", res.err["details"].([]any)[0].(map[string]any)["field"])
	id := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=10s", docRequest).data["job_id"].(string)
	require.Len(t, tb.must(t, http.StatusOK, "GET", "/jobs?status=completed", "").data["jobs"], 1, "status is another name for state")
	require.Empty(t, tb.must(t, http.StatusOK, "GET", "/jobs?status=failed", "").data["jobs"])
	for _, body := range []string{`{"force": true} {}`, `{"forse": true}`, `[true]`} {
		tb.must(t, http.StatusBadRequest, "POST", "/jobs/"+id+"/revert", body)
	}
	tb.must(t, http.StatusUnsupportedMediaType, "POST", "/jobs/"+id+"/revert", "force", "Content-Type", "text/plain")
	tb.must(t, http.StatusBadRequest, "POST", "/jobs/"+id+"/revert?dry_run=perhaps", "")
	tb.must(t, http.StatusCreated, "POST", "/jobs/"+id+"/revert", "{}")
}

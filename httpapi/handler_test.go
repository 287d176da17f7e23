package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testBundle is an engine on a bbolt file served by httpapi under httptest.
type testBundle struct {
	e   *batch.Engine
	srv *httptest.Server
}

func setup(t testing.TB, opts *httpapi.Options, eopts *batch.Options) *testBundle {
	t.Helper()
	e, err := batch.Open(t.TempDir()+"/api.db", eopts)
	require.NoError(t, err)
	// The document's filter fields are indexed, so a submission knows its
	// total at once.
	require.NoError(t, e.DefineCollection("fields", &batch.CollectionOptions{Indexes: []string{"status", "irrigation_enabled"}}))
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	recs := make([]batch.Record, 200)
	for i := range recs {
		recs[i] = batch.Record{"id": fmt.Sprintf("field%03d", i), "status": []string{"active", "inactive"}[i%2], "irrigation_enabled": i%4 < 2}
	}
	require.NoError(t, fields.PutMany(context.Background(), recs))
	require.NoError(t, fields.WaitIndexes(context.Background()))
	if opts == nil {
		opts = &httpapi.Options{DisableRateLimits: true}
	}
	mux := http.NewServeMux()
	mux.Handle(httpapi.Prefix+"/", checkOpenAPI(t, httpapi.New(e, opts)))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Close(ctx))
	})
	return &testBundle{e: e, srv: srv}
}

// response is a decoded API answer.
type response struct {
	status int
	header http.Header
	body   []byte
	data   map[string]any
	err    map[string]any
}

// do sends a request with a JSON body (string) and optional headers.
func (tb *testBundle) do(t testing.TB, method, path, body string, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tb.srv.URL+httpapi.Prefix+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	out := &response{status: res.StatusCode, header: res.Header}
	out.body, err = io.ReadAll(res.Body)
	require.NoError(t, err)
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		var m map[string]any
		require.NoError(t, json.Unmarshal(out.body, &m), string(out.body))
		out.data, _ = m["data"].(map[string]any)
		out.err, _ = m["error"].(map[string]any)
	}
	return out
}

const docRequest = `{
    "batch": {
        "type": "field_update",
        "description": "Update irrigation schedules for all active fields",
        "operations": [
            {
                "type": "update",
                "resource": "fields",
                "filter": {"status": "active", "irrigation_enabled": true},
                "update": {"irrigation_schedule": {"frequency": "daily", "start_time": "06:00", "duration_minutes": 30}}
            }
        ],
        "options": {
            "parallel": true,
            "max_concurrent": 5,
            "retry": {"attempts": 3, "backoff": "exponential"},
            "validation": {"mode": "strict", "on_error": "skip"}
        }
    }
}`

func TestCreateAndGetJob(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.do(t, "POST", "/jobs", docRequest)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id, _ := res.data["job_id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "queued", res.data["status"])
	require.NotEmpty(t, res.data["created_at"])
	require.NotEmpty(t, res.data["estimated_completion"])
	require.Equal(t, map[string]any{"total_operations": 50.0, "completed": 0.0, "failed": 0.0, "percentage": 0.0}, res.data["progress"])
	require.Equal(t, httpapi.Prefix+"/jobs/"+id, res.header.Get("Location"))

	require.Eventually(t, func() bool {
		return tb.do(t, "GET", "/jobs/"+id, "").data["status"] == "completed"
	}, 10*time.Second, 5*time.Millisecond)
	got := tb.do(t, "GET", "/jobs/"+id, "")
	require.Equal(t, http.StatusOK, got.status)
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
	res := tb.do(t, "POST", "/jobs?wait=10s", docRequest)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	require.Equal(t, "completed", res.data["status"])

	failing := `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "field001"}]}], "options": {"validation": {"on_error": "abort"}}}}`
	res = tb.do(t, "POST", "/jobs?wait=10s", failing)
	require.Equal(t, http.StatusInternalServerError, res.status, string(res.body))
	require.Equal(t, "EXECUTION_ERROR", res.err["code"])
	details := res.err["details"].([]any)
	require.Len(t, details, 1)
	d := details[0].(map[string]any)
	require.Equal(t, 0.0, d["operation_index"])
	require.Equal(t, "RESOURCE_ERROR", d["code"])
	require.Equal(t, "Resource already exists: field001", d["message"])

	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/jobs?wait=soon", docRequest).status)
}

func TestCreateJob_BadRequests(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, MaxBodyBytes: 4096}, nil)
	tests := []struct {
		name        string
		body        string
		contentType string
		status      int
		code        string
		field       string
	}{
		{name: "malformed JSON", body: `{"batch": {`, status: 400, code: "INVALID_BATCH"},
		{name: "not an object", body: `[]`, status: 400, code: "INVALID_BATCH"},
		{name: "unknown top-level field", body: `{"batch": {"operations": []}, "extra": 1}`, status: 400, code: "INVALID_BATCH", field: "extra"},
		{name: "missing batch", body: `{}`, status: 400, code: "INVALID_BATCH", field: "batch"},
		{name: "unknown batch field", body: `{"batch": {"operationz": []}}`, status: 400, code: "INVALID_BATCH", field: "operationz"},
		{name: "unknown operation type", body: `{"batch": {"operations": [{"type": "process"}]}}`, status: 400, code: "INVALID_BATCH", field: "operations[0].type"},
		{name: "invalid value", body: `{"batch": {"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"max_concurrent": -1}}}`, status: 400, code: "INVALID_BATCH", field: "options.max_concurrent"},
		{name: "wrong type", body: `{"batch": {"operations": [{"type": 7}]}}`, status: 400, code: "INVALID_BATCH", field: "operations[0].type"},
		{name: "not JSON content", body: `{"batch": {}}`, contentType: "text/plain", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "no content type", body: `{"batch": {}}`, contentType: "-", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "too large", body: `{"batch": {"description": "` + strings.Repeat("x", 5000) + `"}}`, status: 413, code: "PAYLOAD_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest("POST", tb.srv.URL+httpapi.Prefix+"/jobs", strings.NewReader(tt.body))
			require.NoError(t, err)
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, tt.status, res.StatusCode)
			var body struct {
				Error struct {
					Code    string         `json:"code"`
					Message string         `json:"message"`
					Details []batch.Detail `json:"details"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
			require.Equal(t, tt.code, body.Error.Code)
			require.NotEmpty(t, body.Error.Message)
			if tt.field != "" {
				var fields []string
				for _, d := range body.Error.Details {
					fields = append(fields, d.Field)
				}
				require.Contains(t, fields, tt.field)
			}
		})
	}
	page, err := tb.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "nothing is stored for a rejected request")
}

func TestJobControl(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	gated := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{Count: 20, Item: func(i int64) (batch.Item, error) { return batch.Item{}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				select {
				case <-gate:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}, nil
	})
	tb := setup(t, nil, &batch.Options{Operations: map[string]batch.Operation{"gated": gated}})
	res := tb.do(t, "POST", "/jobs", `{"batch": {"operations": [{"type": "gated"}], "options": {"max_concurrent": 2}}}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id := res.data["job_id"].(string)

	require.Eventually(t, func() bool { return tb.do(t, "GET", "/jobs/"+id, "").data["status"] == "running" }, 5*time.Second, time.Millisecond)
	require.Equal(t, http.StatusConflict, tb.do(t, "DELETE", "/jobs/"+id, "").status)
	require.Equal(t, http.StatusConflict, tb.do(t, "POST", "/jobs/"+id+"/resume", "").status)
	go func() { time.Sleep(100 * time.Millisecond); close(gate) }()
	res = tb.do(t, "POST", "/jobs/"+id+"/pause", "")
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Equal(t, "paused", res.data["status"])
	res = tb.do(t, "POST", "/jobs/"+id+"/pause", "")
	require.Equal(t, http.StatusConflict, res.status)
	require.Equal(t, "INVALID_STATE", res.err["code"])
	res = tb.do(t, "POST", "/jobs/"+id+"/resume", "")
	require.Equal(t, http.StatusOK, res.status)
	require.Eventually(t, func() bool { return tb.do(t, "GET", "/jobs/"+id, "").data["status"] == "completed" }, 5*time.Second, time.Millisecond)
	require.Equal(t, http.StatusConflict, tb.do(t, "POST", "/jobs/"+id+"/cancel", "").status)

	list := tb.do(t, "GET", "/jobs?state=completed", "")
	require.Equal(t, http.StatusOK, list.status)
	require.Len(t, list.data["jobs"], 1)
	require.Equal(t, http.StatusBadRequest, tb.do(t, "GET", "/jobs?state=done", "").status)
	require.Equal(t, http.StatusBadRequest, tb.do(t, "GET", "/jobs?limit=0", "").status)

	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/jobs/"+id, "").status)
	for _, path := range []string{"/jobs/" + id, "/jobs/nope", "/jobs/batch999/errors"} {
		res := tb.do(t, "GET", path, "")
		require.Equal(t, http.StatusNotFound, res.status, path)
		require.Equal(t, "NOT_FOUND", res.err["code"])
	}
	for _, path := range []string{"/jobs/batch999/pause", "/jobs/batch999/resume", "/jobs/batch999/cancel"} {
		require.Equal(t, http.StatusNotFound, tb.do(t, "POST", path, "").status, path)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	res := tb.do(t, "GET", "/nothing", "")
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "NOT_FOUND", res.err["code"])
	res = tb.do(t, "PUT", "/jobs", `{}`)
	require.Equal(t, http.StatusMethodNotAllowed, res.status)
	require.Equal(t, "METHOD_NOT_ALLOWED", res.err["code"])
	require.Contains(t, res.header.Get("Allow"), "POST")
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
	res := tb.do(t, "POST", "/jobs?wait=10s", body)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	id := res.data["job_id"].(string)
	p := res.data["progress"].(map[string]any)
	require.Equal(t, 10.0, p["failed"])
	require.Len(t, res.data["errors"], 10)

	var seen []any
	cursor := ""
	for {
		page := tb.do(t, "GET", "/jobs/"+id+"/errors?limit=4&cursor="+cursor, "")
		require.Equal(t, http.StatusOK, page.status, string(page.body))
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
	csv, err := io.ReadAll(dl.Body)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(len(csv)), dl.Header.Get("Content-Length"))
	require.Equal(t, 101, bytes.Count(csv, []byte("\n")), "a header and 100 inactive fields")
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/jobs/"+id+"/artifacts/missing.csv", "").status)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	first := tb.do(t, "POST", "/jobs", docRequest, "Idempotency-Key", "abc-123")
	require.Equal(t, http.StatusCreated, first.status)
	again := tb.do(t, "POST", "/jobs", docRequest, "Idempotency-Key", "abc-123")
	require.Equal(t, http.StatusOK, again.status)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.data["job_id"], again.data["job_id"])
	other := tb.do(t, "POST", "/jobs", docRequest, "Idempotency-Key", "abc-124")
	require.Equal(t, http.StatusCreated, other.status)
	require.NotEqual(t, first.data["job_id"], other.data["job_id"])
	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/jobs", docRequest, "Idempotency-Key", strings.Repeat("k", 300)).status)
}

func TestAuthAndOwnership(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("alice-key", "bob-key")}, nil)
	res := tb.do(t, "POST", "/jobs", docRequest)
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, "UNAUTHORIZED", res.err["code"])
	require.Contains(t, res.header.Get("WWW-Authenticate"), "Bearer")
	require.Equal(t, http.StatusUnauthorized, tb.do(t, "GET", "/jobs", "", "Authorization", "Bearer wrong").status)
	require.Equal(t, http.StatusUnauthorized, tb.do(t, "GET", "/jobs", "", "Authorization", "Basic alice-key").status)

	alice := []string{"Authorization", "Bearer alice-key"}
	bob := []string{"Authorization", "Bearer bob-key"}
	res = tb.do(t, "POST", "/jobs", docRequest, alice...)
	require.Equal(t, http.StatusCreated, res.status)
	id := res.data["job_id"].(string)
	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/jobs/"+id, "", alice...).status)
	for _, c := range []struct{ method, path string }{{"GET", "/jobs/" + id}, {"GET", "/jobs/" + id + "/errors"}, {"POST", "/jobs/" + id + "/cancel"}, {"DELETE", "/jobs/" + id}} {
		res := tb.do(t, c.method, c.path, "", bob...)
		require.Equal(t, http.StatusNotFound, res.status, c.path)
	}
	require.Empty(t, tb.do(t, "GET", "/jobs", "", bob...).data["jobs"], "bob never sees alice's job")
	require.Len(t, tb.do(t, "GET", "/jobs", "", alice...).data["jobs"], 1)

	// The audit trail names who did what, and stays private, also after
	// the job is deleted.
	require.Eventually(t, func() bool { return tb.do(t, "GET", "/jobs/"+id, "", alice...).data["status"] == "completed" }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/jobs/"+id, "", alice...).status)
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
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/jobs/"+id+"/events", "", bob...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/jobs/batch9999/events", "", alice...).status)
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	tb := setup(t, &httpapi.Options{Now: clock, RateLimits: httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: 3, Per: time.Minute}}}, nil)

	start := clock()
	for i := range 3 {
		res := tb.do(t, "GET", "/jobs", "")
		require.Equal(t, http.StatusOK, res.status)
		require.Equal(t, "3", res.header.Get("X-RateLimit-Limit"))
		require.Equal(t, strconv.Itoa(2-i), res.header.Get("X-RateLimit-Remaining"))
		require.Equal(t, strconv.FormatInt(start.Add(time.Minute).Unix(), 10), res.header.Get("X-RateLimit-Reset"), "the window frees up when the oldest request leaves it")
		advance(10 * time.Second)
	}
	res := tb.do(t, "GET", "/jobs", "")
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.Equal(t, "RATE_LIMITED", res.err["code"])
	require.Equal(t, "30", res.header.Get("Retry-After"), "the oldest request leaves the window in 30s")
	require.Equal(t, "0", res.header.Get("X-RateLimit-Remaining"))
	advance(30 * time.Second)
	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/jobs", "").status, "a slot frees when the oldest request leaves the window")

	// Job creation has its own limit: the document's 10 per hour.
	res = tb.do(t, "POST", "/jobs", docRequest)
	require.Equal(t, "10", res.header.Get("X-RateLimit-Limit"))
	require.Equal(t, "9", res.header.Get("X-RateLimit-Remaining"))
}

func TestRateLimits_ExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{}, nil)
	var created, limited atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", tb.srv.URL+httpapi.Prefix+"/jobs", strings.NewReader(docRequest))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			default:
				t.Errorf("status %d", res.StatusCode)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(10), created.Load())
	require.Equal(t, int64(90), limited.Load())
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
	"github.com/batchworks/batch/internal/apidoc"
	"github.com/batchworks/batch/internal/gated"
)

// The helpers the httpapi tests share: an engine served over loopback
// HTTP, requests to it, and operations that tests hold and release.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// docRequest is the API document's "Create Batch Job" request body: the
// one the quickstart runs.
var docRequest = apidoc.CreateBatchJob()

// docTemplateRequest is the body that creates the document's template.
var docTemplateRequest = apidoc.CreateTemplate()

// testBundle is an engine on a bbolt file served by httpapi under httptest.
type testBundle struct {
	e   *batch.Engine
	srv *httptest.Server
}

// setup opens an engine on a bbolt file with the document's "fields"
// collection (200 records, its filter fields indexed) and serves it at
// [httpapi.Prefix], every answer checked against the OpenAPI document.
// nil opts turns rate limits off.
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

// newEngine is an engine on a memory store, closed when the test ends.
func newEngine(t testing.TB, opts *batch.Options) *batch.Engine {
	t.Helper()
	e, err := batch.New(batch.NewMemoryStore(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return e
}

// serve serves h over loopback until the test ends.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
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

// must is do that requires the answer's status.
func (tb *testBundle) must(t testing.TB, status int, method, path, body string, headers ...string) *response {
	t.Helper()
	res := tb.do(t, method, path, body, headers...)
	require.Equal(t, status, res.status, "%s %s: %s", method, path, res.body)
	return res
}

// submit creates a job from body and returns its id.
func (tb *testBundle) submit(t testing.TB, body string, headers ...string) string {
	t.Helper()
	return tb.must(t, http.StatusCreated, "POST", "/jobs", body, headers...).data["job_id"].(string)
}

// waitStatus waits until GET /jobs/{id} shows status.
func (tb *testBundle) waitStatus(t testing.TB, id, status string, headers ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return tb.do(t, "GET", "/jobs/"+id, "", headers...).data["status"] == status
	}, 10*time.Second, time.Millisecond, "job %s never became %s", id, status)
}

// bearer is the Authorization header for key, as do takes headers.
func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// gatedOp is an operation of count items that each wait for a value (or
// the close) of gate, or for their context to end; a nil gate holds them
// until then.
func gatedOp(gate <-chan struct{}, count int64) batch.Operation { return heldOp(gate, count, false) }

// pausableOp is gatedOp whose items also finish as soon as their job is
// asked to stop (batch.Stopping): a pause then answers once it has taken
// hold, with no gate to open and no delay to guess.
func pausableOp(gate <-chan struct{}, count int64) batch.Operation { return heldOp(gate, count, true) }

func heldOp(gate <-chan struct{}, count int64, finishOnStop bool) batch.Operation {
	run := gated.Run(gate, finishOnStop)
	return batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{Count: count, Item: func(i int64) (batch.Item, error) { return batch.Item{}, nil }, Run: run}, nil
	})
}

// newReceiver starts a webhook receiver on loopback and returns its URL.
func newReceiver(t *testing.T) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })).URL
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

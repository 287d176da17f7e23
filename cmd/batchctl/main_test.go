package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
	"github.com/batchworks/batch/internal/apidoc"
	"github.com/batchworks/batch/internal/demo"
	"github.com/batchworks/batch/internal/gated"
)

// testKey is the API key the test servers accept.
const testKey = "test-key"

// docRequest is the API document's "Create Batch Job" request body: the
// one the quickstart runs.
var docRequest = apidoc.CreateBatchJob()

// testBundle is a real Batch API server on loopback: a bbolt engine with
// demo fields, httpapi on an httptest server.
type testBundle struct {
	engine *batch.Engine
	fields *batch.Collection
	srv    *httptest.Server
	// gate holds each item of the "gated" operation until it receives a
	// token from gate, or until release closes it.
	gate     chan struct{}
	gateOnce sync.Once

	mu       sync.Mutex
	requests []string // "METHOD /path" of each request
	// arrived wakes the tests waiting for a request.
	arrived notifier
}

// serverOptions tunes a test server.
type serverOptions struct {
	rateLimits httpapi.RateLimits
	// wrap, if set, wraps the API handler (to inject faults).
	wrap func(http.Handler) http.Handler
}

// setup starts a test server with 60 demo fields for a test that runs
// in parallel with the others (it calls t.Parallel).
func setup(t *testing.T, so *serverOptions) *testBundle {
	t.Helper()
	t.Parallel()
	if so == nil {
		so = &serverOptions{}
	}
	engine, err := batch.Open(filepath.Join(t.TempDir(), "batch.db"), &batch.Options{AllowPrivateWebhooks: true})
	require.NoError(t, err)
	tb := &testBundle{engine: engine, gate: make(chan struct{})}
	t.Cleanup(func() {
		tb.release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, engine.Close(ctx))
	})
	tb.fields, err = engine.Collection("fields")
	require.NoError(t, err)
	require.NoError(t, tb.fields.PutMany(t.Context(), demo.Fields(60)))
	require.NoError(t, engine.RegisterOperation("gated", batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		n, _ := spec.Params["count"].(float64)
		// With "finish_on_stop", an item in flight finishes as soon as its
		// job is asked to stop: a pause answers once it has taken hold.
		finishOnStop, _ := spec.Params["finish_on_stop"].(bool)
		return &batch.Plan{
			Count: int64(n),
			Item: func(i int64) (batch.Item, error) {
				return batch.Item{ResourceID: "step" + strconv.FormatInt(i, 10)}, nil
			},
			Run: gated.Run(tb.gate, finishOnStop),
		}, nil
	})))

	var h http.Handler = httpapi.New(engine, &httpapi.Options{
		Authenticator: httpapi.APIKeys(testKey),
		RateLimits:    so.rateLimits,
	})
	if so.wrap != nil {
		h = so.wrap(h)
	}
	mux := http.NewServeMux()
	mux.Handle(httpapi.Prefix+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.mu.Lock()
		tb.requests = append(tb.requests, r.Method+" "+r.URL.Path)
		tb.mu.Unlock()
		tb.arrived.notify()
		h.ServeHTTP(w, r)
	}))
	tb.srv = httptest.NewServer(mux)
	t.Cleanup(tb.srv.Close)
	return tb
}

// release lets every "gated" item finish.
func (tb *testBundle) release() { tb.gateOnce.Do(func() { close(tb.gate) }) }

// letOneThrough lets the gated item in flight finish.
func (tb *testBundle) letOneThrough(t *testing.T) {
	t.Helper()
	select {
	case tb.gate <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("no gated item ran for 10s")
	}
}

// waitRunning waits until the job is running.
func (tb *testBundle) waitRunning(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		j, err := tb.engine.Job(t.Context(), id)
		return err == nil && j.Status == batch.StateRunning
	}, 10*time.Second, 5*time.Millisecond)
}

// requested counts the requests whose "METHOD /path" has prefix p, or is
// exactly p without its "$".
func (tb *testBundle) requested(p string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	exact, isExact := strings.CutSuffix(p, "$")
	n := 0
	for _, r := range tb.requests {
		if (isExact && r == exact) || (!isExact && strings.HasPrefix(r, p)) {
			n++
		}
	}
	return n
}

// waitRequested waits until n requests match p (as in requested) have
// arrived.
func (tb *testBundle) waitRequested(t *testing.T, p string, n int) {
	t.Helper()
	tb.arrived.wait(t, func() bool { return tb.requested(p) >= n }, fmt.Sprintf("%d requests %s", n, p))
}

// notifier lets a test wait for a condition on state that other goroutines
// change: each change calls notify, which wakes the waiters to check again.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// next is the channel the next notify closes.
func (s *notifier) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *notifier) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// wait returns once cond holds, checking it after each notify; the test
// fails if that takes more than 10 seconds.
func (s *notifier) wait(t *testing.T, cond func() bool, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		changed := s.next()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// cliAsync runs batchctl as cli does, in the background; the channel
// gives its result.
func (tb *testBundle) cliAsync(t *testing.T, args ...string) <-chan result {
	done := make(chan result, 1)
	go func() { done <- tb.cli(t, args...) }()
	return done
}

// result is what one batchctl run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runOptions tunes one in-process run.
type runOptions struct {
	stdin string
	env   map[string]string
	// terminal marks stdout and/or stderr as terminals.
	ttyOut, ttyErr bool
}

// cli runs batchctl in-process against tb with the test key in the
// environment.
func (tb *testBundle) cli(t *testing.T, args ...string) result {
	t.Helper()
	return tb.cliWith(t, runOptions{}, args...)
}

func (tb *testBundle) cliWith(t *testing.T, ro runOptions, args ...string) result {
	t.Helper()
	env := map[string]string{envServer: tb.srv.URL, envAPIKey: testKey}
	for k, v := range ro.env {
		env[k] = v
	}
	return runCLI(t, ro, env, args...)
}

// runCLI runs batchctl in-process with env as its whole environment.
func runCLI(t *testing.T, ro runOptions, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{
		stdin:  strings.NewReader(ro.stdin),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return env[k] },
		isTerminal: func(w io.Writer) bool {
			return (w == io.Writer(&stdout) && ro.ttyOut) || (w == io.Writer(&stderr) && ro.ttyErr)
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	code := run(ctx, args, a)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// decode reads a JSON result.
func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "output: %s", s)
	return v
}

// runOK runs batchctl with stdin, checks that it succeeds and decodes what
// it printed (JSON: stdout is not a terminal).
func runOK[T any](t *testing.T, tb *testBundle, stdin string, args ...string) T {
	t.Helper()
	r := tb.cliWith(t, runOptions{stdin: stdin}, args...)
	require.Equal(t, 0, r.code, r.stderr)
	return decode[T](t, r.stdout)
}

// submitJob submits a batch and returns its id.
func submitJob(t *testing.T, tb *testBundle, body string) string {
	t.Helper()
	return runOK[batch.Job](t, tb, body, "submit", "-").ID
}

// setupWithJob starts a test server and runs the document's request on it
// to its end.
func setupWithJob(t *testing.T) (*testBundle, string) {
	t.Helper()
	tb := setup(t, nil)
	return tb, runOK[batch.Job](t, tb, docRequest, "submit", "-", "--wait", "--quiet").ID
}

// rateLimitsStatus allows n status reads an hour.
func rateLimitsStatus(n int) httpapi.RateLimits {
	return httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: n, Per: time.Hour}}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	require.False(t, isTerminal(w), "a pipe")
	require.False(t, isTerminal(&bytes.Buffer{}), "not a file")
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/internal/apidoc"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/internal/smtptest"
)

// server is the real example binary running on a loopback port.
type server struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// The server binary is built once, by the first test that needs it, into a
// directory TestMain removes.
var (
	binDir    string
	buildOnce sync.Once
	bin       string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "batch-server-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildServer compiles this package once, without cgo, and returns the
// binary.
func buildServer(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		bin = filepath.Join(binDir, "server")
		// Without cgo, so that it also runs under an address-space limit
		// (TestServer_ExpressionBombs).
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return bin
}

// serverTest begins a test that runs the server binary: it is skipped with
// -short and runs in parallel with the others. It returns the binary and a
// directory for the test's databases.
func serverTest(t *testing.T) (bin, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	t.Parallel()
	return buildServer(t), t.TempDir()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func startServer(t *testing.T, bin, db, addr string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-db", db}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // a failed test leaves no server behind
	s := &server{cmd: cmd, base: "http://" + addr + "/api/v1/batch", done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("server: " + sc.Text())
		}
		s.done <- cmd.Wait()
	}()
	require.Eventually(t, func() bool {
		res, err := http.Get(s.base + "/jobs")
		if err != nil {
			return false
		}
		res.Body.Close()
		return true
	}, 30*time.Second, 20*time.Millisecond, "the server starts listening")
	return s
}

// stop sends the server SIGTERM and returns its exit error; the test fails
// when it has not exited within d.
func (s *server) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.done:
		return err
	case <-time.After(d):
		t.Fatalf("the server did not exit within %v of SIGTERM", d)
		return nil
	}
}

// shutDown stops the server with SIGTERM and checks that it exits 0.
func (s *server) shutDown(t *testing.T) {
	t.Helper()
	require.NoError(t, s.stop(t, 30*time.Second), "graceful shutdown exits 0")
}

// kill stops the server with SIGKILL.
func (s *server) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	<-s.done
}

// request sends a request, with key as its Bearer token unless empty and
// body as its JSON body unless empty, and returns the answer and its body.
func request(t *testing.T, method, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, b
}

// call sends a JSON request and decodes the answer.
func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	res, b := request(t, method, url, "", body)
	var out map[string]any
	if len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, &out), string(b))
	}
	return res.StatusCode, out
}

func data(m map[string]any) map[string]any { d, _ := m["data"].(map[string]any); return d }

func progress(m map[string]any) (done, total float64) {
	p := data(m)["progress"].(map[string]any)
	return p["completed"].(float64) + p["failed"].(float64), p["total_operations"].(float64)
}

// TestServer_EndToEnd builds the example server, walks the document's
// flows over HTTP, kills the server with SIGKILL in the middle of a job,
// restarts it and checks the job completes with every item counted once.
func TestServer_EndToEnd(t *testing.T) {
	bin, dir := serverTest(t)
	db := filepath.Join(dir, "e2e.db")
	addr := freeAddr(t)
	srv := startServer(t, bin, db, addr, "-rate-limit=false")

	// The document's Create Batch Job request (the quickstart's) over the
	// 1,000 demo fields.
	status, res := call(t, "POST", srv.base+"/jobs?wait=20s", apidoc.CreateBatchJob())
	require.Equal(t, http.StatusCreated, status, res)
	require.Equal(t, "completed", data(res)["status"])
	done, total := progress(res)
	require.Equal(t, total, done)
	require.Positive(t, total)

	// Status, list, export with its download, errors, control and mistakes.
	id := data(res)["job_id"].(string)
	status, res = call(t, "GET", srv.base+"/jobs/"+id, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 100.0, data(res)["statistics"].(map[string]any)["success_rate"])
	status, res = call(t, "GET", srv.base+"/jobs", "")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, data(res)["jobs"], 1)
	status, res = call(t, "POST", srv.base+"/jobs?wait=20s", `{"batch": {"operations": [{"type": "export", "resource": "fields", "where": "record.irrigation_schedule != nil"}]}}`)
	require.Equal(t, http.StatusCreated, status, res)
	artURL := data(res)["results"].([]any)[0].(map[string]any)["artifact"].(map[string]any)["url"].(string)
	dl, err := http.Get("http://" + addr + artURL)
	require.NoError(t, err)
	var exported []map[string]any
	require.NoError(t, json.NewDecoder(dl.Body).Decode(&exported))
	dl.Body.Close()
	require.Len(t, exported, int(total), "the export holds exactly the updated fields")
	status, _ = call(t, "POST", srv.base+"/jobs/"+id+"/pause", "")
	require.Equal(t, http.StatusConflict, status)
	status, _ = call(t, "GET", srv.base+"/jobs/batch424242", "")
	require.Equal(t, http.StatusNotFound, status)
	status, res = call(t, "POST", srv.base+"/jobs", `{"batch": {"operations": [{"type": "process"}]}}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "INVALID_BATCH", res["error"].(map[string]any)["code"])

	// A long job: 20,000 creates. Kill the server in the middle of it.
	var recs []string
	const creates = 20000
	for i := range creates {
		recs = append(recs, fmt.Sprintf(`{"id": "new%05d", "n": %d}`, i, i))
	}
	status, res = call(t, "POST", srv.base+"/jobs", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [`+strings.Join(recs, ",")+`]}], "options": {"max_concurrent": 2}}}`)
	require.Equal(t, http.StatusCreated, status, res)
	big := data(res)["job_id"].(string)
	var atKill float64
	require.Eventually(t, func() bool {
		_, res := call(t, "GET", srv.base+"/jobs/"+big, "")
		done, total := progress(res)
		atKill = done
		return done > 0 && done < total
	}, 30*time.Second, time.Millisecond, "the job gets under way")
	srv.kill(t)
	t.Logf("killed the server with job %s at %v of %d items", big, atKill, creates)

	srv = startServer(t, bin, db, addr, "-rate-limit=false")
	require.Eventually(t, func() bool {
		_, res := call(t, "GET", srv.base+"/jobs/"+big, "")
		return data(res)["status"] == "completed"
	}, 60*time.Second, 10*time.Millisecond, "the job resumes and completes")
	_, res = call(t, "GET", srv.base+"/jobs/"+big, "")
	p := data(res)["progress"].(map[string]any)
	require.Equal(t, float64(creates), p["total_operations"])
	require.Equal(t, float64(creates), p["completed"], "every item counted once: a create run twice would fail")
	require.Equal(t, 0.0, p["failed"])
	status, res = call(t, "POST", srv.base+"/jobs?wait=20s", `{"batch": {"operations": [{"type": "export", "resource": "fields", "where": "record.id startsWith 'new'", "destination": {"format": "ndjson"}}]}}`)
	require.Equal(t, http.StatusCreated, status, res)
	require.Equal(t, float64(creates), data(res)["results"].([]any)[0].(map[string]any)["summary"].(map[string]any)["records"])

	// SIGTERM stops the server gracefully with exit status 0.
	srv.shutDown(t)
}

func TestServer_APIKeys(t *testing.T) {
	bin, dir := serverTest(t)
	srv := startServer(t, bin, filepath.Join(dir, "keys.db"), freeAddr(t), "-api-key", "k1", "-demo=false")
	defer srv.shutDown(t)
	status, _ := call(t, "GET", srv.base+"/jobs/batch1", "")
	require.Equal(t, http.StatusUnauthorized, status)
	res, _ := request(t, "GET", srv.base+"/jobs", "k1", "")
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// TestServer_ScheduleEmail: without -smtp-addr a schedule asking for e-mail
// is a 400 that says why; with it the e-mail reaches the SMTP server.
func TestServer_ScheduleEmail(t *testing.T) {
	bin, dir := serverTest(t)
	body := `{"schedule": {"name": "every second", "batch": {"operations": [{"type": "export", "resource": "fields", "where": "true"}]},
		"timing": {"cron": "* * * * * *"}, "notification": {"on_completion": {"email": ["manager@example.com"]}}}}`

	srv := startServer(t, bin, filepath.Join(dir, "nomail.db"), freeAddr(t), "-rate-limit=false")
	status, res := call(t, "POST", srv.base+"/schedules", body)
	require.Equal(t, http.StatusBadRequest, status, res)
	require.Contains(t, fmt.Sprint(res), "-smtp-addr")
	srv.shutDown(t)

	mail := smtptest.New(t)
	srv = startServer(t, bin, filepath.Join(dir, "mail.db"), freeAddr(t), "-rate-limit=false",
		"-smtp-addr", mail.Addr(), "-smtp-from", "batch@example.com")
	defer srv.shutDown(t)
	status, res = call(t, "POST", srv.base+"/schedules", body)
	require.Equal(t, http.StatusCreated, status, res)
	require.Eventually(t, func() bool { return len(mail.Messages()) > 0 }, 20*time.Second, 10*time.Millisecond)
	require.Contains(t, mail.Messages()[0], "manager@example.com")
}

// TestServer_Metrics scrapes /metrics of a running server started with
// -metrics after it ran a job, and checks the job's counts are there.
func TestServer_Metrics(t *testing.T) {
	bin, dir := serverTest(t)
	addr := freeAddr(t)
	srv := startServer(t, bin, filepath.Join(dir, "metrics.db"), addr, "-rate-limit=false", "-metrics")
	defer srv.shutDown(t)
	status, res := call(t, "POST", srv.base+"/jobs?wait=20s", `{"batch": {"type": "field_update", "operations": [{"type": "update", "resource": "fields",
		"filter": {"status": "active"}, "update": {"checked": true}}]}}`)
	require.Equal(t, http.StatusCreated, status, res)
	require.Equal(t, "completed", data(res)["status"])
	done, _ := progress(res)

	scrape, b := request(t, "GET", "http://"+addr+"/metrics", "", "")
	require.Equal(t, http.StatusOK, scrape.StatusCode)
	require.Contains(t, scrape.Header.Get("Content-Type"), "text/plain")
	body := string(b)
	value := func(prefix string) string {
		for line := range strings.SplitSeq(body, "\n") {
			if strings.HasPrefix(line, prefix) {
				f := strings.Fields(line)
				return f[len(f)-1]
			}
		}
		t.Fatalf("no %s in\n%s", prefix, body)
		return ""
	}
	require.Equal(t, "1", value(`batch_jobs_submitted_total{otel_scope_name="github.com/batchworks/batch/otelbatch",otel_scope_schema_url="",otel_scope_version="",type="field_update"}`))
	require.Equal(t, "1", value(`batch_jobs_finished_total{otel_scope_name="github.com/batchworks/batch/otelbatch",otel_scope_schema_url="",otel_scope_version="",status="completed",type="field_update"}`))
	require.Equal(t, fmt.Sprint(done), value(`batch_items_processed_total{operation="update",otel_scope_name="github.com/batchworks/batch/otelbatch",otel_scope_schema_url="",otel_scope_version="",outcome="succeeded"}`))
	require.Equal(t, "1", value(`batch_job_duration_seconds_count{`))
	require.Contains(t, body, `batch_jobs{`)
	require.Contains(t, body, `batch_commit_duration_seconds_bucket{`)
	require.NotContains(t, body, data(res)["job_id"].(string), "no job ids in metrics")

	// Without -metrics there is no /metrics.
	plain := startServer(t, bin, filepath.Join(dir, "plain.db"), freeAddr(t), "-demo=false")
	defer plain.shutDown(t)
	r, _ := request(t, "GET", strings.TrimSuffix(plain.base, "/api/v1/batch")+"/metrics", "", "")
	require.Equal(t, http.StatusNotFound, r.StatusCode)
}

// TestServer_TwoOnPostgres runs two servers on one PostgreSQL database: a
// job created through one is visible, pausable and cancellable through the
// other.
func TestServer_TwoOnPostgres(t *testing.T) {
	bin, dir := serverTest(t)
	url := pgtest.URL(t)
	a := startServer(t, bin, filepath.Join(dir, "unused-a.db"), freeAddr(t), "-postgres", url, "-rate-limit=false")
	b := startServer(t, bin, filepath.Join(dir, "unused-b.db"), freeAddr(t), "-postgres", url, "-rate-limit=false")
	for _, s := range []*server{a, b} {
		t.Cleanup(func() { s.shutDown(t) })
	}

	status, res := call(t, "POST", a.base+"/jobs?wait=20s", `{"batch": {"operations": [{"type": "update", "resource": "fields",
		"filter": {"status": "active"}, "update": {"seen": true}}]}}`)
	require.Equal(t, http.StatusCreated, status, res)
	id := data(res)["job_id"].(string)
	status, res = call(t, "GET", b.base+"/jobs/"+id, "")
	require.Equal(t, http.StatusOK, status, "a job created on A is found on B")
	require.Equal(t, "completed", data(res)["status"])

	var recs []string
	for i := range 20000 {
		recs = append(recs, fmt.Sprintf(`{"id": "pg%05d"}`, i))
	}
	status, res = call(t, "POST", a.base+"/jobs", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [`+strings.Join(recs, ",")+`]}], "options": {"max_concurrent": 2}}}`)
	require.Equal(t, http.StatusCreated, status, res)
	big := data(res)["job_id"].(string)
	require.Eventually(t, func() bool {
		_, res := call(t, "GET", b.base+"/jobs/"+big, "")
		done, total := progress(res)
		return data(res)["status"] == "running" && done > 0 && done < total
	}, 30*time.Second, 5*time.Millisecond, "B sees the job under way")
	status, res = call(t, "POST", b.base+"/jobs/"+big+"/pause", "")
	require.Equal(t, http.StatusOK, status, res)
	require.Equal(t, "paused", data(res)["status"])
	status, res = call(t, "POST", a.base+"/jobs/"+big+"/resume", "")
	require.Equal(t, http.StatusOK, status, res)
	require.Eventually(t, func() bool {
		_, res := call(t, "GET", b.base+"/jobs/"+big, "")
		return data(res)["status"] == "running"
	}, 30*time.Second, 5*time.Millisecond, "the job runs again")
	status, res = call(t, "POST", b.base+"/jobs/"+big+"/cancel", "")
	require.Equal(t, http.StatusOK, status, res)
	require.Equal(t, "cancelled", data(res)["status"])
	_, res = call(t, "GET", b.base+"/jobs/"+big, "")
	require.Equal(t, "cancelled", data(res)["status"])
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// closedWithin reports whether the server closes conn within d.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// TestServer_ConnectionHygiene is observation 4: a client trickling a body
// and an idle keep-alive connection are closed by the server's timeouts,
// and failed authentications are limited per client address.
func TestServer_ConnectionHygiene(t *testing.T) {
	bin, dir := serverTest(t)
	addr := freeAddr(t)
	srv := startServer(t, bin, filepath.Join(dir, "hygiene.db"), addr,
		"-demo=false", "-api-key", "good", "-read-timeout", "1s", "-idle-timeout", "1s", "-write-timeout", "1s", "-rate-limit=false")
	defer srv.shutDown(t)

	// A body that never finishes arriving.
	trickle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer trickle.Close()
	_, err = fmt.Fprintf(trickle, "POST /api/v1/batch/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"batch\": ")
	require.NoError(t, err)
	require.True(t, closedWithin(t, trickle, 10*time.Second), "a trickled body is cut off by the read timeout")

	// An idle keep-alive connection.
	idle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer idle.Close()
	_, err = fmt.Fprintf(idle, "GET /api/v1/batch/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n")
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(idle), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, closedWithin(t, idle, 10*time.Second), "an idle keep-alive connection is closed by the idle timeout")

	// A response that is long on purpose (?wait=) outlives the read and
	// write timeouts.
	var recs []string
	for i := range 250000 {
		recs = append(recs, fmt.Sprintf(`{"id": "w%06d"}`, i))
	}
	start := time.Now()
	res, body := request(t, "POST", srv.base+"/jobs?wait=2500ms", "good",
		`{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [`+strings.Join(recs, ",")+`]}], "options": {"max_concurrent": 1}}}`)
	require.Equal(t, http.StatusCreated, res.StatusCode, string(body))
	elapsed := time.Since(start)
	t.Logf("?wait=2500ms answered after %v: %.80s", elapsed, body)
	require.Greater(t, elapsed, time.Second, "the answer came after the 1s timeouts")

	// Failed authentications: after ten, the address gets 429, even with a
	// good key, and the answer says why.
	get := func(key string) *http.Response {
		res, _ := request(t, "GET", srv.base+"/jobs", key, "")
		return res
	}
	require.Equal(t, http.StatusOK, get("good").StatusCode)
	for i := range 10 {
		require.Equal(t, http.StatusUnauthorized, get(fmt.Sprint("guess", i)).StatusCode)
	}
	res = get("guess-more")
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Equal(t, http.StatusTooManyRequests, get("good").StatusCode, "the address is blocked for a while")
}

// TestServer_ShutdownIsBounded is observation 2's "SIGTERM never exits":
// with a long job running and a request waiting on it, SIGTERM exits within
// -shutdown-timeout, and the job resumes and completes after a restart.
func TestServer_ShutdownIsBounded(t *testing.T) {
	bin, dir := serverTest(t)
	db := filepath.Join(dir, "shutdown.db")
	addr := freeAddr(t)
	srv := startServer(t, bin, db, addr, "-rate-limit=false", "-shutdown-timeout", "3s")

	var recs []string
	for i := range 250000 {
		recs = append(recs, fmt.Sprintf(`{"id": "s%06d"}`, i))
	}
	status, res := call(t, "POST", srv.base+"/jobs", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [`+strings.Join(recs, ",")+`]}], "options": {"max_concurrent": 1}}}`)
	require.Equal(t, http.StatusCreated, status, res)
	id := data(res)["job_id"].(string)
	// Requests in flight: one waiting on a job for a long time, one whose
	// where expression is expensive on every record. SIGTERM comes once
	// both are written to the server.
	bodies := []string{
		`{"batch": {"operations": [{"type": "update", "resource": "fields", "where": "true", "update": {"x": 1}}]}}`,
		`{"batch": {"operations": [{"type": "update", "resource": "fields", "where": "reduce(1..999999, #acc + \"ab\", \"\") != \"\"", "update": {"x": 1}}]}}`,
	}
	written := make(chan struct{}, len(bodies))
	for _, body := range bodies {
		go func() {
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { written <- struct{}{} }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", srv.base+"/jobs?wait=5m", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
	}
	for range bodies {
		select {
		case <-written:
		case <-time.After(10 * time.Second):
			t.Fatal("the requests were not sent")
		}
	}
	_, res = call(t, "GET", srv.base+"/jobs/"+id, "")
	done, total := progress(res)
	require.Less(t, done, total, "the job is still running at SIGTERM")
	start := time.Now()
	err := srv.stop(t, 10*time.Second)
	t.Logf("exited %v after SIGTERM (%v)", time.Since(start), err)
	srv = startServer(t, bin, db, addr, "-rate-limit=false")
	require.Eventually(t, func() bool {
		_, res := call(t, "GET", srv.base+"/jobs/"+id, "")
		return data(res)["status"] == "completed"
	}, 60*time.Second, 20*time.Millisecond, "the job resumes and completes")
	srv.shutDown(t)
}

// TestServer_BadStoreFile is observation 5 at the process level: a file
// that is not a store makes the server exit with status 1 and a message
// naming the file and the problem (no crash dump), and leaves the file as
// it was.
func TestServer_BadStoreFile(t *testing.T) {
	bin, dir := serverTest(t)
	db := filepath.Join(dir, "foreign.db")
	content := []byte(strings.Repeat("not a store\n", 2000))
	require.NoError(t, os.WriteFile(db, content, 0o600))
	out, err := exec.Command(bin, "-addr", freeAddr(t), "-db", db).CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(out))
	require.Equal(t, 1, ee.ExitCode(), string(out))
	require.Contains(t, string(out), db)
	require.Contains(t, string(out), "not a batch store")
	require.NotContains(t, string(out), "goroutine ")
	after, err := os.ReadFile(db)
	require.NoError(t, err)
	require.Equal(t, content, after)
}

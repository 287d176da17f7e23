package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// limitedServer returns a script in dir that starts the server bin (built
// without cgo by buildServer, so that it runs under an address-space limit)
// with at most about 2 GB of address space (the bombs ask for 10 GB).
func limitedServer(t *testing.T, bin, dir string) string {
	t.Helper()
	script := filepath.Join(dir, "limited.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nulimit -v 2000000\nexec "+strconv.Quote(bin)+` "$@"`+"\n"), 0o755))
	return script
}

// answersQuickly checks that the server still serves other requests.
func answersQuickly(t *testing.T, srv *server) {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(srv.base + "/jobs")
	require.NoError(t, err, "the server keeps answering")
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// TestServer_ExpressionBombs is observations 1 and 2: expressions that used
// to exhaust memory, overflow the stack or freeze the server, sent to the
// real server under a memory limit. Each is refused (400) or fails its
// item; the server keeps answering, restarts cleanly (nothing it stored
// brings it down again) and stops on SIGTERM.
func TestServer_ExpressionBombs(t *testing.T) {
	bin, dir := serverTest(t)
	bin = limitedServer(t, bin, dir)
	db := filepath.Join(dir, "bombs.db")
	addr := freeAddr(t)
	srv := startServer(t, bin, db, addr, "-rate-limit=false")

	// Meanwhile another client keeps reading the job list.
	stop := make(chan struct{})
	slowest := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		client := http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				slowest <- worst
				return
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			res, err := client.Get(srv.base + "/jobs")
			if err != nil {
				worst = time.Hour
				continue
			}
			res.Body.Close()
			worst = max(worst, time.Since(start))
		}
	}()

	const oom = `len(repeat(repeat(\"x\",10000),999999))`
	const quadratic = `reduce(1..999999, #acc + \"ab\", \"\") != \"\"`
	one := `"filter": {"id": "field0001"}`
	// Accepted, but every item fails with the expression's limit.
	for name, op := range map[string]string{
		"calculate set":       `{"type": "calculate", "resource": "fields", ` + one + `, "set": {"x": "` + oom + `"}}`,
		"calculate quadratic": `{"type": "calculate", "resource": "fields", ` + one + `, "set": {"x": "` + quadratic + `"}}`,
		"validate rule":       `{"type": "validate", "resource": "fields", ` + one + `, "rules": {"r": "` + oom + ` > 0"}}`,
	} {
		status, res := call(t, "POST", srv.base+"/jobs?wait=20s", `{"batch": {"operations": [`+op+`]}}`)
		require.Equal(t, http.StatusCreated, status, "%s: %v", name, res)
		p := data(res)["progress"].(map[string]any)
		require.Equal(t, 1.0, p["failed"], "%s: the item fails", name)
		msg := fmt.Sprint(data(res)["errors"])
		require.Contains(t, msg, "expression limit exceeded", name)
		answersQuickly(t, srv)
	}
	// Refused at submission.
	for name, where := range map[string]string{
		"nested parentheses": strings.Repeat("(", 1_000_000) + "true" + strings.Repeat(")", 1_000_000),
		"nested brackets":    strings.Repeat("[", 500_000) + strings.Repeat("]", 500_000),
	} {
		body := fmt.Sprintf(`{"batch": {"operations": [{"type": "delete", "resource": "fields", "where": %s}]}}`, strconv.Quote(where))
		start := time.Now()
		status, res := call(t, "POST", srv.base+"/jobs", body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %v", name, res)
		require.Equal(t, "INVALID_BATCH", res["error"].(map[string]any)["code"], name)
		require.Less(t, time.Since(start), 10*time.Second, name)
		answersQuickly(t, srv)
	}
	// A where that blows its budget on every record: refused at submission
	// when the submission counts the records, else its job fails when it
	// selects them; either way nothing is deleted and nobody waits long.
	body := fmt.Sprintf(`{"batch": {"operations": [{"type": "delete", "resource": "fields", "where": %s}]}}`, strconv.Quote(strings.ReplaceAll(quadratic, `\"`, `"`)))
	start := time.Now()
	status, res := call(t, "POST", srv.base+"/jobs?wait=20s", body)
	require.Less(t, time.Since(start), 15*time.Second)
	// 400 INVALID_BATCH, or the failed job (500 EXECUTION_ERROR with ?wait=).
	require.Contains(t, []int{http.StatusBadRequest, http.StatusInternalServerError}, status, res)
	require.Contains(t, fmt.Sprint(res), "expression limit exceeded")
	answersQuickly(t, srv)

	// A template whose placeholder is the bomb: its jobs are refused.
	status, res = call(t, "POST", srv.base+"/templates", `{"template": {"name": "bomb", "operations": [
		{"type": "update", "resource": "fields", "where": "true", "template": {"update": {"x": "${`+oom+`}"}}}]}}`)
	require.Equal(t, http.StatusCreated, status, res)
	tid := data(res)["id"].(string)
	status, res = call(t, "POST", srv.base+"/jobs", `{"batch": {"template_id": "`+tid+`"}}`)
	require.Equal(t, http.StatusBadRequest, status, res)
	require.Contains(t, fmt.Sprint(res), "expression limit exceeded")
	answersQuickly(t, srv)

	close(stop)
	worst := <-slowest
	t.Logf("slowest concurrent GET /jobs: %v", worst)
	require.Less(t, worst, 5*time.Second, "other requests are answered throughout")

	// Nothing stored brings the server down again: kill it, restart it.
	_, res = call(t, "GET", srv.base+"/jobs", "")
	jobs := len(data(res)["jobs"].([]any))
	srv.kill(t)
	srv = startServer(t, bin, db, addr, "-rate-limit=false")
	status, res = call(t, "GET", srv.base+"/jobs", "")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, data(res)["jobs"], jobs)
	srv.shutDown(t)
}

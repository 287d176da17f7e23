package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// The binary is built once per test run.
var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// buildBinary builds batchctl as `go install` would.
func buildBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binaryErr = err
			return
		}
		binaryDir, binaryErr = os.MkdirTemp("", "batchctl-test-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "batchctl")
		out, err := exec.Command(goTool, "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = errors.New(string(out))
		}
	})
	require.NoError(t, binaryErr, "building batchctl")
	return binaryPath
}

// runBinary runs the built batchctl with stdin and the server in its
// environment, and returns its output and exit status.
func runBinary(t *testing.T, tb *testBundle, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), buildBinary(t), args...)
	cmd.Env = append(os.Environ(), envServer+"="+tb.srv.URL, envAPIKey+"="+testKey)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

func TestBinary_SubmitWaitAndExitCodes(t *testing.T) {
	tb := setup(t, nil)

	r := runBinary(t, tb, docRequest, "submit", "-", "--wait")
	require.Equal(t, 0, r.code, r.stderr)
	job := decode[batch.Job](t, r.stdout) // piped stdout: JSON
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Contains(t, r.stderr, job.ID+" completed 16/16 (100%) failed=0") // piped stderr: lines
	require.NotContains(t, r.stderr, "\r")

	r = runBinary(t, tb, failingBatch, "submit", "-", "--wait", "--quiet")
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, batch.StateFailed, decode[batch.Job](t, r.stdout).Status)

	r = runBinary(t, tb, `{"batch": {"operations": [{"type": "process"}]}}`, "submit", "-")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "Unknown operation type: process")

	r = runBinary(t, tb, "", "status", "batch404")
	require.Equal(t, exitNotFound, r.code)

	r = runBinary(t, tb, "", "--api-key", "nope", "list")
	require.Equal(t, exitAuth, r.code)

	r = runBinary(t, tb, "", "--version")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "batchctl version")
}

package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestExitCodes(t *testing.T) {
	tb, id := setupWithJob(t)

	tests := []struct {
		name   string
		env    map[string]string
		stdin  string
		args   []string
		code   int
		stderr []string
	}{
		{name: "invalid batch is 2 with the details", stdin: `{"batch": {"operations": [{"type": "process"}]}}`, args: []string{"submit", "-"},
			code: exitInvalid, stderr: []string{"Invalid batch job configuration (INVALID_BATCH, HTTP 400)", "operations[0].type: INVALID_OPERATION: Unknown operation type: process"}},
		{name: "not JSON or YAML is 2", stdin: "operations: [", args: []string{"submit", "-"}, code: exitInvalid, stderr: []string{"not valid JSON or YAML"}},
		{name: "unknown job is 3", args: []string{"status", "batch999"}, code: exitNotFound, stderr: []string{"NOT_FOUND, HTTP 404"}},
		{name: "unknown template is 3", args: []string{"template", "run", "nothing"}, code: exitNotFound, stderr: []string{"no template with id or name \"nothing\""}},
		{name: "wrong key is 5", env: map[string]string{envAPIKey: "wrong"}, args: []string{"status", id}, code: exitAuth, stderr: []string{"UNAUTHORIZED, HTTP 401"}},
		{name: "no key is 5", env: map[string]string{envAPIKey: ""}, args: []string{"list"}, code: exitAuth, stderr: []string{"a valid API key is required"}},
		{name: "conflict is 1", args: []string{"resume", id}, code: exitFailure, stderr: []string{"HTTP 409"}},
		{name: "unreachable server is 1", env: map[string]string{envServer: "http://127.0.0.1:1"}, args: []string{"list"}, code: exitFailure, stderr: []string{"connection refused"}},
		{name: "missing argument is 2", args: []string{"status"}, code: exitInvalid, stderr: []string{"needs 1 argument(s) (JOB_ID)"}},
		{name: "unknown flag is 2", args: []string{"list", "--colour"}, code: exitInvalid, stderr: []string{"unknown flag: --colour"}},
		{name: "unknown command is 2", args: []string{"sumbit"}, code: exitInvalid, stderr: []string{`unknown command "sumbit"`}},
		{name: "bad param is 2", args: []string{"template", "run", "x", "--param", "novalue"}, code: exitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tb.cliWith(t, runOptions{stdin: tt.stdin, env: tt.env}, tt.args...)
			require.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
			for _, s := range tt.stderr {
				require.Contains(t, r.stderr, s)
			}
			require.Empty(t, r.stdout, "errors go to stderr only")
		})
	}
}

func TestExitCodes_RateLimited(t *testing.T) {
	tb := setup(t, &serverOptions{rateLimits: rateLimitsStatus(2)})
	id := submitJob(t, tb, docRequest)
	for range 2 {
		r := tb.cli(t, "status", id)
		require.Equal(t, 0, r.code, r.stderr)
	}
	r := tb.cli(t, "status", id)
	require.Equal(t, exitRateLimit, r.code)
	require.Contains(t, r.stderr, "RATE_LIMITED, HTTP 429")
	require.Regexp(t, `retry after \d+`, r.stderr)
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("connection refused"), exitFailure},
		{usageErrorf("bad flag"), exitInvalid},
		{fmt.Errorf("wrapped: %w", usageErrorf("bad flag")), exitInvalid},
		{&jobError{ID: "batch1", Status: batch.StateFailed}, exitFailure},
		{&apiError{Status: http.StatusBadRequest, Code: string(batch.CodeInvalidBatch)}, exitInvalid},
		{&apiError{Status: http.StatusRequestEntityTooLarge}, exitInvalid},
		{&apiError{Status: http.StatusUnsupportedMediaType}, exitInvalid},
		{&apiError{Code: string(batch.CodeInvalidBatch)}, exitInvalid}, // found locally, no status
		{&apiError{Status: http.StatusNotFound}, exitNotFound},
		{&apiError{Status: http.StatusTooManyRequests}, exitRateLimit},
		{&apiError{Status: http.StatusUnauthorized}, exitAuth},
		{&apiError{Status: http.StatusForbidden}, exitAuth},
		{&apiError{Status: http.StatusConflict}, exitFailure},
		{&apiError{Status: http.StatusInternalServerError}, exitFailure},
	} {
		require.Equal(t, tc.want, exitCode(tc.err), "%v", tc.err)
	}
}

func TestPrintError(t *testing.T) {
	var b strings.Builder
	printError(&b, &apiError{Status: 400, Code: "INVALID_BATCH", Message: "Invalid batch job configuration", Details: []map[string]any{
		{"field": "operations[0].type", "code": "INVALID_OPERATION", "message": "Unknown operation type: process"},
		{"operation_index": float64(3), "resource_id": "field0004", "code": "VALIDATION_ERROR", "message": "failed rules: big", "rule": "big", "extra": []any{1.0}},
	}})
	require.Equal(t, "Error: Invalid batch job configuration (INVALID_BATCH, HTTP 400)\n"+
		"  operations[0].type: INVALID_OPERATION: Unknown operation type: process\n"+
		"  operation_index=3 resource_id=field0004: VALIDATION_ERROR: failed rules: big (extra=[1] rule=big)\n", b.String())

	b.Reset()
	printError(&b, &apiError{Status: 502})
	require.Equal(t, "Error: Bad Gateway (HTTP 502)\n", b.String())

	b.Reset()
	printError(&b, &jobError{ID: "batch7", Status: batch.StateFailed, Err: &batch.Error{Code: batch.CodeExecutionError, Message: "Batch job execution failed",
		Details: []batch.Detail{{ResourceID: "field0002", Code: string(batch.CodeValidation), Message: "failed rules: huge"}}}})
	require.Equal(t, "Error: job batch7 failed: Batch job execution failed (EXECUTION_ERROR)\n"+
		"  resource_id=field0002: VALIDATION_ERROR: failed rules: huge\n", b.String())
}

func TestLocalInvalid(t *testing.T) {
	err := localInvalid(&batch.Error{Code: batch.CodeInvalidBatch, Message: "Invalid batch job configuration",
		Details: []batch.Detail{{Field: "operations", Code: batch.DetailRequired, Message: "a batch needs at least one operation"}}})
	require.Equal(t, exitInvalid, exitCode(err))
	var ae *apiError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, []map[string]any{{"field": "operations", "code": batch.DetailRequired, "message": "a batch needs at least one operation"}}, ae.Details)
	plain := errors.New("disk full")
	require.Same(t, plain, localInvalid(plain), "other errors pass through")
}

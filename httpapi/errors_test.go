package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// lockedBuffer is a log destination the server's goroutines share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWriteError: every engine code answers its documented status in the
// document's error shape; errors that are not the client's answer 500
// EXECUTION_ERROR "internal error" and are logged, their text kept from
// the client.
func TestWriteError(t *testing.T) {
	t.Parallel()
	secret := "disk /var/db/secret.db failed"
	detail := []batch.Detail{{Field: "operations[0].type", Code: batch.DetailInvalidOperation, Message: "no such type"}}
	tests := []struct {
		name    string
		err     error
		status  int
		code    string
		message string
		details bool
		logged  bool
	}{
		{"invalid batch", &batch.Error{Code: batch.CodeInvalidBatch, Message: "bad", Details: detail}, 400, "INVALID_BATCH", "bad", true, false},
		{"validation", &batch.Error{Code: batch.CodeValidation, Message: "bad"}, 400, "VALIDATION_ERROR", "bad", false, false},
		{"not found", &batch.Error{Code: batch.CodeNotFound, Message: "job not found: batch1"}, 404, "NOT_FOUND", "job not found: batch1", false, false},
		{"forbidden", &batch.Error{Code: batch.CodeForbidden, Message: "admins only"}, 403, string(batch.CodeForbidden), "admins only", false, false},
		{"invalid state", &batch.Error{Code: batch.CodeInvalidState, Message: "running"}, 409, "INVALID_STATE", "running", false, false},
		{"schedule conflict", &batch.Error{Code: batch.CodeScheduleConflict, Message: "same time"}, 409, "SCHEDULE_CONFLICT", "same time", false, false},
		{"rate limited", &batch.Error{Code: batch.CodeRateLimited, Message: "slow down"}, 429, "RATE_LIMITED", "slow down", false, false},
		{"wrapped", fmt.Errorf("get: %w", &batch.Error{Code: batch.CodeNotFound, Message: "gone"}), 404, "NOT_FOUND", "gone", false, false},
		{"storage full", &batch.Error{Code: batch.CodeStorageFull, Message: "the disk is full"}, 507, string(batch.CodeStorageFull), "the disk is full", false, false},
		{"execution error", &batch.Error{Code: batch.CodeExecutionError, Message: "item 3 failed", Details: detail}, 500, "EXECUTION_ERROR", "item 3 failed", true, false},
		{"engine closed", &batch.Error{Code: batch.CodeClosed, Message: secret}, 503, "EXECUTION_ERROR", "internal error", false, true},
		{"unknown code", &batch.Error{Code: batch.CodeSystem, Message: secret}, 500, "EXECUTION_ERROR", "internal error", false, true},
		{"plain error", errors.New(secret), 500, "EXECUTION_ERROR", "internal error", false, true},
		{"HTTP error", &apiError{status: 415, code: "UNSUPPORTED_MEDIA_TYPE", message: "JSON only", details: detail}, 415, "UNSUPPORTED_MEDIA_TYPE", "JSON only", true, false},
		{"unauthorized", errUnauthorized(ErrNoCredentials), 401, "UNAUTHORIZED", "a valid API key is required: send Authorization: Bearer <key>", false, false},
		{"unknown key", errUnauthorized(ErrUnknownKey), 401, "UNAUTHORIZED", ErrUnknownKey.Error(), false, false},
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	mux := http.NewServeMux()
	for i, tt := range tests {
		mux.HandleFunc(fmt.Sprintf("/%d", i), func(w http.ResponseWriter, r *http.Request) { writeError(w, r, tt.err, log) })
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for i, tt := range tests {
		res, err := http.Get(fmt.Sprintf("%s/%d", srv.URL, i))
		require.NoError(t, err)
		var body struct {
			Error map[string]any `json:"error"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body), tt.name)
		res.Body.Close()
		require.Equal(t, tt.status, res.StatusCode, tt.name)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"), tt.name)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), tt.name)
		require.Equal(t, tt.code, body.Error["code"], tt.name)
		require.Equal(t, tt.message, body.Error["message"], tt.name)
		if tt.details {
			require.Equal(t, []any{map[string]any{"field": "operations[0].type", "code": batch.DetailInvalidOperation, "message": "no such type"}}, body.Error["details"], tt.name)
		} else {
			require.NotContains(t, body.Error, "details", tt.name)
		}
		require.Equal(t, tt.logged, bytes.Contains([]byte(logs.String()), []byte(fmt.Sprintf("path=/%d ", i))), "%s: logged", tt.name)
	}
	require.Contains(t, logs.String(), secret, "the log keeps what the client is not told")
}

// TestWriteJSON: a value that cannot be encoded answers 500 in the
// document's error shape instead of a broken body.
func TestWriteJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeData(w, http.StatusOK, map[string]any{"ch": make(chan int)})
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	var body errorBody
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, errorObject{Code: "EXECUTION_ERROR", Message: "encoding the response failed"}, body.Error)
}

// TestStatusOf: an engine code without an HTTP meaning of its own is 500.
func TestStatusOf(t *testing.T) {
	t.Parallel()
	for _, c := range []batch.Code{batch.CodeResource, batch.CodeTimeout, batch.CodeConflict, batch.CodeSystem, "SOMETHING_NEW"} {
		require.Equal(t, http.StatusInternalServerError, statusOf(c), c)
	}
	require.Equal(t, http.StatusServiceUnavailable, statusOf(batch.CodeClosed))
}

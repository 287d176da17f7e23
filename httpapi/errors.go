package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/batchworks/batch"
)

// apiError is an error that only the HTTP layer produces (401, 405, 413,
// 415, 429), with its status.
type apiError struct {
	status  int
	code    string
	message string
	details []batch.Detail
	err     error
}

func (e *apiError) Error() string { return e.code + ": " + e.message }
func (e *apiError) Unwrap() error { return e.err }

func errUnauthorized(err error) error {
	msg := "a valid API key is required: send Authorization: Bearer <key>"
	if err != nil && !errors.Is(err, ErrNoCredentials) {
		msg = err.Error()
	}
	return &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", message: msg, err: err}
}

// statusByCode is the HTTP status of each engine error code; a code not in
// it is a 500.
var statusByCode = map[batch.Code]int{
	batch.CodeInvalidBatch:     http.StatusBadRequest,
	batch.CodeValidation:       http.StatusBadRequest,
	batch.CodeNotFound:         http.StatusNotFound,
	batch.CodeForbidden:        http.StatusForbidden,
	batch.CodeInvalidState:     http.StatusConflict,
	batch.CodeScheduleConflict: http.StatusConflict,
	batch.CodeRateLimited:      http.StatusTooManyRequests,
	batch.CodeClosed:           http.StatusServiceUnavailable,
	batch.CodeStorageFull:      http.StatusInsufficientStorage,
}

// statusOf maps an engine error code to its HTTP status. It is the one place
// that does so.
func statusOf(code batch.Code) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is the document's error shape.
type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details []batch.Detail `json:"details,omitempty"`
}

// writeError answers with err in the document's error shape. Errors that
// are not the client's fault are logged and answered without internals.
func writeError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	var ae *apiError
	var be *batch.Error
	var status int
	var body errorObject
	switch {
	case errors.As(err, &ae):
		status, body = ae.status, errorObject{Code: ae.code, Message: ae.message, Details: ae.details}
	case errors.As(err, &be):
		status, body = statusOf(be.Code), errorObject{Code: string(be.Code), Message: be.Message, Details: be.Details}
		if status >= 500 && be.Code != batch.CodeExecutionError && be.Code != batch.CodeStorageFull {
			log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			body = errorObject{Code: string(batch.CodeExecutionError), Message: "internal error"}
		}
	default:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		status, body = http.StatusInternalServerError, errorObject{Code: string(batch.CodeExecutionError), Message: "internal error"}
	}
	writeJSON(w, status, errorBody{Error: body})
}

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"EXECUTION_ERROR","message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeData answers {"data": v}.
func writeData(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, map[string]any{"data": v})
}

// reply answers {"data": v} with status, unless err, which it returns for
// the route to answer.
func reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	writeData(w, status, v)
	return nil
}

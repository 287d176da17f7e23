package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/batchworks/batch"
)

// Exit codes. They let a script tell a request it should fix from one it
// may retry.
const (
	exitOK        = 0
	exitFailure   = 1 // a failed or cancelled job, or anything not below
	exitInvalid   = 2 // the API refused the request as invalid (400), or bad usage
	exitNotFound  = 3 // NOT_FOUND (404)
	exitRateLimit = 4 // RATE_LIMITED (429)
	exitAuth      = 5 // authentication failed (401, 403)
)

// exitCode maps an error to the process exit status.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitInvalid
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return exitAuth
		case ae.Status == http.StatusNotFound || ae.Code == string(batch.CodeNotFound):
			return exitNotFound
		case ae.Status == http.StatusTooManyRequests || ae.Code == string(batch.CodeRateLimited):
			return exitRateLimit
		case ae.Status == http.StatusBadRequest || ae.Status == http.StatusRequestEntityTooLarge ||
			ae.Status == http.StatusUnsupportedMediaType || ae.Code == string(batch.CodeInvalidBatch):
			return exitInvalid
		}
	}
	return exitFailure
}

// usageError is a mistake on the command line, found before any request.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// jobError says that a job the command followed ended failed or
// cancelled.
type jobError struct {
	ID     string
	Status batch.State
	Err    *batch.Error // the job's error, if it has one
}

func (e *jobError) Error() string {
	msg := fmt.Sprintf("job %s %s", e.ID, e.Status)
	if e.Err != nil {
		msg += ": " + e.Err.Message
		if e.Err.Code != "" {
			msg += " (" + string(e.Err.Code) + ")"
		}
	}
	return msg
}

// localInvalid turns a *batch.Error found on this side (a file that does not
// decode as a batch) into the shape the API would have answered.
func localInvalid(err error) error {
	var be *batch.Error
	if !errors.As(err, &be) {
		return err
	}
	ae := &apiError{Code: string(be.Code), Message: be.Message}
	if raw, merr := json.Marshal(be.Details); merr == nil {
		_ = json.Unmarshal(raw, &ae.Details)
	}
	return ae
}

// printError writes err to w, with the API's details one per line.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "Error: %s\n", err)
	var details []map[string]any
	var ae *apiError
	var je *jobError
	switch {
	case errors.As(err, &ae):
		details = ae.Details
		if ae.RetryAfter > 0 {
			fmt.Fprintf(w, "  retry after %s\n", ae.RetryAfter)
		}
	case errors.As(err, &je) && je.Err != nil:
		if raw, merr := json.Marshal(je.Err.Details); merr == nil {
			_ = json.Unmarshal(raw, &details)
		}
	}
	for _, d := range details {
		fmt.Fprintf(w, "  %s\n", formatDetail(d))
	}
}

// formatDetail writes one error detail as "where: CODE: message", then any
// other fields as key=value.
func formatDetail(d map[string]any) string {
	var where []string
	for _, k := range []string{"field", "operation_index", "resource_id", "time", "conflict_with"} {
		if v, ok := d[k]; ok && v != nil && v != "" {
			if k == "field" {
				where = append(where, fmt.Sprint(v))
			} else {
				where = append(where, fmt.Sprintf("%s=%v", k, jsonText(v)))
			}
		}
	}
	var extra []string
	for k, v := range d {
		switch k {
		case "field", "operation_index", "resource_id", "time", "conflict_with", "code", "message":
			continue
		}
		extra = append(extra, fmt.Sprintf("%s=%s", k, jsonText(v)))
	}
	slices.Sort(extra)
	var parts []string
	if len(where) > 0 {
		parts = append(parts, strings.Join(where, " "))
	}
	if c, ok := d["code"].(string); ok && c != "" {
		parts = append(parts, c)
	}
	if m, ok := d["message"].(string); ok && m != "" {
		parts = append(parts, m)
	}
	s := strings.Join(parts, ": ")
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, " ") + ")"
	}
	return s
}

// jsonText writes a decoded JSON value compactly: strings bare, the rest
// as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

package batch

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a machine-readable error code. The constants are the API
// document's exact strings.
type Code string

// Codes an [Error] carries. The first group are API error codes; the second
// are the per-item error types of a job's items.
const (
	// CodeInvalidBatch: the submitted batch, template, schedule or webhook is
	// malformed; Details say where.
	CodeInvalidBatch Code = "INVALID_BATCH"
	// CodeNotFound: no such job, template, schedule, webhook, record or artifact.
	CodeNotFound Code = "NOT_FOUND"
	// CodeInvalidState: the job's state does not allow the requested change
	// (pausing a finished job, deleting a running one).
	CodeInvalidState Code = "INVALID_STATE"
	// CodeScheduleConflict: a schedule clashes with another one.
	CodeScheduleConflict Code = "SCHEDULE_CONFLICT"
	// CodeRateLimited: the client sent too many requests.
	CodeRateLimited Code = "RATE_LIMITED"
	// CodeExecutionError: a job failed; Details are the item errors that
	// failed it.
	CodeExecutionError Code = "EXECUTION_ERROR"
	// CodeClosed: the engine is closed.
	CodeClosed Code = "ENGINE_CLOSED"

	// CodeValidation: an item's data failed validation. Never retried.
	CodeValidation Code = "VALIDATION_ERROR"
	// CodeResource: a resource could not be read or written. Retried unless
	// the record does not exist.
	CodeResource Code = "RESOURCE_ERROR"
	// CodeSystem: anything else, including a panicking handler. Retried.
	CodeSystem Code = "SYSTEM_ERROR"
	// CodeTimeout: an item or the whole job ran past its time. Retried for
	// items.
	CodeTimeout Code = "TIMEOUT_ERROR"
	// CodeConflict: a revert found the record changed since the job it
	// reverts changed it. Never retried; revert with force to overwrite.
	CodeConflict Code = "CONFLICT"
)

// Detail codes name what is wrong with one field of a rejected request.
const (
	DetailInvalidOperation = "INVALID_OPERATION" // unknown or unusable operation type
	DetailUnknownResource  = "UNKNOWN_RESOURCE"  // no resource of that name
	DetailRequired         = "REQUIRED"          // a required field is missing
	DetailInvalidValue     = "INVALID_VALUE"     // a value of the wrong type or range
	DetailUnknownField     = "UNKNOWN_FIELD"     // a field the object does not have
	DetailInvalidExpr      = "INVALID_EXPRESSION"
	DetailNotImplemented   = "NOT_IMPLEMENTED" // a registered type that cannot run yet
)

// Detail is one problem in an [Error]: for a rejected request, the field (a
// JSON path such as "operations[0].type") and what is wrong with it; for a
// failed job, the item that failed it.
type Detail struct {
	Field string `json:"field,omitempty"`
	// ItemIndex is the failed item's number in its job, from 0 (the
	// document's operation_index, as in [ItemError]); BatchOperation is its
	// operation's place in the batch.
	ItemIndex      *int64 `json:"operation_index,omitempty"`
	BatchOperation *int   `json:"batch_operation,omitempty"`
	ResourceID     string `json:"resource_id,omitempty"`
	// Time and ConflictWith describe a SCHEDULE_CONFLICT: the clashing due
	// time and the other schedule's id.
	Time         string `json:"time,omitempty"`
	ConflictWith string `json:"conflict_with,omitempty"`
	Code         string `json:"code,omitempty"`
	Message      string `json:"message,omitempty"`
}

// Error is the coded error every engine call returns for a problem a caller
// can act on. errors.Is matches two *Error values by Code, so the sentinels
// below work with errors.Is, and errors.As gives the Details.
type Error struct {
	Code    Code     `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`
	// Err is the underlying cause, if any; it is not serialised.
	Err error `json:"-"`
}

// Sentinels for errors.Is.
var (
	ErrNotFound     = &Error{Code: CodeNotFound, Message: "not found"}
	ErrInvalidBatch = &Error{Code: CodeInvalidBatch, Message: "Invalid batch job configuration"}
	ErrInvalidState = &Error{Code: CodeInvalidState, Message: "invalid state"}
	ErrClosed       = &Error{Code: CodeClosed, Message: "engine is closed"}
)

// Error returns the message, the first details and the cause.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, d := range e.Details {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Details)-3)
			break
		}
		b.WriteString("; ")
		if d.Field != "" {
			b.WriteString(d.Field)
			b.WriteString(": ")
		}
		switch {
		case d.Message != "":
			b.WriteString(d.Message)
		case d.ConflictWith != "":
			fmt.Fprintf(&b, "conflicts with %s at %s", d.ConflictWith, d.Time)
		default:
			b.WriteString(d.Code)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// NewError returns an *Error with code and a formatted message.
func NewError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ValidationError returns a VALIDATION_ERROR for an item: the item's data is
// wrong and retrying will not help. Operation handlers return it.
func ValidationError(format string, args ...any) *Error {
	return NewError(CodeValidation, format, args...)
}

// notFound returns a NOT_FOUND error naming what is missing.
func notFound(what, id string) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s not found: %s", what, id)}
}

// invalidBatch returns an INVALID_BATCH error with details, or nil when
// there are none.
func invalidBatch(details []Detail) error {
	if len(details) == 0 {
		return nil
	}
	return &Error{Code: CodeInvalidBatch, Message: "Invalid batch job configuration", Details: details}
}

// CodeOf returns the Code of the first *Error in err's chain, or "" if none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// details collects request problems with a path prefix.
type details struct {
	list []Detail
}

func (d *details) add(field, code, format string, args ...any) {
	d.list = append(d.list, Detail{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

// merge adds err's details (or err itself) under prefix.
func (d *details) merge(prefix string, err error) {
	var e *Error
	if errors.As(err, &e) && e.Code == CodeInvalidBatch && len(e.Details) > 0 {
		for _, x := range e.Details {
			x.Field = joinPath(prefix, x.Field)
			d.list = append(d.list, x)
		}
		return
	}
	code := DetailInvalidValue
	if errors.As(err, &e) && e.Code == CodeInvalidBatch {
		code = DetailInvalidOperation
	}
	msg := err.Error()
	if e != nil {
		msg = e.Message
	}
	d.list = append(d.list, Detail{Field: prefix, Code: code, Message: msg})
}

// joinPath joins JSON path parts: ("operations[0]", "filter.x") gives
// "operations[0].filter.x" and ("records", "[2]") gives "records[2]".
func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// Permanent marks err so that the item fails at once instead of being
// retried. Validation errors and missing records are permanent already.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/batchworks/batch"
)

// What every route reads from a request: JSON bodies wrapped the way the
// document wraps them, page parameters, the Idempotency-Key header and
// ?dry_run=.

// readJSON reads a JSON request body: the content type must be JSON and
// the body at most MaxBodyBytes.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "UNSUPPORTED_MEDIA_TYPE",
			message: fmt.Sprintf("request bodies must be JSON (Content-Type: application/json), got %q", ct)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "PAYLOAD_TOO_LARGE",
				message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: string(batch.CodeInvalidBatch), message: "reading the request body failed: " + err.Error()}
	}
	if err := batch.CheckJSON(body); err != nil {
		// Paths inside the wrapper object ({"batch": ...}) are given
		// relative to it, as the engine gives them.
		var be *batch.Error
		if errors.As(err, &be) {
			for i, d := range be.Details {
				if j := strings.IndexAny(d.Field, ".["); j > 0 && d.Field[j] == '.' {
					be.Details[i].Field = d.Field[j+1:]
				}
			}
		}
		return nil, err
	}
	return body, nil
}

// unwrap decodes a body of the form {"<key>": {...}} strictly and returns
// the inner object.
func unwrap(body []byte, key string) (json.RawMessage, error) {
	var outer map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&outer); err != nil || outer == nil {
		// DecodeBatch words JSON errors well; reuse it on the whole body.
		_, derr := batch.DecodeBatch(body)
		if derr == nil {
			derr = invalid("", "the body must be a JSON object {\""+key+"\": {...}}")
		}
		return nil, derr
	}
	if dec.More() {
		return nil, invalid("", "unexpected data after the JSON object")
	}
	for k := range outer {
		if k != key {
			return nil, invalid(k, fmt.Sprintf("unknown field %q: the body is {\"%s\": {...}}", k, key))
		}
	}
	inner, ok := outer[key]
	if !ok || string(inner) == "null" {
		return nil, invalid(key, fmt.Sprintf("the body needs a %q object", key))
	}
	return inner, nil
}

// invalid is a 400 INVALID_BATCH with one detail.
func invalid(field, message string) error {
	code := batch.DetailInvalidValue
	if strings.HasPrefix(message, "unknown field") {
		code = batch.DetailUnknownField
	}
	return &batch.Error{Code: batch.CodeInvalidBatch, Message: batch.ErrInvalidBatch.Message, Details: []batch.Detail{{Field: field, Code: code, Message: message}}}
}

// idempotencyKey reads and checks the Idempotency-Key header.
func idempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return "", nil
	}
	if len(key) > 255 || strings.IndexFunc(key, func(c rune) bool { return c > unicode.MaxASCII || !unicode.IsPrint(c) }) >= 0 {
		return "", invalid("Idempotency-Key", "the Idempotency-Key header must be at most 255 printable ASCII characters")
	}
	return key, nil
}

// dryRun reports whether the request asks for a dry run (?dry_run=true).
func dryRun(r *http.Request) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get("dry_run"))
	return v
}

// checkDryRun refuses a dry_run value that is not a boolean.
func checkDryRun(r *http.Request) error {
	if v := r.URL.Query().Get("dry_run"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return invalid("dry_run", fmt.Sprintf("dry_run must be true or false, got %q", v))
		}
	}
	return nil
}

// decodeWrapped reads a JSON body {"<key>": {...}} and decodes the inner
// object with decode.
func decodeWrapped[T any](h *Handler, w http.ResponseWriter, r *http.Request, key string, decode func([]byte) (T, error)) (T, error) {
	var zero T
	body, err := h.readJSON(w, r)
	if err != nil {
		return zero, err
	}
	raw, err := unwrap(body, key)
	if err != nil {
		return zero, err
	}
	return decode(raw)
}

// pageParams reads ?cursor= and ?limit=.
func pageParams(r *http.Request) (cursor string, limit int, err error) {
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > 1000 {
			return "", 0, invalid("limit", "limit must be a number between 1 and 1000")
		}
	}
	return q.Get("cursor"), limit, nil
}

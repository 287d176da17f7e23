package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/batchworks/batch"
)

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

// createJob handles POST /jobs: {"batch": {...}}, optionally ?wait=30s;
// with ?dry_run=true it answers what the batch would do, storing nothing.
func (h *Handler) createJob(w http.ResponseWriter, r *http.Request) error {
	if err := checkDryRun(r); err != nil {
		return err
	}
	if dryRun(r) {
		return h.dryRunJob(w, r)
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return invalid("wait", fmt.Sprintf("wait must be a duration such as \"30s\", got %q", v))
		}
		wait = min(d, h.opts.MaxWait)
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	body, err := h.readJSON(w, r)
	if err != nil {
		return err
	}
	raw, err := unwrap(body, "batch")
	if err != nil {
		return err
	}
	b, err := batch.DecodeBatch(raw)
	if err != nil {
		return err
	}
	var replayed bool
	job, err := h.engine.Submit(r.Context(), b, &batch.SubmitOptions{Owner: principal(r), IdempotencyKey: key, Replayed: &replayed})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", URL(r, "/jobs/"+url.PathEscape(job.ID)))
	if wait > 0 {
		holdOpen(w, wait+progressIdle)
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		if j, err := h.engine.Wait(ctx, job.ID); err == nil || errors.Is(err, context.DeadlineExceeded) {
			job = j
		} else if r.Context().Err() == nil {
			return err
		}
		if job.Status == batch.StateFailed && job.Error != nil {
			return job.Error
		}
	}
	writeData(w, status, withURLs(r, job))
	return nil
}

// withURLs fills in the download URLs of a job's artifacts.
func withURLs(r *http.Request, job *batch.Job) *batch.Job {
	for i := range job.Results {
		if a := job.Results[i].Artifact; a != nil {
			c := *a
			c.URL = URL(r, "/jobs/"+url.PathEscape(job.ID)+"/artifacts/"+url.PathEscape(a.Name))
			job.Results[i].Artifact = &c
		}
	}
	return job
}

// ownedJob returns the job named in the path if the caller may see it;
// another principal's job is NOT_FOUND.
func (h *Handler) ownedJob(r *http.Request) (*batch.Job, error) {
	id := r.PathValue("job_id")
	job, err := h.engine.Job(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if job.Owner != principal(r) {
		return nil, &batch.Error{Code: batch.CodeNotFound, Message: "job not found: " + id}
	}
	return job, nil
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) error {
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, withURLs(r, job))
	return nil
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

// listJobs handles GET /jobs?state=&cursor=&limit=.
func (h *Handler) listJobs(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	state := r.URL.Query().Get("state")
	if state == "" {
		state = r.URL.Query().Get("status")
	}
	page, err := h.engine.Jobs(r.Context(), &batch.ListOptions{State: batch.State(state), Owner: principal(r), Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	for _, j := range page.Items {
		if j.Owner != principal(r) {
			return fmt.Errorf("httpapi: list returned job %s of another owner", j.ID)
		}
		withURLs(r, j)
	}
	writeData(w, http.StatusOK, page)
	return nil
}

func (h *Handler) deleteJob(w http.ResponseWriter, r *http.Request) error {
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	if err := h.engine.Delete(r.Context(), job.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// control runs a job state change on the caller's job.
func (h *Handler) control(w http.ResponseWriter, r *http.Request, fn func(context.Context, string) (*batch.Job, error)) error {
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	job, err = fn(r.Context(), job.ID)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, withURLs(r, job))
	return nil
}

func (h *Handler) pauseJob(w http.ResponseWriter, r *http.Request) error {
	return h.control(w, r, h.engine.Pause)
}

func (h *Handler) resumeJob(w http.ResponseWriter, r *http.Request) error {
	return h.control(w, r, h.engine.Resume)
}

func (h *Handler) cancelJob(w http.ResponseWriter, r *http.Request) error {
	return h.control(w, r, h.engine.Cancel)
}

// jobErrors handles GET /jobs/{job_id}/errors?cursor=&limit=.
func (h *Handler) jobErrors(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	page, err := h.engine.JobErrors(r.Context(), job.ID, &batch.PageOptions{Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// artifact streams GET /jobs/{job_id}/artifacts/{name}.
func (h *Handler) artifact(w http.ResponseWriter, r *http.Request) error {
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	art, rc, err := h.engine.OpenArtifact(r.Context(), job.ID, r.PathValue("name"))
	if err != nil {
		return err
	}
	defer rc.Close()
	hd := w.Header()
	hd.Set("Content-Type", art.ContentType)
	hd.Set("Content-Length", strconv.FormatInt(art.Size, 10))
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": art.Name}))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(progressWriter{w}, rc); err != nil {
		h.log.Warn("artifact download cut short", "job_id", job.ID, "artifact", art.Name, "err", err)
	}
	return nil
}

// jobEvents handles GET /jobs/{job_id}/events?cursor=&limit=: the job's
// audit trail, which outlives the job itself.
func (h *Handler) jobEvents(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	id := r.PathValue("job_id")
	notYours := &batch.Error{Code: batch.CodeNotFound, Message: "job not found: " + id}
	switch job, err := h.engine.Job(r.Context(), id); {
	case err == nil && job.Owner != principal(r):
		return notYours
	case err != nil && !errors.Is(err, batch.ErrNotFound):
		return err
	case err != nil:
		// A deleted job: its trail names the owner.
		first, err := h.engine.JobEvents(r.Context(), id, &batch.PageOptions{Limit: 1})
		if err != nil {
			return err
		}
		if len(first.Items) == 0 {
			return notYours
		}
		if owner, _ := first.Items[0].Details["owner"].(string); owner != principal(r) {
			return notYours
		}
	}
	page, err := h.engine.JobEvents(r.Context(), id, &batch.PageOptions{Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}

// dryRunJob answers POST /jobs?dry_run=true: {"batch": {...}} -> 200 with
// what each operation would do now. It runs no longer than the request.
func (h *Handler) dryRunJob(w http.ResponseWriter, r *http.Request) error {
	body, err := h.readJSON(w, r)
	if err != nil {
		return err
	}
	raw, err := unwrap(body, "batch")
	if err != nil {
		return err
	}
	b, err := batch.DecodeBatch(raw)
	if err != nil {
		return err
	}
	dr, err := h.engine.DryRun(r.Context(), b)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, dr)
	return nil
}

// revertJob handles POST /jobs/{job_id}/revert, with an optional body
// {"force": true}: 201 with the new revert job; with ?dry_run=true, 200
// with what the revert would do.
func (h *Handler) revertJob(w http.ResponseWriter, r *http.Request) error {
	if err := checkDryRun(r); err != nil {
		return err
	}
	var opts batch.RevertOptions
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		body, err := h.readJSON(w, r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&opts); err != nil {
				return invalid("", "the body is {\"force\": true|false}: "+err.Error())
			}
			if dec.More() {
				return invalid("", "unexpected data after the JSON object")
			}
		}
	}
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	if dryRun(r) {
		dr, err := h.engine.DryRunRevert(r.Context(), job.ID, &opts)
		if err != nil {
			return err
		}
		writeData(w, http.StatusOK, dr)
		return nil
	}
	rv, err := h.engine.Revert(r.Context(), job.ID, &opts)
	if err != nil {
		return err
	}
	w.Header().Set("Location", URL(r, "/jobs/"+url.PathEscape(rv.ID)))
	writeData(w, http.StatusCreated, withURLs(r, rv))
	return nil
}

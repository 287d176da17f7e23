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
	"time"

	"github.com/batchworks/batch"
)

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
	b, err := decodeWrapped(h, w, r, "batch", batch.DecodeBatch)
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
	return reply(w, http.StatusOK, page, err)
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
	return reply(w, http.StatusOK, page, err)
}

// dryRunJob answers POST /jobs?dry_run=true: {"batch": {...}} -> 200 with
// what each operation would do now. It runs no longer than the request.
func (h *Handler) dryRunJob(w http.ResponseWriter, r *http.Request) error {
	b, err := decodeWrapped(h, w, r, "batch", batch.DecodeBatch)
	if err != nil {
		return err
	}
	dr, err := h.engine.DryRun(r.Context(), b)
	return reply(w, http.StatusOK, dr, err)
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
		return reply(w, http.StatusOK, dr, err)
	}
	rv, err := h.engine.Revert(r.Context(), job.ID, &opts)
	if err != nil {
		return err
	}
	w.Header().Set("Location", URL(r, "/jobs/"+url.PathEscape(rv.ID)))
	writeData(w, http.StatusCreated, withURLs(r, rv))
	return nil
}

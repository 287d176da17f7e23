package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batchworks/batch"
)

// streamHeartbeat is how often an idle stream sends a comment line, so
// proxies keep the connection open.
const streamHeartbeat = 15 * time.Second

// streamEvent is the data of a lifecycle message of the progress stream.
type streamEvent struct {
	Type      batch.EventType `json:"type"`
	At        time.Time       `json:"at"`
	Principal string          `json:"principal"`
	JobID     string          `json:"job_id"`
	Job       *batch.Job      `json:"job"`
}

// streamJob handles GET /jobs/{job_id}/stream: the job's progress as
// Server-Sent Events until it ends.
//
// Every message has "id: <n>" (increasing within the stream; after a
// Last-Event-ID header of n it starts at n+1), "event: <name>" and one
// line of JSON data. The first message is a "progress" with the job as GET
// /jobs/{job_id} shows it; another follows whenever the job changes, at
// most four a second. Lifecycle changes come as they happen as
// "job_started", "job_paused", "job_resumed", "job_completed",
// "job_failed" and "job_cancelled", with data {"type", "at", "principal",
// "job_id", "job"}. When the job is final (or deleted) an "end" message
// carries the final job and the server closes the stream. A stream ended
// by the server shutting down has no "end": the client reconnects.
func (h *Handler) streamJob(w http.ResponseWriter, r *http.Request) error {
	job, err := h.ownedJob(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	updates, err := h.engine.Watch(r.Context(), job.ID)
	if err != nil {
		return err
	}
	var next uint64 = 1
	if v, err := strconv.ParseUint(strings.TrimSpace(r.Header.Get("Last-Event-ID")), 10, 64); err == nil && v < 1<<62 {
		next = v + 1
	}
	rc := http.NewResponseController(w)
	// A stream outlives the server's read and write timeouts: every message
	// and heartbeat extends them, so a client that stops reading is cut off
	// after progressIdle instead of holding the stream forever.
	holdOpen(w, progressIdle)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	write := func(event string, data any) error {
		buf.Reset()
		fmt.Fprintf(&buf, "id: %d\nevent: %s\ndata: ", next, event)
		if err := json.NewEncoder(&buf).Encode(data); err != nil { // one line, ends in \n
			return err
		}
		buf.WriteByte('\n')
		next++
		holdOpen(w, progressIdle)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		return rc.Flush()
	}
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	last := job
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				if last.Status.Final() || r.Context().Err() == nil && h.deleted(r, job.ID) {
					_ = write("end", streamView(r, last))
				}
				return nil
			}
			if u.Event != nil {
				if u.Event.Type == batch.EventJobDeleted {
					continue // the stream ends with the job as it was last seen
				}
				err = write(string(u.Event.Type), streamEvent{Type: u.Event.Type, At: u.Event.At, Principal: u.Event.Principal, JobID: u.Event.JobID, Job: streamView(r, u.Event.Job)})
			} else {
				last = u.Job
				err = write("progress", streamView(r, u.Job))
			}
		case <-h.streamsDone:
			return nil
		case <-heartbeat.C:
			holdOpen(w, progressIdle)
			_, err = w.Write([]byte(": keep-alive\n\n"))
			if err == nil {
				err = rc.Flush()
			}
		}
		if err != nil {
			return nil // the client went away; the response has begun
		}
	}
}

// CloseStreams ends every open progress stream and makes new ones end at
// once, without an "end" message, so clients reconnect elsewhere or later.
// http.Server.Shutdown does not end long-lived responses by itself:
// register CloseStreams with http.Server.RegisterOnShutdown.
func (h *Handler) CloseStreams() {
	h.closeOnce.Do(func() { close(h.streamsDone) })
}

// deleted reports whether the job no longer exists.
func (h *Handler) deleted(r *http.Request, id string) bool {
	_, err := h.engine.Job(r.Context(), id)
	return errors.Is(err, batch.ErrNotFound)
}

// streamView is the job as GET shows it, copied first: snapshots and
// event jobs may be shared with other readers.
func streamView(r *http.Request, j *batch.Job) *batch.Job {
	if j == nil {
		return nil
	}
	c := *j
	c.Results = slices.Clone(j.Results)
	return withURLs(r, &c)
}

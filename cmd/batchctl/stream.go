package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/batchworks/batch"
)

// Event names of the progress stream (GET /jobs/{job_id}/stream).
const (
	sseProgress = "progress" // data: the job as GET /jobs/{job_id} shows it
	sseEnd      = "end"      // data: the final job; the server then closes
	// The lifecycle events job_started, job_paused, job_resumed,
	// job_completed, job_failed and job_cancelled carry
	// {"type", "at", "principal", "job_id", "job": {...}}.
)

// maxReconnects is how many times in a row a broken stream is reopened
// before the follower falls back to polling.
const maxReconnects = 5

// follower follows one job to its end: from the server's progress stream,
// or by polling GET /jobs/{job_id} when the server has none.
type follower struct {
	api          *client
	view         progressView
	pollInterval time.Duration
	log          io.Writer // notes about falling back, rate limits
	// reconnectDelay is the pause before reopening a broken stream.
	reconnectDelay time.Duration
}

// sseMessage is one Server-Sent Events message.
type sseMessage struct {
	id, event, data string
}

// lifecycle is the data of a lifecycle event.
type lifecycle struct {
	Type      string     `json:"type"`
	At        time.Time  `json:"at"`
	Principal string     `json:"principal"`
	JobID     string     `json:"job_id"`
	Job       *batch.Job `json:"job"`
}

// errNoStream says the server has no progress stream for the job.
var errNoStream = errors.New("no progress stream")

// follow returns the job once it is final, with its raw JSON.
func (f *follower) follow(ctx context.Context, id string) (*batch.Job, json.RawMessage, error) {
	lastID := ""
	failures := 0
	for {
		job, raw, got, err := f.stream(ctx, id, &lastID)
		switch {
		case err == nil:
			return job, raw, nil
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case errors.Is(err, errNoStream):
			return f.poll(ctx, id)
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, nil, err
		}
		if got {
			failures = 0
		}
		failures++
		if failures > maxReconnects {
			fmt.Fprintf(f.log, "progress stream keeps failing (%v); polling instead\n", err)
			return f.poll(ctx, id)
		}
		if err := sleep(ctx, max(f.reconnectDelay, 200*time.Millisecond)*time.Duration(failures)); err != nil {
			return nil, nil, err
		}
	}
}

// stream reads the progress stream once, from the message after *lastID.
// It returns the final job when the stream ends properly; got says whether
// any message arrived.
func (f *follower) stream(ctx context.Context, id string, lastID *string) (job *batch.Job, raw json.RawMessage, got bool, err error) {
	req, err := f.api.newRequest(ctx, http.MethodGet, jobPath(id, "/stream"), nil, nil)
	if err != nil {
		return nil, nil, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := f.api.http.Do(req)
	if err != nil {
		return nil, nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		ae := decodeAPIError(resp, body)
		switch resp.StatusCode {
		case http.StatusNotFound:
			// Either the job is unknown or the server predates the stream:
			// GET tells them apart.
			if _, gerr := f.api.get(ctx, jobPath(id, ""), nil, nil); gerr != nil {
				return nil, nil, false, gerr
			}
			return nil, nil, false, errNoStream
		case http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusTooManyRequests:
			return nil, nil, false, errNoStream
		}
		return nil, nil, false, ae
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return nil, nil, false, errNoStream
	}
	err = readSSE(resp.Body, func(m sseMessage) error {
		got = true
		if m.id != "" {
			*lastID = m.id
		}
		switch m.event {
		case sseProgress, sseEnd:
			var j batch.Job
			if err := json.Unmarshal([]byte(m.data), &j); err != nil {
				return fmt.Errorf("progress stream: a %s message that is not a job: %w", m.event, err)
			}
			if m.event == sseEnd {
				job, raw = &j, json.RawMessage(m.data)
				return io.EOF
			}
			f.view.update(&j)
		default:
			if !strings.HasPrefix(m.event, "job_") {
				return nil // an event this client does not know
			}
			var ev lifecycle
			if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
				return nil
			}
			if ev.Type == "" {
				ev.Type = m.event
			}
			f.view.event(&ev)
		}
		return nil
	})
	if job != nil {
		return job, raw, true, nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, nil, got, fmt.Errorf("progress stream of %s ended early: %w", id, err)
}

// readSSE parses a text/event-stream and calls fn for each message until
// fn returns an error (io.EOF stops without one) or the stream ends.
func readSSE(r io.Reader, fn func(sseMessage) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var m sseMessage
	var data []string
	hasData := false
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if hasData {
				m.data = strings.Join(data, "\n")
				if m.event == "" {
					m.event = "message"
				}
				if err := fn(m); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
			m, data, hasData = sseMessage{id: ""}, data[:0], false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment, such as a keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			m.event = value
		case "data":
			data = append(data, value)
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				m.id = value
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// poll reads GET /jobs/{job_id} every pollInterval until the job is final.
// A 429 waits out its Retry-After instead of failing the wait.
func (f *follower) poll(ctx context.Context, id string) (*batch.Job, json.RawMessage, error) {
	interval := max(f.pollInterval, 50*time.Millisecond)
	for {
		var j batch.Job
		raw, err := f.api.get(ctx, jobPath(id, ""), nil, &j)
		var ae *apiError
		switch {
		case err == nil:
			if j.Status.Final() {
				return &j, raw, nil
			}
			f.view.update(&j)
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			wait := max(ae.RetryAfter, interval)
			fmt.Fprintf(f.log, "rate limited; polling again in %s\n", wait)
			if err := sleep(ctx, wait); err != nil {
				return nil, nil, err
			}
			continue
		default:
			return nil, nil, err
		}
		if err := sleep(ctx, interval); err != nil {
			return nil, nil, err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

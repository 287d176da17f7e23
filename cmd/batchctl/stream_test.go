package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestReadSSE(t *testing.T) {
	t.Parallel()
	stream := ": keep-alive comment\r\n" +
		"id: 1\r\nevent: progress\r\ndata: {\"job_id\":\"b1\"}\r\n\r\n" +
		"retry: 1000\n" +
		"id: 2\nevent: job_started\ndata: {\"type\":\"job_started\",\n" +
		"data: \"job_id\":\"b1\"}\n\n" +
		"event: ignored-without-data\n\n" +
		"id: 3\nevent: end\ndata:{\"job_id\":\"b1\",\"status\":\"completed\"}\n\n" +
		"id: 4\nevent: progress\ndata: {}\n\n"

	var got []sseMessage
	err := readSSE(strings.NewReader(stream), func(m sseMessage) error {
		got = append(got, m)
		if m.event == "end" {
			return io.EOF
		}
		return nil
	})
	require.NoError(t, err, "io.EOF from the callback stops cleanly")
	require.Equal(t, []sseMessage{
		{id: "1", event: "progress", data: `{"job_id":"b1"}`},
		{id: "2", event: "job_started", data: "{\"type\":\"job_started\",\n\"job_id\":\"b1\"}"},
		{id: "3", event: "end", data: `{"job_id":"b1","status":"completed"}`},
	}, got)

	err = readSSE(strings.NewReader("id: 1\nevent: progress\ndata: {}\n\nid: 2\nevent: prog"), func(sseMessage) error { return nil })
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a stream cut before its end is an error")
}

// cutStream wraps the API: the first progress stream it serves breaks
// after its first message (the real stream's, cut short), so the client
// must reconnect with Last-Event-ID.
type cutStream struct {
	mu      sync.Mutex
	lastIDs []string // the Last-Event-ID of each stream request
}

func (c *cutStream) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lastIDs)
}

func (c *cutStream) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/stream") {
			next.ServeHTTP(w, r)
			return
		}
		c.mu.Lock()
		c.lastIDs = append(c.lastIDs, r.Header.Get("Last-Event-ID"))
		first := len(c.lastIDs) == 1
		c.mu.Unlock()
		if !first {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		next.ServeHTTP(&oneMessageWriter{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx))
	})
}

// oneMessageWriter passes one write (the stream writes a message at a time)
// and then ends the request, as a dropped connection would.
type oneMessageWriter struct {
	http.ResponseWriter
	cancel  context.CancelFunc
	written bool
}

func (w *oneMessageWriter) Write(p []byte) (int, error) {
	if w.written {
		return 0, errors.New("cut")
	}
	w.written = true
	n, err := w.ResponseWriter.Write(p)
	w.cancel()
	return n, err
}

func (w *oneMessageWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestWait_StreamReconnectsWithLastEventID(t *testing.T) {
	cut := &cutStream{}
	tb := setup(t, &serverOptions{wrap: cut.wrap})
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 2}}]}}`)
	tb.waitRunning(t, id)
	done := tb.cliAsync(t, "wait", id)
	// Finish the job once the client has reconnected.
	tb.waitRequested(t, "GET "+httpapi.Prefix+"/jobs/"+id+"/stream$", 2)
	tb.release()

	r := <-done
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, batch.StateCompleted, decode[batch.Job](t, r.stdout).Status)
	require.Equal(t, []string{"", "1"}, cut.seen(), "the second connection resumes after the last message")
	require.Contains(t, r.stderr, id+" running 0/2 (0%) failed=0")
	require.Contains(t, r.stderr, id+" job_completed")
	require.Zero(t, tb.requested("GET "+httpapi.Prefix+"/jobs/"+id+"$"), "no polling")
}

// hideStream wraps the API as a server without a progress stream: its
// stream path answers the API's 404 for an unknown endpoint.
func hideStream(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"NOT_FOUND","message":"no such endpoint: %s"}}`, r.URL.Path)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestWait_PollsAServerWithoutAStream(t *testing.T) {
	tb := setup(t, &serverOptions{wrap: hideStream})
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 4}}]}}`)
	done := tb.cliAsync(t, "wait", id, "--poll-interval", "20ms")
	// Release the items once wait has polled the running job twice.
	tb.waitRequested(t, "GET "+httpapi.Prefix+"/jobs/"+id+"$", 3)
	tb.release()
	r := <-done
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, batch.StateCompleted, decode[batch.Job](t, r.stdout).Status)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.GreaterOrEqual(t, len(lines), 2, r.stderr)
	require.Regexp(t, id+` (queued|running) 0/4 \(0%\) failed=0`, lines[0])
	require.Contains(t, lines[len(lines)-1], id+" completed 4/4 (100%) failed=0")
	require.Equal(t, 1, tb.requested("GET "+httpapi.Prefix+"/jobs/"+id+"/stream$"), "asked for the stream once")

	r = tb.cli(t, "wait", "batch404")
	require.Equal(t, exitNotFound, r.code, "an unknown job is still NOT_FOUND: %s", r.stderr)
}

// streamTap wraps the API and keeps what its progress streams write, so
// that a test can wait for a message to have been sent.
type streamTap struct {
	mu      sync.Mutex
	written strings.Builder
	wrote   notifier
}

func (s *streamTap) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			w = &tapWriter{ResponseWriter: w, tap: s}
		}
		next.ServeHTTP(w, r)
	})
}

// waitSent waits until a stream has written text.
func (s *streamTap) waitSent(t *testing.T, text string) {
	t.Helper()
	s.wrote.wait(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return strings.Contains(s.written.String(), text)
	}, "a stream to send "+text)
}

type tapWriter struct {
	http.ResponseWriter
	tap *streamTap
}

func (w *tapWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.tap.mu.Lock()
	w.tap.written.Write(p[:n])
	w.tap.mu.Unlock()
	w.tap.wrote.notify()
	return n, err
}

func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestWait_ReadsTheProgressStream(t *testing.T) {
	tap := &streamTap{}
	tb := setup(t, &serverOptions{wrap: tap.wrap})
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 3}}], "options": {"parallel": false}}}`)
	tb.waitRunning(t, id)
	done := tb.cliAsync(t, "wait", id)
	// One item at a time, once the stream is open; the next once the
	// stream has sent the progress of the last (it sends at most 4 a
	// second).
	for n := range 3 {
		tap.waitSent(t, fmt.Sprintf(`"completed":%d,`, n))
		tb.letOneThrough(t)
	}
	r := <-done
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, batch.StateCompleted, decode[batch.Job](t, r.stdout).Status)
	require.Equal(t, 1, tb.requested("GET "+httpapi.Prefix+"/jobs/"+id+"/stream$"), "one stream, never reopened")
	require.Zero(t, tb.requested("GET "+httpapi.Prefix+"/jobs/"+id+"$"), "no polling")
	require.Contains(t, r.stderr, id+" running 0/3 (0%) failed=0")
	require.Regexp(t, id+` running [12]/3 \(\d+%\) failed=0`, r.stderr, "progress while the job runs")
	require.Contains(t, r.stderr, id+" job_completed")
	require.Contains(t, r.stderr, id+" completed 3/3 (100%) failed=0")
}

package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// sseMessage is one Server-Sent Events message.
type sseMessage struct {
	id    uint64
	event string
	data  map[string]any
}

// sseReader reads messages from a text/event-stream body.
type sseReader struct {
	t  testing.TB
	sc *bufio.Scanner
}

// next returns the next message, or false at the end of the stream.
func (s *sseReader) next() (sseMessage, bool) {
	s.t.Helper()
	var m sseMessage
	seen := false
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if seen {
				return m, true
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment
		}
		field, value, _ := strings.Cut(line, ": ")
		seen = true
		switch field {
		case "id":
			n, err := strconv.ParseUint(value, 10, 64)
			require.NoError(s.t, err)
			m.id = n
		case "event":
			m.event = value
		case "data":
			require.NoError(s.t, json.Unmarshal([]byte(value), &m.data), "data is one line of JSON: %s", value)
		default:
			s.t.Fatalf("unexpected field %q", line)
		}
	}
	require.NoError(s.t, s.sc.Err())
	return m, false
}

// openStream opens GET /jobs/{id}/stream and checks its headers.
func (tb *testBundle) openStream(t *testing.T, id string, headers ...string) (*http.Response, *sseReader) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tb.srv.URL+httpapi.Prefix+"/jobs/"+id+"/stream", nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode == http.StatusOK {
		require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	}
	return res, &sseReader{t: t, sc: bufio.NewScanner(res.Body)}
}

// TestStream reads a real stream of a running job that is paused, resumed
// and completes: ids increase, the first message is the current state,
// lifecycle events come in order, progress counts never go back, the last
// progress is the final state, and "end" closes the stream.
func TestStream(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	gate := make(chan struct{})
	require.NoError(t, tb.e.RegisterOperation("gated", pausableOp(gate, 50)))
	id := tb.submit(t, `{"batch": {"type": "demo", "operations": [{"type": "gated"}], "options": {"max_concurrent": 1}}}`)

	_, sse := tb.openStream(t, id)
	var msgs []sseMessage
	next := func() sseMessage {
		t.Helper()
		m, ok := sse.next()
		require.True(t, ok, "the stream ended early after %v", msgs)
		if len(msgs) > 0 {
			require.Greater(t, m.id, msgs[len(msgs)-1].id, "ids increase")
		}
		msgs = append(msgs, m)
		return m
	}
	first := next()
	require.Equal(t, "progress", first.event)
	require.Equal(t, id, first.data["job_id"])
	require.Equal(t, "demo", first.data["type"])
	completed := func(m sseMessage) float64 {
		return m.data["progress"].(map[string]any)["completed"].(float64)
	}
	// Let two items through; progress shows them.
	for want := 1.0; want <= 2; want++ {
		gate <- struct{}{}
		for m := next(); m.event != "progress" || completed(m) < want; m = next() {
		}
	}
	// The item in flight finishes once the pause takes hold.
	pres := tb.do(t, "POST", "/jobs/"+id+"/pause", "")
	require.Equal(t, http.StatusOK, pres.status, string(pres.body))
	for m := next(); m.event != "job_paused"; m = next() {
	}
	ev := msgs[len(msgs)-1]
	require.Equal(t, "job_paused", ev.data["type"])
	require.Equal(t, id, ev.data["job_id"])
	require.Equal(t, "paused", ev.data["job"].(map[string]any)["status"])
	require.Contains(t, ev.data, "at")
	require.Contains(t, ev.data, "principal")

	close(gate)
	tb.must(t, http.StatusOK, "POST", "/jobs/"+id+"/resume", "")
	for m := next(); m.event != "end"; m = next() {
	}
	_, more := sse.next()
	require.False(t, more, "the server closes the stream after end")

	var events []string
	var lastProgress sseMessage
	for i, m := range msgs {
		if m.event == "progress" {
			if lastProgress.data != nil && lastProgress.data["status"] == m.data["status"] {
				require.GreaterOrEqual(t, completed(m), completed(lastProgress), "message %d", i)
			}
			lastProgress = m
			continue
		}
		events = append(events, m.event)
	}
	require.Equal(t, "completed", lastProgress.data["status"], "the progress messages end in the final state")
	require.Equal(t, 50.0, completed(lastProgress))
	end := msgs[len(msgs)-1]
	require.Equal(t, "completed", end.data["status"])
	require.Equal(t, 50.0, completed(end))
	// Lifecycle events in order (job_started may precede the stream).
	if events[0] == "job_started" {
		events = events[1:]
	}
	require.Equal(t, []string{"job_paused", "job_resumed", "job_completed", "end"}, events)
}

func TestStream_FinishedJob(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	id := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=30s", `{"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "update": {"x": 1}}]}}`).data["job_id"].(string)

	_, sse := tb.openStream(t, id, "Last-Event-ID", "41")
	var got []sseMessage
	for m, ok := sse.next(); ok; m, ok = sse.next() {
		got = append(got, m)
	}
	require.Len(t, got, 2)
	require.Equal(t, "progress", got[0].event)
	require.Equal(t, uint64(42), got[0].id, "ids go on from Last-Event-ID")
	require.Equal(t, "completed", got[0].data["status"])
	require.Equal(t, "end", got[1].event)
	require.Equal(t, uint64(43), got[1].id)
	require.Equal(t, "completed", got[1].data["status"])

	// HEAD answers at once, without a stream.
	head := tb.do(t, "HEAD", "/jobs/"+id+"/stream", "")
	require.Equal(t, http.StatusOK, head.status)
	require.Equal(t, "text/event-stream", head.header.Get("Content-Type"))
}

func TestStream_OwnerAndRateLimit(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{
		Authenticator: httpapi.APIKeys("alice-key", "bob-key"),
		RateLimits:    httpapi.RateLimits{Streams: httpapi.Limit{Requests: 2, Per: time.Hour}, StatusChecks: httpapi.Limit{Requests: 1, Per: time.Hour}},
	}, nil)
	res := tb.must(t, http.StatusCreated, "POST", "/jobs?wait=30s", `{"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "update": {"x": 1}}]}}`,
		bearer("alice-key")...)
	id := res.data["job_id"].(string)

	// Another principal cannot learn that the job exists.
	bob, _ := tb.openStream(t, id, bearer("bob-key")...)
	require.Equal(t, http.StatusNotFound, bob.StatusCode)
	body, _ := io.ReadAll(bob.Body)
	require.Contains(t, string(body), "NOT_FOUND")
	none, _ := tb.openStream(t, id)
	require.Equal(t, http.StatusUnauthorized, none.StatusCode)

	// The stream class has its own budget, apart from status reads (1/hour
	// here), and a whole stream counts once.
	for range 2 {
		ok, sse := tb.openStream(t, id, bearer("alice-key")...)
		require.Equal(t, http.StatusOK, ok.StatusCode)
		require.Equal(t, "2", ok.Header.Get("X-RateLimit-Limit"))
		n := 0
		for _, more := sse.next(); more; _, more = sse.next() {
			n++
		}
		require.Equal(t, 2, n)
	}
	limited, _ := tb.openStream(t, id, bearer("alice-key")...)
	require.Equal(t, http.StatusTooManyRequests, limited.StatusCode)
	require.NotEmpty(t, limited.Header.Get("Retry-After"))
}

// TestStream_CloseStreams: CloseStreams (registered with the server's
// shutdown) ends an open stream without "end", so the client reconnects.
func TestStream_CloseStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	e := newEngine(t, &batch.Options{Operations: map[string]batch.Operation{"wait": gatedOp(release, 1)}})
	h := httpapi.New(e, &httpapi.Options{DisableRateLimits: true})
	tb := &testBundle{e: e, srv: serve(t, h)}
	t.Cleanup(func() { close(release) }) // first: the item ends before the server and the engine close
	job, err := e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "wait"}}}, nil)
	require.NoError(t, err)
	_, sse := tb.openStream(t, job.ID)
	first, ok := sse.next()
	require.True(t, ok)
	require.Equal(t, "progress", first.event)
	h.CloseStreams()
	for m, ok := sse.next(); ok; m, ok = sse.next() {
		require.NotEqual(t, "end", m.event, "the job has not ended")
	}
	// A stream opened after CloseStreams ends at once too.
	_, again := tb.openStream(t, job.ID)
	for m, ok := again.next(); ok; m, ok = again.next() {
		require.Equal(t, "progress", m.event)
	}
}

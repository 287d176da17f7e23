package otelbatch_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
	"github.com/batchworks/batch/otelbatch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testBundle is an engine observed by otelbatch on the SDK, with a manual
// metric reader and an in-memory span recorder.
type testBundle struct {
	e      *batch.Engine
	obs    *otelbatch.Observer
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	path   string
}

func setup(t *testing.T, path string, itemSpans bool, ops map[string]batch.Operation) *testBundle {
	t.Helper()
	tb := &testBundle{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder(), path: path}
	if tb.path == "" {
		tb.path = filepath.Join(t.TempDir(), "batch.db")
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tb.reader))
	tb.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tb.spans))
	var err error
	tb.obs, err = otelbatch.New(&otelbatch.Options{MeterProvider: mp, TracerProvider: tb.tp, ItemSpans: itemSpans})
	require.NoError(t, err)
	tb.e, err = batch.Open(tb.path, &batch.Options{Observer: tb.obs, Operations: ops})
	require.NoError(t, err)
	t.Cleanup(func() {
		tb.close(t)
		require.NoError(t, mp.Shutdown(context.Background()))
		require.NoError(t, tb.tp.Shutdown(context.Background()))
	})
	return tb
}

// close closes the engine (at once: items in flight are cancelled) and the
// observer.
func (tb *testBundle) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.NoError(t, tb.e.Close(ctx))
	require.NoError(t, tb.obs.Close())
}

// collect reads every metric once.
func (tb *testBundle) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, tb.reader.Collect(t.Context(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, otelbatch.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum returns the value of a counter for exactly the attributes kv.
func sum(t *testing.T, ms map[string]metricdata.Aggregation, name string, kv ...attribute.KeyValue) int64 {
	t.Helper()
	want := attribute.NewSet(kv...)
	s, ok := ms[name].(metricdata.Sum[int64])
	require.True(t, ok, "%s is not an int64 counter: %T", name, ms[name])
	for _, dp := range s.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// total adds a counter's points.
func total(t *testing.T, ms map[string]metricdata.Aggregation, name string) int64 {
	t.Helper()
	s, ok := ms[name].(metricdata.Sum[int64])
	require.True(t, ok, "%s is not an int64 counter: %T", name, ms[name])
	var n int64
	for _, dp := range s.DataPoints {
		n += dp.Value
	}
	return n
}

// histCount returns how many values a float histogram recorded, over all
// attributes.
func histCount(t *testing.T, ms map[string]metricdata.Aggregation, name string) uint64 {
	t.Helper()
	var n uint64
	switch h := ms[name].(type) {
	case metricdata.Histogram[float64]:
		for _, dp := range h.DataPoints {
			n += dp.Count
		}
	case metricdata.Histogram[int64]:
		for _, dp := range h.DataPoints {
			n += dp.Count
		}
	default:
		t.Fatalf("%s is not a histogram: %T", name, ms[name])
	}
	return n
}

// gauge returns the batch.jobs gauge by status.
func gauge(t *testing.T, ms map[string]metricdata.Aggregation) map[string]int64 {
	t.Helper()
	g, ok := ms["batch.jobs"].(metricdata.Gauge[int64])
	require.True(t, ok, "batch.jobs is not a gauge: %T", ms["batch.jobs"])
	out := map[string]int64{}
	for _, dp := range g.DataPoints {
		v, _ := dp.Attributes.Value("status")
		out[v.AsString()] = dp.Value
	}
	return out
}

// flakyOp has six items: 0 and 5 succeed, 1 fails once then succeeds, 2
// always fails with RESOURCE_ERROR, 3 fails validation (never retried) and
// 4 panics on every attempt. Item 0 starts a span of its own from its
// context.
func flakyOp(tp trace.TracerProvider, handlerSpan *atomic.Value) batch.Operation {
	var tries [6]atomic.Int32
	return batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{
			Count: 6,
			Item:  func(i int64) (batch.Item, error) { return batch.Item{}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				n := tries[it.Index].Add(1)
				switch it.Index {
				case 0:
					_, span := tp.Tracer("handler").Start(ctx, "handler work")
					handlerSpan.Store(span.SpanContext())
					span.End()
				case 1:
					if n == 1 {
						return errors.New("transient")
					}
				case 2:
					return &batch.Error{Code: batch.CodeResource, Message: "upstream down"}
				case 3:
					return &batch.Error{Code: batch.CodeValidation, Message: "bad record"}
				case 4:
					panic("handler bug")
				}
				return nil
			},
		}, nil
	})
}

// TestObserver_MetricsAndSpans runs a job with retries, failures and a
// panic under a parent span and checks the exact counts the SDK recorded
// and the spans.
func TestObserver_MetricsAndSpans(t *testing.T) {
	t.Parallel()
	var handlerSpan atomic.Value
	tb := setup(t, "", true, nil)
	require.NoError(t, tb.e.RegisterOperation("flaky", flakyOp(tb.tp, &handlerSpan)))

	ctx, parent := tb.tp.Tracer("test").Start(t.Context(), "request")
	job, err := tb.e.Submit(ctx, &batch.Batch{Type: "nightly", Operations: []batch.OperationSpec{{Type: "flaky"}},
		Options: batch.BatchOptions{MaxConcurrent: 2, Retry: batch.RetryOptions{Attempts: 3, Backoff: batch.BackoffImmediate}}}, nil)
	require.NoError(t, err)
	parent.End()
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	job, err = tb.e.Wait(wctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(3), job.Progress.Failed)

	ms := tb.collect(t)
	op := attribute.String("operation", "flaky")
	out := func(s string) attribute.KeyValue { return attribute.String("outcome", s) }
	et := func(s string) attribute.KeyValue { return attribute.String("error.type", s) }
	require.Equal(t, int64(3), sum(t, ms, "batch.items.processed", op, out("succeeded")))
	require.Equal(t, int64(3), sum(t, ms, "batch.items.processed", op, out("retried"), et("SYSTEM_ERROR")), "item 1 once, item 4 twice")
	require.Equal(t, int64(2), sum(t, ms, "batch.items.processed", op, out("retried"), et("RESOURCE_ERROR")))
	require.Equal(t, int64(1), sum(t, ms, "batch.items.processed", op, out("failed"), et("RESOURCE_ERROR")))
	require.Equal(t, int64(1), sum(t, ms, "batch.items.processed", op, out("failed"), et("VALIDATION_ERROR")))
	require.Equal(t, int64(1), sum(t, ms, "batch.items.processed", op, out("failed"), et("SYSTEM_ERROR")))
	require.Equal(t, int64(11), total(t, ms, "batch.items.processed"))
	require.Equal(t, int64(5), sum(t, ms, "batch.item.retries", op))
	require.Equal(t, int64(3), sum(t, ms, "batch.item.panics", op))
	require.Equal(t, uint64(11), histCount(t, ms, "batch.item.duration"))

	typ := attribute.String("type", "nightly")
	require.Equal(t, int64(1), sum(t, ms, "batch.jobs.submitted", typ))
	require.Equal(t, int64(1), sum(t, ms, "batch.jobs.finished", typ, attribute.String("status", "completed")))
	require.Equal(t, int64(1), total(t, ms, "batch.jobs.finished"))
	require.Equal(t, uint64(1), histCount(t, ms, "batch.job.duration"))
	require.Equal(t, uint64(1), histCount(t, ms, "batch.job.queue_wait"))
	require.Equal(t, map[string]int64{"queued": 0, "running": 0, "paused": 0}, gauge(t, ms))
	commits := histCount(t, ms, "batch.commit.duration")
	require.Positive(t, commits)
	require.Equal(t, commits, histCount(t, ms, "batch.commit.size"))
	for name := range ms {
		require.NotContains(t, name, job.ID)
	}

	// Spans: the job's under the request, the items' and the handler's
	// under the job's.
	var jobSpan sdktrace.ReadOnlySpan
	items := map[string]int{}
	for _, s := range tb.spans.Ended() {
		switch s.Name() {
		case "batch.job nightly":
			require.Nil(t, jobSpan, "one span per job")
			jobSpan = s
		case "batch.item flaky":
			items[attrOf(s, "batch.item.outcome")]++
		}
	}
	require.NotNil(t, jobSpan)
	require.Equal(t, parent.SpanContext().SpanID(), jobSpan.Parent().SpanID())
	require.Equal(t, parent.SpanContext().TraceID(), jobSpan.SpanContext().TraceID())
	require.Equal(t, job.ID, attrOf(jobSpan, "batch.job.id"))
	require.Equal(t, "3", attrOf(jobSpan, "batch.job.items.failed"))
	require.Equal(t, []string{"batch.job.queued", "batch.job.running", "batch.job.completed"}, eventNames(jobSpan))
	require.Equal(t, map[string]int{"succeeded": 3, "retried": 5, "failed": 3}, items)
	for _, s := range tb.spans.Ended() {
		if s.Name() == "batch.item flaky" {
			require.Equal(t, jobSpan.SpanContext().SpanID(), s.Parent().SpanID())
			if attrOf(s, "batch.item.outcome") != "succeeded" {
				require.Equal(t, codes.Error, s.Status().Code)
			}
		}
	}
	hs := handlerSpan.Load().(trace.SpanContext)
	require.Equal(t, jobSpan.SpanContext().TraceID(), hs.TraceID(), "work runs under the job's trace")
	var handler sdktrace.ReadOnlySpan
	for _, s := range tb.spans.Ended() {
		if s.SpanContext().SpanID() == hs.SpanID() {
			handler = s
		}
	}
	require.NotNil(t, handler)
	require.Equal(t, jobSpan.SpanContext().SpanID(), handler.Parent().SpanID())
}

func attrOf(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func eventNames(s sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, ev := range s.Events() {
		names = append(names, ev.Name)
	}
	return names
}

// blockingOp has three items that run until their context ends, or succeed
// at once when release is closed. Each records the span context it ran
// under.
func blockingOp(release chan struct{}, ran chan<- trace.SpanContext) batch.Operation {
	return batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{
			Count: 3,
			Item:  func(i int64) (batch.Item, error) { return batch.Item{}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				select {
				case ran <- trace.SpanContextFromContext(ctx):
				default:
				}
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		}, nil
	})
}

// TestObserver_SpanAcrossPauseAndRestart: a paused and resumed job keeps
// its one span; after a restart its work goes on under a new span with the
// same parent, linked to the first.
func TestObserver_SpanAcrossPauseAndRestart(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ran := make(chan trace.SpanContext, 10)
	first := setup(t, "", false, map[string]batch.Operation{"block": blockingOp(release, ran)})
	ctx, parent := first.tp.Tracer("test").Start(t.Context(), "request")
	job, err := first.e.Submit(ctx, &batch.Batch{Type: "sync", Operations: []batch.OperationSpec{{Type: "block"}},
		Options: batch.BatchOptions{MaxConcurrent: 2}}, nil)
	require.NoError(t, err)
	parent.End()
	<-ran
	<-ran
	// Pause takes effect when it is called; with its context already over
	// it returns at once instead of waiting for the two items in flight,
	// and only then are they let go: the third cannot start.
	over, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = first.e.Pause(over, job.ID)
	require.ErrorIs(t, err, context.Canceled)
	close(release)
	release2 := make(chan struct{})
	ran2 := make(chan trace.SpanContext, 10)
	require.NoError(t, first.e.RegisterOperation("block", blockingOp(release2, ran2)))
	// The job can be resumed once its two items finished and it paused.
	var again *batch.Job
	require.Eventually(t, func() bool {
		again, err = first.e.Resume(t.Context(), job.ID)
		return err == nil
	}, 10*time.Second, time.Millisecond, "paused once the items in flight finished")
	require.Equal(t, int64(2), again.Progress.Completed)
	<-ran2 // the third item runs, and runs on
	// The span is still open: nothing ended yet but the request.
	for _, s := range first.spans.Ended() {
		require.Equal(t, "request", s.Name())
	}
	// Restart: the engine closes with the job running.
	first.close(t)
	ended := first.spans.Ended()
	require.Len(t, ended, 2, "the request and the interrupted job span")
	jobSpan := ended[1]
	require.Equal(t, "batch.job sync", jobSpan.Name())
	require.Equal(t, parent.SpanContext().SpanID(), jobSpan.Parent().SpanID())
	require.Equal(t, "true", attrOf(jobSpan, "batch.job.interrupted"))
	require.Equal(t, []string{"batch.job.queued", "batch.job.running", "batch.job.paused", "batch.job.queued", "batch.job.running"}, eventNames(jobSpan),
		"one span across the pause")

	release3 := make(chan struct{})
	close(release3)
	ran3 := make(chan trace.SpanContext, 10)
	second := setup(t, first.path, true, map[string]batch.Operation{"block": blockingOp(release3, ran3)})
	wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done, err := second.e.Wait(wctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, done.Status)
	var resumed sdktrace.ReadOnlySpan
	for _, s := range second.spans.Ended() {
		if s.Name() == "batch.job sync" {
			require.Nil(t, resumed)
			resumed = s
		}
	}
	require.NotNil(t, resumed)
	require.Equal(t, "true", attrOf(resumed, "batch.job.resumed"))
	require.Equal(t, job.ID, attrOf(resumed, "batch.job.id"))
	require.Equal(t, parent.SpanContext().TraceID(), resumed.SpanContext().TraceID())
	require.Equal(t, parent.SpanContext().SpanID(), resumed.Parent().SpanID(), "the submitter's span stays the parent")
	require.Len(t, resumed.Links(), 1)
	require.Equal(t, jobSpan.SpanContext().SpanID(), resumed.Links()[0].SpanContext.SpanID())
	require.Equal(t, []string{"batch.job.running", "batch.job.completed"}, eventNames(resumed))
	sc := <-ran3
	require.Equal(t, resumed.SpanContext().SpanID(), sc.SpanID(), "items run under the resumed span")
	items := 0
	for _, s := range second.spans.Ended() {
		if s.Name() == "batch.item block" {
			items++
			require.Equal(t, resumed.SpanContext().SpanID(), s.Parent().SpanID(), "item spans hang under the resumed span")
		}
	}
	require.Equal(t, 1, items, "the one item left")
}

// TestObserver_HTTPTraceparent: a job submitted over HTTP through
// Observer.Handler has the request's traceparent as its span's parent.
func TestObserver_HTTPTraceparent(t *testing.T) {
	t.Parallel()
	tb := setup(t, "", false, nil)
	srv := httptest.NewServer(tb.obs.Handler(httpapi.New(tb.e, &httpapi.Options{DisableRateLimits: true})))
	defer srv.Close()
	req, err := http.NewRequest("POST", srv.URL+httpapi.Prefix+"/jobs?wait=10s",
		strings.NewReader(`{"batch": {"type": "web", "operations": [{"type": "analyze", "resource": "fields", "aggregates": {"n": {"fn": "count"}}}]}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode, string(body))
	var jobSpan sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range tb.spans.Ended() {
			if s.Name() == "batch.job web" {
				jobSpan = s
			}
		}
		return jobSpan != nil
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", jobSpan.SpanContext().TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", jobSpan.Parent().SpanID().String())
	require.True(t, jobSpan.Parent().IsRemote())
}

// TestObserver_AbandonedSubmission: the span Inject starts for a
// submission that never became a job (here a replay of an idempotency key)
// is ended by a later submission once it is old enough.
func TestObserver_AbandonedSubmission(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	obs, err := otelbatch.New(&otelbatch.Options{TracerProvider: tp, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	require.NoError(t, err)
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Observer: obs})
	require.NoError(t, err)
	defer e.Close(context.Background())
	b := &batch.Batch{Type: "once", Operations: []batch.OperationSpec{{Type: "analyze", Resource: "fields", Aggregates: map[string]batch.Aggregate{"n": {Fn: "count"}}}}}
	first, err := e.Submit(t.Context(), b, &batch.SubmitOptions{IdempotencyKey: "k"})
	require.NoError(t, err)
	var replayed bool
	again, err := e.Submit(t.Context(), b, &batch.SubmitOptions{IdempotencyKey: "k", Replayed: &replayed})
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, first.ID, again.ID)
	wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = e.Wait(wctx, first.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(spans.Ended()) == 1 }, 10*time.Second, time.Millisecond)

	clock.Add(int64(2 * time.Minute))
	_, err = e.Submit(t.Context(), &batch.Batch{Type: "later", Operations: b.Operations}, nil)
	require.NoError(t, err)
	var abandoned int
	for _, s := range spans.Ended() {
		if attrOf(s, "batch.job.abandoned") == "true" {
			abandoned++
			require.Empty(t, attrOf(s, "batch.job.id"))
		}
	}
	require.Equal(t, 1, abandoned, "the replay's span")
	require.NoError(t, obs.Close())
}

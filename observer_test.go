package batch_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

type traceKey struct{}

type otherKey struct{}

// tracingRecorder is a recorder that carries a trace id through the job
// record.
type tracingRecorder struct {
	recorder
}

func (o *tracingRecorder) Inject(ctx context.Context) map[string]string {
	id, _ := ctx.Value(traceKey{}).(string)
	return map[string]string{"trace": id}
}

func (o *tracingRecorder) Extract(ctx context.Context, carrier map[string]string) context.Context {
	return context.WithValue(ctx, traceKey{}, carrier["trace"])
}

func TestObserver_SeesTransitionsAttemptsAndCommits(t *testing.T) {
	t.Parallel()
	obs := &tracingRecorder{}
	var mu sync.Mutex
	var runTraces, planTraces []string
	var leaked bool
	tries := map[string]int{}
	op := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		if env.JobID != "" {
			id, _ := ctx.Value(traceKey{}).(string)
			mu.Lock()
			planTraces = append(planTraces, id)
			mu.Unlock()
		}
		return &batch.Plan{Count: 2, Item: func(i int64) (batch.Item, error) { return batch.Item{ResourceID: []string{"a", "b"}[i]}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				id, _ := ctx.Value(traceKey{}).(string)
				mu.Lock()
				defer mu.Unlock()
				runTraces = append(runTraces, id)
				leaked = leaked || ctx.Value(otherKey{}) != nil
				tries[it.ResourceID]++
				if it.ResourceID == "a" && tries["a"] == 1 {
					return batch.NewError(batch.CodeResource, "flaky")
				}
				return nil
			}}, nil
	})
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Observer: obs, Operations: map[string]batch.Operation{"op": op}})
	require.NoError(t, err)
	defer e.Close(context.Background())

	ctx, cancel := context.WithCancel(context.WithValue(context.WithValue(t.Context(), traceKey{}, "trace-1"), otherKey{}, "x"))
	job, err := e.Submit(ctx, opBatch("op", 2, batch.BatchOptions{Retry: batch.RetryOptions{Attempts: 2, Backoff: batch.BackoffImmediate}}), nil)
	require.NoError(t, err)
	cancel() // the job needs nothing of the Submit context but its trace
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	job, err = e.Wait(wctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status)

	mu.Lock()
	require.Equal(t, []string{"trace-1", "trace-1", "trace-1"}, runTraces)
	require.Equal(t, []string{"trace-1"}, planTraces)
	require.False(t, leaked, "other values of the Submit context do not reach the job")
	mu.Unlock()

	got := obs.snapshot()
	var states []batch.State
	for i, j := range got.jobs {
		states = append(states, j.To)
		require.Equal(t, "trace-1", got.jobCtx[i])
		require.Equal(t, map[string]string{"trace": "trace-1"}, j.Trace)
		require.Equal(t, job.ID, j.JobID)
		require.NotNil(t, j.Job)
		require.Equal(t, j.To, j.Job.Status)
	}
	require.Equal(t, []batch.State{batch.StateQueued, batch.StateRunning, batch.StateCompleted}, states)
	require.Equal(t, batch.StateQueued, got.jobs[1].From)
	require.Positive(t, got.jobs[1].QueueWait)
	require.Positive(t, got.jobs[2].Duration)
	require.Len(t, got.items, 3)
	var retried, succeeded int
	for _, it := range got.items {
		switch it.Outcome {
		case batch.ItemRetried:
			retried++
			require.Equal(t, string(batch.CodeResource), it.ErrorType)
			require.Equal(t, 1, it.Attempt)
		case batch.ItemSucceeded:
			succeeded++
		}
	}
	require.Equal(t, 1, retried)
	require.Equal(t, 2, succeeded)
	require.True(t, slices.ContainsFunc(got.commits, func(c batch.CommitObservation) bool { return c.Size > 0 && c.Err == nil }))
}

// recorder is an Observer that keeps what it sees.
type recorder struct {
	batch.NopObserver
	mu         sync.Mutex
	jobs       []batch.JobObservation
	jobCtx     []string // the trace id in each job observation's context
	items      []batch.ItemObservation
	commits    []batch.CommitObservation
	deliveries []batch.DeliveryObservation
	fires      []batch.ScheduleFireObservation
}

// appendLocked appends o to the list *to under r.mu.
func appendLocked[T any](r *recorder, to *[]T, o T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*to = append(*to, o)
}

func (r *recorder) ObserveJob(ctx context.Context, o batch.JobObservation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, o)
	id, _ := ctx.Value(traceKey{}).(string)
	r.jobCtx = append(r.jobCtx, id)
}

func (r *recorder) ObserveItem(_ context.Context, o batch.ItemObservation) {
	appendLocked(r, &r.items, o)
}
func (r *recorder) ObserveCommit(o batch.CommitObservation)             { appendLocked(r, &r.commits, o) }
func (r *recorder) ObserveDelivery(o batch.DeliveryObservation)         { appendLocked(r, &r.deliveries, o) }
func (r *recorder) ObserveScheduleFire(o batch.ScheduleFireObservation) { appendLocked(r, &r.fires, o) }

func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{jobs: append(r.jobs[:0:0], r.jobs...), jobCtx: append(r.jobCtx[:0:0], r.jobCtx...), items: append(r.items[:0:0], r.items...),
		commits: append(r.commits[:0:0], r.commits...), deliveries: append(r.deliveries[:0:0], r.deliveries...),
		fires: append(r.fires[:0:0], r.fires...)}
}

// logRecords is a slog handler that keeps records.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// find returns the records with message msg and job_id id, as attribute
// maps.
func (h *logRecords) find(msg, id string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]any{"level": r.Level}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
		if m["job_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

// TestObserver_JobsItemsAndLogs runs a job with a retried item, a failed
// item and a panicking item, paused and resumed on the way, and checks the
// transitions and attempts the Observer sees and what the log says.
func TestObserver_JobsItemsAndLogs(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	logs := &logRecords{}
	tb := setup(t, "bolt", &batch.Options{Observer: rec, Logger: slog.New(logs)})
	open, started := gatedOp(t, tb)
	var mu sync.Mutex
	tries := map[int64]int{}
	require.NoError(t, tb.e.RegisterOperation("flaky", countingOp(func(ctx context.Context, it *batch.Item) error {
		mu.Lock()
		tries[it.Index]++
		n := tries[it.Index]
		mu.Unlock()
		switch it.Index - 2 { // after the two gated items
		case 1:
			if n == 1 {
				return &batch.Error{Code: batch.CodeResource, Message: "busy"}
			}
		case 2:
			return &batch.Error{Code: batch.CodeValidation, Message: "bad record"}
		case 3:
			var m map[string]int
			m["boom"]++ // a nil map write: a runtime panic
		}
		return nil
	})))
	b := opBatch("gated", 2, batch.BatchOptions{MaxConcurrent: 1, Retry: batch.RetryOptions{Attempts: 2, Backoff: batch.BackoffImmediate}})
	b.Type = "nightly"
	b.Operations = append(b.Operations, batch.OperationSpec{Type: "flaky", Params: map[string]any{"count": 4}})
	job, err := tb.e.Submit(batch.WithPrincipal(t.Context(), "alice"), b, nil)
	require.NoError(t, err)
	<-started
	_, err = pauseThenOpen(t, tb.e, batch.WithPrincipal(t.Context(), "bob"), job.ID, open) // Pause waits for the item in flight
	require.NoError(t, err)
	_, err = tb.e.Resume(batch.WithPrincipal(t.Context(), "bob"), job.ID)
	require.NoError(t, err)
	done := tb.wait(t, job.ID)
	require.Equal(t, batch.StateCompleted, done.Status)
	require.Equal(t, int64(2), done.Progress.Failed)

	got := rec.snapshot()
	var path []string
	for _, o := range got.jobs {
		require.Equal(t, job.ID, o.JobID)
		require.Equal(t, "nightly", o.Type)
		require.NotNil(t, o.Job)
		require.Equal(t, o.To, o.Job.Status)
		path = append(path, string(o.From)+">"+string(o.To))
	}
	require.Equal(t, []string{">queued", "queued>running", "running>paused", "paused>queued", "queued>running", "running>completed"}, path)
	require.Equal(t, "alice", got.jobs[0].Principal)
	require.Equal(t, "bob", got.jobs[2].Principal)
	require.Positive(t, got.jobs[1].QueueWait)
	last := got.jobs[len(got.jobs)-1]
	require.Positive(t, last.Duration)

	type attempt struct {
		index   int64
		attempt int
		outcome batch.ItemOutcome
		code    string
		panic   bool
	}
	var flaky []attempt
	for _, o := range got.items {
		require.Equal(t, job.ID, o.JobID)
		if o.Operation == "flaky" {
			require.Equal(t, 1, o.OperationIndex)
			flaky = append(flaky, attempt{o.ItemIndex - 2, o.Attempt, o.Outcome, o.ErrorType, o.Panicked})
		}
	}
	require.ElementsMatch(t, []attempt{
		{0, 1, batch.ItemSucceeded, "", false},
		{1, 1, batch.ItemRetried, "RESOURCE_ERROR", false},
		{1, 2, batch.ItemSucceeded, "", false},
		{2, 1, batch.ItemFailed, "VALIDATION_ERROR", false},
		{3, 1, batch.ItemRetried, "SYSTEM_ERROR", true},
		{3, 2, batch.ItemFailed, "SYSTEM_ERROR", true},
	}, flaky)
	require.NotEmpty(t, got.commits)
	var writes int
	for _, c := range got.commits {
		require.NoError(t, c.Err)
		writes += c.Size
	}
	require.GreaterOrEqual(t, writes, 6, "every item outcome is in a commit")

	// Logs: each transition at Info with the job's facts.
	for _, msg := range []string{"job submitted", "job started", "job paused", "job resumed", "job completed"} {
		recs := logs.find(msg, job.ID)
		require.NotEmpty(t, recs, msg)
		r := recs[0]
		require.Equal(t, slog.LevelInfo, r["level"], msg)
		require.Equal(t, "nightly", r["type"], msg)
		require.Contains(t, r, "principal", msg)
		require.Contains(t, r, "completed", msg)
		require.Contains(t, r, "failed", msg)
		require.Contains(t, r, "total", msg)
	}
	require.Equal(t, "alice", logs.find("job submitted", job.ID)[0]["principal"])
	require.Equal(t, "bob", logs.find("job paused", job.ID)[0]["principal"])
	require.Equal(t, int64(2), logs.find("job completed", job.ID)[0]["failed"])
	// Item failures at Warn with their code; panics at Error with the stack.
	warns := logs.find("item failed", job.ID)
	require.Len(t, warns, 2)
	for _, w := range warns {
		require.Equal(t, slog.LevelWarn, w["level"])
		require.Contains(t, []any{"RESOURCE_ERROR", "VALIDATION_ERROR"}, w["code"])
	}
	panics := logs.find("item panicked", job.ID)
	require.Len(t, panics, 2)
	require.Equal(t, slog.LevelError, panics[0]["level"])
	require.Contains(t, panics[0]["stack"], "observer_test.go", "the whole stack, down to the handler")
	require.Contains(t, panics[0]["stack"], "runtime/debug.Stack")

	// The owner reads the panic and a trimmed stack in the item's error.
	page, err := tb.e.JobErrors(t.Context(), job.ID, nil)
	require.NoError(t, err)
	var msg string
	for _, e := range page.Items {
		if e.Error.Code == batch.CodeSystem {
			msg = e.Error.Message
		}
	}
	require.True(t, strings.HasPrefix(msg, "panic: assignment to entry in nil map\n"), msg)
	require.Contains(t, msg, "observer_test.go:", "the handler's frame")
	require.NotContains(t, msg, "runtime/debug.Stack", "trimmed to the panicking code")
	require.NotContains(t, msg, "+0x")
	require.LessOrEqual(t, len(msg), 2200)
}

// TestObserver_DeliveriesAndScheduleFires sees webhook delivery attempts
// and schedule fires.
func TestObserver_DeliveriesAndScheduleFires(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	clock := &fakeClock{now: utc("2026-01-01T00:00:30Z")}
	tb := setup(t, "memory", &batch.Options{Observer: rec, AllowPrivateWebhooks: true, WebhookRetryDelay: 10 * time.Millisecond,
		WebhookAttempts: 2, Now: clock.Now, SchedulerPoll: 2 * time.Millisecond})
	require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "f1"}))
	rc := newReceiver(t)
	rc.status.Store(500)
	hook, err := tb.e.CreateWebhook(t.Context(), &batch.Webhook{URL: rc.srv.URL, Events: []batch.EventType{batch.EventJobCreated}})
	require.NoError(t, err)
	s, err := tb.e.CreateSchedule(t.Context(), &batch.Schedule{Name: "minutely", Batch: scheduledBatch(), Timing: batch.Timing{Cron: "* * * * *"}})
	require.NoError(t, err)
	clock.set(utc("2026-01-01T00:01:01Z"))
	require.Eventually(t, func() bool { return len(rec.snapshot().deliveries) == 1 }, 10*time.Second, time.Millisecond)
	clock.set(utc("2026-01-01T00:01:30Z")) // the retry falls due on the engine's clock
	// The fire is observed once the schedule's record is stored, which
	// may come after the job's deliveries.
	require.Eventually(t, func() bool { got := rec.snapshot(); return len(got.deliveries) == 2 && len(got.fires) > 0 }, 10*time.Second, time.Millisecond)
	got := rec.snapshot()
	require.Len(t, got.fires, 1)
	require.Equal(t, s.ID, got.fires[0].ScheduleID)
	require.Equal(t, "submitted", got.fires[0].Outcome)
	require.Equal(t, utc("2026-01-01T00:01:00Z"), got.fires[0].Due.UTC())
	require.NotEmpty(t, got.fires[0].JobID)
	for i, d := range got.deliveries {
		require.Equal(t, hook.ID, d.WebhookID)
		require.Equal(t, "job_created", d.Event)
		require.Equal(t, i+1, d.Attempt)
		require.Equal(t, 500, d.Status)
		require.Positive(t, d.Duration)
	}
	require.Equal(t, "retry", got.deliveries[0].Outcome)
	require.Equal(t, "failed", got.deliveries[1].Outcome)
}

// TestObserver_BuiltinFailsInCommit: a built-in change that fails when the
// commit applies it (a create of an id that exists) is reported and logged
// as failed, once, not as succeeded.
func TestObserver_BuiltinFailsInCommit(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	logs := &logRecords{}
	tb := setup(t, "bolt", &batch.Options{Observer: rec, Logger: slog.New(logs)})
	require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "taken"}))
	job := tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "create", Resource: "fields",
		Records: []map[string]any{{"id": "new1"}, {"id": "taken"}}}}})
	done := tb.wait(t, job.ID)
	require.Equal(t, int64(1), done.Progress.Failed)
	require.Equal(t, int64(1), done.Progress.Completed)

	got := rec.snapshot()
	outcomes := map[batch.ItemOutcome]int{}
	for _, o := range got.items {
		outcomes[o.Outcome]++
		require.Equal(t, "create", o.Operation)
		require.Positive(t, o.Duration)
		if o.Outcome == batch.ItemFailed {
			require.Equal(t, "RESOURCE_ERROR", o.ErrorType)
			require.Equal(t, int64(1), o.ItemIndex)
		}
	}
	require.Equal(t, map[batch.ItemOutcome]int{batch.ItemSucceeded: 1, batch.ItemFailed: 1}, outcomes)
	warns := logs.find("item failed", job.ID)
	require.Len(t, warns, 1)
	require.Equal(t, "RESOURCE_ERROR", warns[0]["code"])
	require.Equal(t, batch.StateCompleted, got.jobs[len(got.jobs)-1].To)
}

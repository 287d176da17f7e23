package batch

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Observer sees what the engine does: job transitions, item attempts,
// commits, webhook deliveries and schedule fires. Set one in
// [Options.Observer]; the subpackage otelbatch turns these calls into
// OpenTelemetry metrics and spans.
//
// The engine calls an Observer synchronously on its own goroutines, so
// every method must be quick and must not block or call back into the
// engine. Embed [NopObserver] to implement only the calls you need. When
// Options.Observer is nil nothing is built or called.
type Observer interface {
	// ObserveJob is called after each job transition is durable. ctx
	// carries the job's trace context (see [TracePropagator]).
	ObserveJob(ctx context.Context, o JobObservation)
	// ObserveItem is called after each attempt of an item finishes.
	ObserveItem(ctx context.Context, o ItemObservation)
	// ObserveCommit is called after each group commit of the engine.
	ObserveCommit(o CommitObservation)
	// ObserveDelivery is called after each webhook delivery attempt.
	ObserveDelivery(o DeliveryObservation)
	// ObserveScheduleFire is called each time a schedule falls due.
	ObserveScheduleFire(o ScheduleFireObservation)
}

// TracePropagator is implemented by an [Observer] that carries a trace
// context with a job across pauses and restarts. Inject is called at
// submission with the Submit context; the carrier it returns is stored
// with the job. Extract is called whenever the engine starts work for the
// job (its run, each operation's Plan and each item's Run) and returns the
// context that work runs under.
type TracePropagator interface {
	Inject(ctx context.Context) map[string]string
	Extract(ctx context.Context, carrier map[string]string) context.Context
}

// NopObserver implements every [Observer] method as a no-op. Embed it in
// an observer that needs only some of the calls.
type NopObserver struct{}

// ObserveJob implements [Observer].
func (NopObserver) ObserveJob(context.Context, JobObservation) {}

// ObserveItem implements [Observer].
func (NopObserver) ObserveItem(context.Context, ItemObservation) {}

// ObserveCommit implements [Observer].
func (NopObserver) ObserveCommit(CommitObservation) {}

// ObserveDelivery implements [Observer].
func (NopObserver) ObserveDelivery(DeliveryObservation) {}

// ObserveScheduleFire implements [Observer].
func (NopObserver) ObserveScheduleFire(ScheduleFireObservation) {}

// JobObservation describes one job transition.
type JobObservation struct {
	JobID     string
	Type      string // the batch's type
	Principal string
	// From is the state before the transition; "" when the job was just
	// submitted.
	From State
	To   State
	At   time.Time
	// QueueWait is how long the job waited queued, on the transition to
	// running from queued.
	QueueWait time.Duration
	// Duration is how long the job ran (from its first start), on a
	// transition to a final state.
	Duration time.Duration
	// Trace is the carrier stored with the job by a [TracePropagator].
	Trace map[string]string
	// Job is the job as it stood right after the transition.
	Job *Job
}

// ItemOutcome is how one attempt of an item ended.
type ItemOutcome string

// Item outcomes.
const (
	ItemSucceeded ItemOutcome = "succeeded"
	// ItemRetried is a failed attempt that will be tried again.
	ItemRetried ItemOutcome = "retried"
	ItemFailed  ItemOutcome = "failed"
)

// ItemObservation describes one attempt of one item.
type ItemObservation struct {
	JobID          string
	OperationIndex int    // the operation's place in the batch
	Operation      string // the operation's type
	ItemIndex      int64
	Attempt        int
	Outcome        ItemOutcome
	// ErrorType is the error's code ("" on success).
	ErrorType string
	Duration  time.Duration
	// Panicked is true when the handler panicked.
	Panicked bool
}

// CommitObservation describes one group commit.
type CommitObservation struct {
	// Size is how many writes (item outcomes, transitions, submissions)
	// the transaction carried.
	Size     int
	Duration time.Duration
	Err      error
}

// DeliveryObservation describes one webhook delivery attempt.
type DeliveryObservation struct {
	WebhookID string
	Event     string
	Attempt   int
	// Outcome is "delivered", "retry" or "failed".
	Outcome  string
	Status   int // the HTTP status, 0 when none was received
	Duration time.Duration
}

// ScheduleFireObservation describes one schedule falling due.
type ScheduleFireObservation struct {
	ScheduleID string
	Due        time.Time
	// Outcome is "submitted", "skipped" (overlap or missed run) or "failed".
	Outcome string
	JobID   string
	Err     error
}

// The engine's side of observation: every job transition, item attempt
// and commit goes through these, which log and call the Observer (when
// one is set).

// traceContext returns the context that work for a job runs under: ctx
// with the job's trace when the Observer is a [TracePropagator].
func (e *Engine) traceContext(ctx context.Context, carrier map[string]string) context.Context {
	if tp, ok := e.opts.Observer.(TracePropagator); ok && carrier != nil {
		return tp.Extract(ctx, carrier)
	}
	return ctx
}

// transitionMessages are the log messages of job transitions, by new
// state.
var transitionMessages = map[State]string{
	StateQueued:    "job queued",
	StateRunning:   "job running",
	StatePaused:    "job paused",
	StateCompleted: "job completed",
	StateFailed:    "job failed",
	StateCancelled: "job cancelled",
}

// observeJob logs a durable transition of rec from state from (""
// for a submission) and reports it to the Observer. queueWait is set on
// the start from queued.
func (e *Engine) observeJob(from State, rec *jobRecord, principal string, queueWait time.Duration) {
	to := rec.Status
	msg := transitionMessages[to]
	switch {
	case from == "":
		msg = "job submitted"
	case from == StatePaused && to == StateQueued:
		msg = "job resumed"
	case from == StateQueued && to == StateRunning && rec.Progress.Completed+rec.Progress.Failed == 0:
		msg = "job started"
	}
	if e.log.Enabled(context.Background(), slog.LevelInfo) {
		attrs := []any{"job_id", rec.ID, "type", rec.Type, "principal", principal, "from", string(from), "to", string(to),
			"total", rec.Progress.TotalOperations, "completed", rec.Progress.Completed, "failed", rec.Progress.Failed}
		if rec.Error != nil {
			attrs = append(attrs, "error", rec.Error.Message)
		}
		e.log.Info(msg, attrs...)
	}
	o := e.opts.Observer
	if o == nil {
		return
	}
	obs := JobObservation{JobID: rec.ID, Type: rec.Type, Principal: principal, From: from, To: to,
		At: e.now().UTC(), QueueWait: queueWait, Trace: rec.Trace}
	if to.Final() && rec.StartedAt != nil && rec.FinishedAt != nil {
		obs.Duration = rec.FinishedAt.Sub(*rec.StartedAt)
	}
	obs.Job = e.view(rec.clone(), nil)
	o.ObserveJob(e.traceContext(context.Background(), rec.Trace), obs)
}

// observeItem logs a failed attempt of an item (Warn, with its code; a
// panic at Error with its stack) and reports the attempt to the Observer.
func (e *Engine) observeItem(ctx context.Context, it *Item, attempt int, outcome ItemOutcome, err error, d time.Duration) {
	var code Code
	panicked := false
	if err != nil {
		code, _, _ = classify(err)
		var pe *panicError
		if panicked = errors.As(err, &pe); panicked {
			e.log.Error("item panicked", "job_id", it.JobID, "operation", it.Type, "item", it.Index,
				"resource_id", it.ResourceID, "attempt", attempt, "panic", pe.value, "stack", string(pe.stack))
		} else {
			e.log.Warn("item failed", "job_id", it.JobID, "operation", it.Type, "item", it.Index,
				"resource_id", it.ResourceID, "attempt", attempt, "outcome", string(outcome), "code", string(code), "err", err.Error())
		}
	}
	if o := e.opts.Observer; o != nil {
		o.ObserveItem(ctx, ItemObservation{JobID: it.JobID, OperationIndex: it.Operation, Operation: it.Type, ItemIndex: it.Index,
			Attempt: attempt, Outcome: outcome, ErrorType: string(code), Duration: d, Panicked: panicked})
	}
}

package batch

import (
	"context"
	"errors"
	"fmt"
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

// The engine's side of observation: the log lines of transitions and item
// attempts. The runner reports to the Observer beside them.

// logTransition logs a durable job transition at Info with the job's id,
// type, principal and counts.
func (e *Engine) logTransition(o *JobObservation) {
	if !e.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	msg := "job " + string(o.To) // job queued, running, paused, completed, failed, cancelled
	switch {
	case o.From == "":
		msg = "job submitted"
	case o.From == StatePaused && o.To == StateQueued:
		msg = "job resumed"
	case o.From == StateQueued && o.To == StateRunning && o.Job != nil && o.Job.Progress.Completed+o.Job.Progress.Failed == 0:
		msg = "job started"
	}
	attrs := []any{"job_id", o.JobID, "type", o.Type, "principal", o.Principal, "from", string(o.From), "to", string(o.To)}
	if j := o.Job; j != nil {
		attrs = append(attrs, "total", j.Progress.TotalOperations, "completed", j.Progress.Completed, "failed", j.Progress.Failed)
		if j.Error != nil {
			attrs = append(attrs, "error", j.Error.Message)
		}
	}
	if o.Duration > 0 {
		attrs = append(attrs, "duration", o.Duration)
	}
	e.log.Info(msg, attrs...)
}

// logItem logs a failed attempt of an item: at Warn with its code, or, when
// its handler panicked, at Error with the whole stack.
func (e *Engine) logItem(it *Item, attempt int, outcome ItemOutcome, err error) {
	if err == nil {
		return
	}
	var pe *panicError
	if errors.As(err, &pe) {
		e.log.Error("item panicked", "job_id", it.JobID, "operation", it.Type, "item", it.Index,
			"resource_id", it.ResourceID, "attempt", attempt, "outcome", string(outcome), "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
		return
	}
	code, _, _ := classify(err)
	e.log.Warn("item failed", "job_id", it.JobID, "operation", it.Type, "item", it.Index,
		"resource_id", it.ResourceID, "attempt", attempt, "outcome", string(outcome), "code", string(code), "err", err.Error())
}

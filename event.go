package batch

import (
	"context"
	"time"
)

// EventType names a change the engine reports.
type EventType string

// Job events, as webhooks and the audit trail name them.
const (
	EventJobCreated   EventType = "job_created"
	EventJobStarted   EventType = "job_started"
	EventJobPaused    EventType = "job_paused"
	EventJobResumed   EventType = "job_resumed"
	EventJobCompleted EventType = "job_completed"
	EventJobFailed    EventType = "job_failed"
	EventJobCancelled EventType = "job_cancelled"
	EventJobDeleted   EventType = "job_deleted"

	EventTemplateCreated EventType = "template_created"
	EventTemplateUpdated EventType = "template_updated"
	EventTemplateDeleted EventType = "template_deleted"
)

// Event is one change to a job (or, for later event types, a template,
// schedule or webhook).
type Event struct {
	Type EventType `json:"type"`
	At   time.Time `json:"at"`
	// Principal is who caused it ("" for the engine itself).
	Principal string `json:"principal,omitempty"`
	JobID     string `json:"job_id,omitempty"`
	// ObjectID names the template, schedule or webhook of other events.
	ObjectID string `json:"object_id,omitempty"`
	// Job is the job as it stood right after the change, for job events.
	Job *Job `json:"-"`
}

// principalKey is the context key of the acting principal.
type principalKey struct{}

// WithPrincipal returns a context that names the principal acting through
// it; events and audit records carry it.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// PrincipalFrom returns the principal set by [WithPrincipal], or "".
func PrincipalFrom(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// Subscribe registers fn to be called with every event, in order, once the
// transaction that stored the change and its event has committed. fn is
// called on the engine's committer goroutine, before the caller that made
// the change returns: it must be quick and must not call back into the
// engine's job control. Reads from fn see the state the event reports (in
// a job_completed callback, [Engine.Job] says completed). It returns a
// function that removes the subscription.
func (e *Engine) Subscribe(fn func(Event)) (unsubscribe func()) {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	e.subSeq++
	id := e.subSeq
	e.subs[id] = fn
	return func() {
		e.subMu.Lock()
		defer e.subMu.Unlock()
		delete(e.subs, id)
	}
}

// emit reports an event to the subscribers.
func (e *Engine) emit(ev Event) {
	if ev.At.IsZero() {
		ev.At = e.now().UTC()
	}
	e.subMu.Lock()
	defer e.subMu.Unlock()
	for _, fn := range e.subs {
		fn(ev)
	}
}

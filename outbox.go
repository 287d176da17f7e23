package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// The outbox: every event is written in the same transaction as the change
// that causes it (its audit entry, a delivery per matching webhook, and the
// schedule notifications it calls for), and handed to Subscribe callbacks,
// the webhook sender and the observer only after that transaction commits.
// A crash can lose neither a change's event nor deliver the event of a
// change that did not happen.

// wtx is a write transaction of the group committer, collecting what to
// report once it commits.
type wtx struct {
	Tx
	e      *Engine
	events []Event
	obs    []jobObs
	items  []itemObs
	after  []func()
	// wake is set when deliveries or notifications were stored.
	wakeOutbox, wakeMail bool
	// wakeOthers is set when the commit made work other processes
	// sharing the store should see at once (see Notifier).
	wakeOthers bool
}

// itemObs is an item attempt whose outcome the commit decided, reported
// after commit.
type itemObs struct {
	r *jobRun
	o ItemObservation
}

// jobObs is an observation of a transition, reported after commit.
type jobObs struct {
	trace map[string]string
	o     JobObservation
}

// update runs fn in the engine's next group commit and returns once it is
// durable and its events are reported.
func (e *Engine) update(fn func(w *wtx) error) error {
	return e.committer.do(fn)
}

// eventFor records a job event for rec as it now stands.
func (w *wtx) eventFor(t EventType, principal string, rec *jobRecord) error {
	return w.event(Event{Type: t, Principal: principal, JobID: rec.ID, Job: w.e.view(rec.clone(), nil)})
}

// event writes ev to the outbox: its audit entry, its webhook deliveries
// and its notifications. Subscribers get it after commit.
func (w *wtx) event(ev Event) error {
	e := w.e
	if ev.At.IsZero() {
		ev.At = e.now().UTC()
	}
	if err := writeAudit(w.Tx, ev); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	n, err := e.writeDeliveries(w.Tx, ev)
	if err != nil {
		return fmt.Errorf("webhook deliveries: %w", err)
	}
	m, err := e.writeNotifications(w.Tx, ev)
	if err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	w.wakeOutbox = w.wakeOutbox || n > 0 || m.webhooks > 0
	w.wakeMail = w.wakeMail || m.mails > 0
	w.events = append(w.events, ev)
	return nil
}

// observe records the observation of a transition of rec from state from.
func (w *wtx) observe(r *jobRun, from State, rec *jobRecord, principal string) {
	e := w.e
	if e.obs == nil && !e.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	now := e.now().UTC()
	o := JobObservation{JobID: rec.ID, Type: rec.Type, Principal: principal, From: from, To: rec.Status, At: now, Trace: rec.Trace}
	if rec.Status == StateRunning && from == StateQueued {
		q := rec.CreatedAt
		if rec.QueuedAt != nil {
			q = *rec.QueuedAt
		}
		o.QueueWait = now.Sub(q)
	}
	if rec.Status.Final() && rec.StartedAt != nil && rec.FinishedAt != nil {
		o.Duration = rec.FinishedAt.Sub(*rec.StartedAt)
	}
	o.Job = e.view(rec.clone(), nil)
	w.obs = append(w.obs, jobObs{trace: rec.Trace, o: o})
}

// applied reports a committed transaction: in-memory state first, then
// events in order, then observations.
func (w *wtx) applied() {
	e := w.e
	for _, f := range w.after {
		f()
	}
	for _, ev := range w.events {
		e.emit(ev)
	}
	var last *jobRun
	var ctx context.Context
	for _, io := range w.items {
		if io.r != last {
			last, ctx = io.r, e.traceContext(context.Background(), io.r.snapshot())
		}
		e.obs.ObserveItem(ctx, io.o)
	}
	for _, jo := range w.obs {
		e.logTransition(&jo.o)
		if e.obs == nil {
			continue
		}
		ctx := context.Background()
		if tp, ok := e.obs.(TracePropagator); ok && len(jo.trace) > 0 {
			ctx = tp.Extract(ctx, jo.trace)
		}
		e.obs.ObserveJob(ctx, jo.o)
	}
	if w.wakeOutbox {
		signal(e.outboxWake)
	}
	if w.wakeMail {
		signal(e.mailWake)
	}
	if w.wakeOthers {
		e.notifyOthers()
	}
}

// writeAudit stores an event's audit entries: in the global log and, for
// job events, in the job's trail.
func writeAudit(tx Tx, ev Event) error {
	b, err := json.Marshal(auditEventOf(ev))
	if err != nil {
		return err
	}
	seq, err := tx.NextSequence(bucketAuditLog)
	if err != nil {
		return err
	}
	if err := tx.Put(bucketAuditLog, u64key(seq), b); err != nil {
		return err
	}
	if ev.JobID == "" {
		return nil
	}
	if seq, err = tx.NextSequence(auditBucket(ev.JobID)); err != nil {
		return err
	}
	if err := tx.Put(auditBucket(ev.JobID), u64key(seq), b); err != nil {
		return err
	}
	if ev.Type == EventJobDeleted {
		key := append(u64key(uint64(ev.At.UnixNano())), ev.JobID...)
		return tx.Put(bucketAuditDeleted, key, []byte{1})
	}
	return nil
}

// writeDeliveries stores a delivery for every webhook that wants ev and
// returns how many. Nothing is written when no webhook wants it.
func (e *Engine) writeDeliveries(tx Tx, ev Event) (int, error) {
	if !slices.Contains(WebhookEvents(), ev.Type) {
		return 0, nil
	}
	owner := ev.Principal
	if ev.Job != nil {
		owner = ev.Job.Owner
	}
	var hooks []string
	var derr error
	if err := tx.Scan(bucketWebhooks, nil, func(_, v []byte) bool {
		var w Webhook
		if derr = json.Unmarshal(v, &w); derr != nil {
			return false
		}
		if w.Owner == owner && w.wants(ev.Type) {
			hooks = append(hooks, w.ID)
		}
		return true
	}); err != nil || derr != nil {
		return 0, firstErr(err, derr)
	}
	if len(hooks) == 0 {
		return 0, nil
	}
	payload, err := payloadOf(ev)
	if err != nil {
		return 0, err
	}
	for _, id := range hooks {
		if err := e.storeDelivery(tx, id, ev, payload, "", ""); err != nil {
			return 0, err
		}
	}
	return len(hooks), nil
}

// storeDelivery stores one pending delivery of payload to webhook hookID
// (or, for a schedule notification, to url, signed with the notification
// secret of schedule hookID) and its outbox entry, due now.
func (e *Engine) storeDelivery(tx Tx, hookID string, ev Event, payload []byte, url, severity string) error {
	now := e.now().UTC()
	seq, err := tx.NextSequence(deliveriesBucket(hookID))
	if err != nil {
		return err
	}
	d := Delivery{
		ID: fmt.Sprintf("msg_%s_%d", hookID, seq), WebhookID: hookID, Event: ev.Type, JobID: ev.JobID,
		Payload: payload, Status: DeliveryPending, NextAttemptAt: &now, CreatedAt: now, URL: url, Severity: severity,
	}
	if err := putObject(tx, deliveriesBucket(hookID), seq, &d); err != nil {
		return err
	}
	return tx.Put(bucketOutbox, outboxKey(now, hookID, seq), []byte(hookID))
}

// retryLater is how long a delivery or notification whose stored state
// could not be read waits before it is tried again.
const retryLater = 5 * time.Second

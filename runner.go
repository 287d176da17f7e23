package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The runner is the one owner of a job's life: the queue in submission
// order, the running slots, every transition
//
//	queued → running ⇄ paused → completed | failed | cancelled
//
// and the failure policy. Each transition is one write through the
// engine's group committer that also appends its event to the outbox (the
// audit entry and a delivery per matching webhook), so a transition and its
// event are durable together. The engine's lock guards memory only: no
// store call is made while it is held.
//
// A job's operations run in the batch's order. Each one selects its
// records when it starts, after every outcome of the operation before it
// is durable, so [create X, update X] updates X. progress.total_operations
// counts, at submission, the items known then (the records each operation
// would select at that moment); it becomes exact for each operation as it
// selects, and percentage never passes 100.

// stopReason says why a running job stops feeding items.
type stopReason int

// In increasing strength: a stronger reason replaces a weaker one.
const (
	stopNone   stopReason = iota
	stopPause             // finish in-flight items, then paused
	stopClose             // engine closing: finish in-flight items, stay running in the store
	stopCancel            // cancel in-flight items, then cancelled
	stopFail              // cancel in-flight items, then failed
)

// errNotRunnable is returned by the start transition of a job that was
// paused, cancelled or deleted after it was queued.
var errNotRunnable = errors.New("batch: job is no longer queued")

// jobRun is a live job: queued or running in this process.
type jobRun struct {
	e   *Engine
	id  string
	seq uint64
	// itemsBucket, doneBucket and errorsBucket name the job's buckets.
	itemsBucket, doneBucket, errorsBucket string
	// pending counts outcomes handed to the committer and not yet stored.
	pending sync.WaitGroup
	// exited is closed when the runner goroutine ends; nil until it starts.
	exited chan struct{}
	// failedSeen counts items that failed in this process, stored or not.
	failedSeen atomic.Int64
	// opTypes are the operation types of the batch, once it started.
	opTypes []string
	// claimed is set while this process holds the job's lease (engines on
	// a Claimer only).
	claimed atomic.Bool
	// holding is set once this engine stored itself as the job's holder
	// (engines on a Claimer only): from then on its memory is the job's
	// latest state.
	holding atomic.Bool
	// helper marks a run that only helps with another process's shared
	// pass: it never changes the job's state.
	helper bool
	// holds are the range leases of the run's shared pass (share.go).
	holds rangeHolds
	// fenced is set when another process took the job over: this run
	// stores nothing more.
	fenced atomic.Bool
	// needs are the operation types of a stored job that was reopened or
	// resumed: it is not dispatched before they are all registered.
	// waitLogged says the wait was logged. Both are guarded by e.mu.
	needs      []string
	waitLogged bool
	// started is set when the job was stored as running already (by
	// Submit, or by the last commit of the job whose slot it took).
	started bool
	// next is the queued job this one's slot passed to in its last commit,
	// and nextStarted the record that commit started it with (nil when it
	// could not). Only the committer writes them; finish reads them after
	// the last commit.
	next        *jobRun
	nextStarted *jobRecord
	// slotPassed is set when a submission in the commit that finished this
	// job started in its slot; guarded by e.mu.
	slotPassed bool

	// curMu guards slots, each worker's current item, and opTypes.
	curMu sync.Mutex
	slots []*curSlot

	// mu guards the fields below.
	mu         sync.Mutex
	rec        *jobRecord // as last stored
	reason     stopReason
	failErr    *Error
	feedCancel context.CancelFunc
	itemCancel context.CancelFunc
	segStart   time.Time // when this run segment began, for estimates
	segDone    int64     // items finished when it began
	stopBy     string    // the principal that paused or cancelled the job
}

func newRun(e *Engine, seq uint64, rec *jobRecord) *jobRun {
	return &jobRun{e: e, id: rec.ID, seq: seq, rec: rec, itemsBucket: itemsBucket(rec.ID), doneBucket: doneBucket(rec.ID), errorsBucket: errorsBucket(rec.ID)}
}

// snapshot returns a copy of the job record.
func (r *jobRun) snapshot() *jobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.clone()
}

// setRec takes in a stored record.
func (r *jobRun) setRec(rec *jobRecord) {
	r.mu.Lock()
	r.rec = rec
	r.mu.Unlock()
}

// curSlot is the item one worker runs. Each worker writes its own slot,
// so workers never contend for it; readers look at every slot.
type curSlot struct {
	mu    sync.Mutex
	index int64
	op    int
	res   string
	start time.Time
	set   bool
}

// newSlot adds a worker's slot.
func (r *jobRun) newSlot() *curSlot {
	s := &curSlot{}
	r.curMu.Lock()
	r.slots = append(r.slots, s)
	r.curMu.Unlock()
	return s
}

// set records the item a worker just started.
func (s *curSlot) setItem(it *Item, at time.Time) {
	s.mu.Lock()
	s.index, s.op, s.res, s.start, s.set = it.Index, it.Operation, it.ResourceID, at, true
	s.mu.Unlock()
}

// current returns the item the job started most recently, or nil.
func (r *jobRun) current() *CurrentOperation {
	r.curMu.Lock()
	defer r.curMu.Unlock()
	var c *CurrentOperation
	for _, s := range r.slots {
		s.mu.Lock()
		if s.set && (c == nil || s.start.After(c.StartedAt)) {
			c = &CurrentOperation{Index: s.index, ResourceID: s.res, StartedAt: s.start}
			if s.op < len(r.opTypes) {
				c.Type = r.opTypes[s.op]
			}
		}
		s.mu.Unlock()
	}
	if c != nil {
		c.StartedAt = c.StartedAt.UTC()
	}
	return c
}

// withDelta returns the record with d applied, for the committer to store.
func (r *jobRun) withDelta(d *jobDelta) *jobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec.clone()
	d.addTo(rec)
	return rec
}

// addTo adds the delta's counts to rec.
func (d *jobDelta) addTo(rec *jobRecord) {
	rec.Progress.Completed += d.completed
	rec.Progress.Failed += d.failed
	rec.ItemNanos += d.nanos
	rec.RevertForced += d.forced
	rec.RevertSkipped += d.conflicts
	rec.Results = append(rec.Results, d.results...)
	for _, f := range d.failures {
		if len(rec.FirstErrors) < JobErrorsInline {
			rec.FirstErrors = append(rec.FirstErrors, f)
		}
	}
}

// committed takes in a stored commit and applies the failure policy.
func (r *jobRun) committed(d *jobDelta) {
	r.setRec(d.rec)
	if d.failed == 0 || d.rec.Status.Final() {
		return
	}
	p := d.rec.Progress
	if err := failurePolicy(d.rec.Options, p.Failed, p.TotalOperations, d.failures); err != nil {
		r.stop(stopFail, err)
	}
}

// failurePolicy says whether failed items fail the job: on_error abort
// fails it at the first failure, max_failure_rate once more than that
// share of the items failed. failures are the newest failed items.
func failurePolicy(opts BatchOptions, failed, total int64, failures []ItemError) *Error {
	switch {
	case failed == 0:
		return nil
	case opts.Validation.OnError == OnErrorAbort:
		return executionError("an item failed and validation.on_error is abort", failures)
	case opts.MaxFailureRate != nil && total > 0 && float64(failed)*100 > *opts.MaxFailureRate*float64(total):
		return executionError(fmt.Sprintf("%d of %d items failed, more than max_failure_rate %v%%", failed, total, *opts.MaxFailureRate), failures)
	}
	return nil
}

// executionError is the EXECUTION_ERROR a failed job carries.
func executionError(why string, failures []ItemError) *Error {
	e := &Error{Code: CodeExecutionError, Message: "Batch job execution failed: " + why}
	for _, f := range failures {
		idx, op := f.ItemIndex, f.BatchOperation
		e.Details = append(e.Details, Detail{ItemIndex: &idx, BatchOperation: &op, ResourceID: f.ResourceID, Code: string(f.Error.Code), Message: f.Error.Message})
	}
	return e
}

// fence stops a run whose job another process took over: it finishes
// nothing more and stores nothing more.
func (r *jobRun) fence() {
	if r.fenced.Swap(true) {
		return
	}
	r.e.log.Warn("job taken over by another process", "job_id", r.id)
	r.stop(stopFail, nil) // cancels its items at once
}

// stopping reports whether the run has been told to stop.
func (r *jobRun) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reason != stopNone
}

// stop asks the runner to stop for reason. A stronger reason overrides a
// weaker one; cancel and fail also cancel the items in flight.
func (r *jobRun) stop(reason stopReason, err *Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason <= r.reason {
		return
	}
	r.reason = reason
	if err != nil {
		r.failErr = err
	}
	if r.feedCancel != nil {
		r.feedCancel()
	}
	if reason >= stopCancel && r.itemCancel != nil {
		r.itemCancel()
	}
}

// finishInCommit completes the job inside the transaction that stores its
// last outcome, when nothing stops it and every item is accounted for, and
// hands its slot to the next queued job, started in the same transaction.
// The runner finishes the job itself otherwise.
func (r *jobRun) finishInCommit(w *wtx, d *jobDelta, c *committer) error {
	r.mu.Lock()
	reason := r.reason
	r.mu.Unlock()
	rec := d.rec
	p := rec.Progress
	if reason != stopNone || rec.Status != StateRunning || p.Completed+p.Failed != p.TotalOperations || !rec.allSelected() {
		return nil
	}
	if failurePolicy(rec.Options, p.Failed, p.TotalOperations, d.failures) != nil && d.failed > 0 {
		return nil
	}
	now := r.e.now().UTC()
	rec.Status, rec.FinishedAt = StateCompleted, &now
	w.observe(r, StateRunning, rec, "")
	if err := w.eventFor(EventJobCompleted, "", rec); err != nil {
		return err
	}
	if r.next == nil {
		if r.next = r.e.popQueued(); r.next != nil {
			c.handoffs = append(c.handoffs, r)
		}
	}
	r.nextStarted = nil
	if r.next == nil {
		if r.e.claimer == nil {
			c.spare = append(c.spare, r)
		}
		return nil
	}
	next := r.next
	cur, err := getJob(w.Tx, next.seq)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted meanwhile: its runner finds out
	}
	if err != nil {
		return err
	}
	if cur.Status != StateQueued {
		return nil // paused or cancelled meanwhile: its runner finds out
	}
	started := next.snapshot()
	started.Status = StateRunning
	ev := EventType("")
	if started.StartedAt == nil {
		started.StartedAt, ev = &now, EventJobStarted
	}
	if err := w.transition(nil, StateQueued, started, ev, ""); err != nil {
		return err
	}
	r.nextStarted = started
	return nil
}

// takeSpare returns whether a job created in this transaction can start in
// the slot of a job the transaction finishes, and takes that slot if so.
func (w *wtx) takeSpare() bool {
	c := w.e.committer
	n := len(c.spare)
	if n == 0 {
		return false
	}
	giver := c.spare[n-1]
	c.spare = c.spare[:n-1]
	w.after = append(w.after, func() {
		w.e.mu.Lock()
		giver.slotPassed = true
		w.e.mu.Unlock()
	})
	return true
}

// popQueued takes the next queued job for a slot being handed over, or
// returns nil. Its runner counts as launched from now on (control waits for
// it); launchHandoff starts it.
func (e *Engine) popQueued() *jobRun {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	next := e.takeReadyLocked()
	if next != nil {
		next.exited = make(chan struct{})
	}
	return next
}

// launchHandoff starts the runner of the job r handed its slot to, as
// started when the commit that started it is durable.
func (e *Engine) launchHandoff(r *jobRun, durable bool) {
	next := r.next
	if durable && r.nextStarted != nil {
		next.setRec(r.nextStarted)
		next.started = true
	}
	e.wg.Go(func() { e.runJob(next) })
}

// transition writes rec, the job after a change from state from, with its
// event (none when ev is "") and its observation. r is the live job, or
// nil for a job that is not live.
func (w *wtx) transition(r *jobRun, from State, rec *jobRecord, ev EventType, principal string) error {
	if err := putJob(w.Tx, seqOf(rec), rec); err != nil {
		return err
	}
	if r != nil {
		w.after = append(w.after, func() { r.setRec(rec) })
	}
	w.after = append(w.after, func() { w.e.wakeJob(rec.ID) })
	w.observe(r, from, rec, principal)
	if ev != "" {
		return w.eventFor(ev, principal, rec)
	}
	return nil
}

func seqOf(rec *jobRecord) uint64 {
	seq, _ := parseJobID(rec.ID)
	return seq
}

// dispatchLocked starts queued jobs while there are free slots. e.mu is held.
func (e *Engine) dispatchLocked() {
	for !e.closed && e.running < e.opts.MaxRunningJobs {
		r := e.takeReadyLocked()
		if r == nil {
			return
		}
		e.running++
		e.launchLocked(r)
	}
}

// takeReadyLocked removes and returns the first queued job that can run,
// or nil. A stored job whose operation types are not all registered (the
// program reopened the store without registering them yet) stays queued
// and waits: RegisterOperation dispatches it. e.mu is held.
func (e *Engine) takeReadyLocked() *jobRun {
	for i, r := range e.queue {
		if missing := e.missingOpLocked(r.needs); missing != "" {
			if !r.waitLogged {
				r.waitLogged = true
				e.log.Warn("job waits for its operation type to be registered", "job_id", r.id, "type", missing)
			}
			continue
		}
		e.queue = append(e.queue[:i], e.queue[i+1:]...)
		return r
	}
	return nil
}

// missingOpLocked returns the first of types that is not registered, or
// "". e.mu is held.
func (e *Engine) missingOpLocked(types []string) string {
	for _, t := range types {
		if _, ok := e.ops[t]; !ok {
			return t
		}
	}
	return ""
}

// launchLocked starts the runner of a job that holds a slot. e.mu is held.
func (e *Engine) launchLocked(r *jobRun) {
	r.exited = make(chan struct{})
	e.wg.Go(func() { e.runJob(r) })
}

// runJob runs a job until it finishes, pauses, fails or the engine closes.
func (e *Engine) runJob(r *jobRun) {
	defer close(r.exited)
	if !e.claimRun(r) {
		r.finish(errNotRunnable) // another process runs it
		return
	}
	ctx := e.traceContext(e.ctx, r.snapshot())
	feedCtx, feedCancel := context.WithCancel(ctx)
	itemCtx, itemCancel := context.WithCancel(context.WithValue(ctx, stoppingKey{}, feedCtx.Done()))
	defer feedCancel()
	defer itemCancel()
	r.mu.Lock()
	r.feedCancel, r.itemCancel = feedCancel, itemCancel
	reason := r.reason
	r.segStart = e.now()
	r.segDone = r.rec.Progress.Completed + r.rec.Progress.Failed
	r.mu.Unlock()
	if reason != stopNone {
		feedCancel()
	}

	err := r.execute(ctx, feedCtx, itemCtx)
	r.pending.Wait()
	r.finish(err)
}

// start stores the transition to running. A job paused, cancelled or
// deleted since it was queued is not started.
func (r *jobRun) start() error {
	e := r.e
	if r.started && e.claimer == nil {
		return nil
	}
	return e.committer.do(func(w *wtx) error {
		cur, err := getJob(w.Tx, r.seq)
		if err != nil {
			return err
		}
		if cur.Status != StateQueued && cur.Status != StateRunning {
			return errNotRunnable
		}
		rec := r.snapshot()
		if e.claimer != nil {
			// The stored record: another process may have counted more
			// outcomes since this one read the job.
			rec = cur
		}
		from := cur.Status
		now := e.now().UTC()
		rec.Status = StateRunning
		var ev EventType
		if rec.StartedAt == nil {
			rec.StartedAt, ev = &now, EventJobStarted
		}
		if e.claimer == nil {
			return w.transition(r, from, rec, ev, "")
		}
		// This engine holds the job from now on.
		rec.Holder = e.token
		if err := takeJob(w.Tx, r.seq, rec); err != nil {
			return err
		}
		w.after = append(w.after, func() { r.setRec(rec); r.holding.Store(true) })
		if from == StateRunning && ev == "" {
			return nil // taken over: no transition
		}
		w.observe(r, from, rec, "")
		if ev != "" {
			return w.eventFor(ev, "", rec)
		}
		return nil
	})
}

// finish stores where the job ended up, unless its last commit did, and
// only then frees its slot: until the event is out, status reads still see
// the live job, so whoever sees the final state finds its event already
// reported.
func (r *jobRun) finish(execErr error) {
	e := r.e
	if !errors.Is(execErr, errNotRunnable) {
		r.settle(execErr)
	}
	e.releaseRun(r)
	rec := r.snapshot()
	if n := rec.Progress.Completed + rec.Progress.Failed; rec.Status == StateCompleted && n > 0 && rec.StartedAt != nil && rec.FinishedAt != nil {
		per := rec.FinishedAt.Sub(*rec.StartedAt) / time.Duration(n)
		e.itemEst.Store((e.itemEst.Load()*3 + int64(per)) / 4)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.next == nil && !r.slotPassed { // else its slot went to the next job
		e.running--
	}
	delete(e.runs, r.id)
	e.dispatchLocked()
	e.notifyLocked()
	e.wakeJob(r.id)
}

// settle stores the job's final (or paused) state with its event. A job
// stopped by Close stays running in the store; a job its last commit
// completed needs nothing more.
func (r *jobRun) settle(execErr error) {
	e := r.e
	r.mu.Lock()
	reason, failErr, by := r.reason, r.failErr, r.stopBy
	rec := r.rec.clone()
	r.mu.Unlock()
	if rec.Status.Final() || reason == stopClose || r.fenced.Load() {
		return
	}
	if execErr != nil && reason != stopNone && (errors.Is(execErr, context.Canceled) || errors.Is(execErr, context.DeadlineExceeded)) {
		execErr = nil // interrupted by the stop; the stop reason decides
	}
	if execErr != nil && reason < stopCancel {
		e.errorf(r.id, "job failed: %v", execErr)
		reason = stopFail
		failErr = &Error{Code: CodeExecutionError, Message: "Batch job execution failed", Err: execErr,
			Details: []Detail{{Code: string(faultCode(execErr)), Message: execErr.Error()}}}
	}
	if reason == stopNone && !rec.done() {
		// Stopped short without a reason: leave it running in the store,
		// to resume on the next open, rather than claim it completed.
		e.errorf(r.id, "job stopped with %d of %d items accounted for; it resumes when the store is opened again",
			rec.Progress.Completed+rec.Progress.Failed, rec.Progress.TotalOperations)
		return
	}
	from := rec.Status
	now := e.now().UTC()
	var ev EventType
	switch reason {
	case stopPause:
		rec.Status, ev = StatePaused, EventJobPaused
	case stopCancel:
		rec.Status, rec.FinishedAt, ev = StateCancelled, &now, EventJobCancelled
	case stopFail:
		rec.Status, rec.FinishedAt, rec.Error, ev, by = StateFailed, &now, failErr, EventJobFailed, ""
	default:
		rec.Status, rec.FinishedAt, ev, by = StateCompleted, &now, EventJobCompleted, ""
	}
	if err := e.committer.do(func(w *wtx) error { return w.transition(r, from, rec, ev, by) }); err != nil {
		e.errorf(r.id, "storing the job's final state failed: %v", err)
	}
}

// done reports whether every operation selected and every item has an
// outcome.
func (rec *jobRecord) done() bool {
	p := rec.Progress
	return rec.allSelected() && p.Completed+p.Failed >= p.TotalOperations
}

// allSelected reports whether every operation has selected its items.
func (rec *jobRecord) allSelected() bool {
	for _, o := range rec.Ops {
		if !o.Selected {
			return false
		}
	}
	return true
}

// traceContext returns ctx carrying the job's stored trace context, when
// the observer propagates traces.
func (e *Engine) traceContext(ctx context.Context, rec *jobRecord) context.Context {
	if tp, ok := e.obs.(TracePropagator); ok && len(rec.Trace) > 0 {
		return tp.Extract(ctx, rec.Trace)
	}
	return ctx
}

// control moves a job to state to, stopping its runner with reason if it
// is running. from lists the states that allow it.
func (e *Engine) control(ctx context.Context, id string, reason stopReason, to State, from ...State) (*Job, error) {
	seq, ok := parseJobID(id)
	if !ok {
		return nil, notFound("job", id)
	}
	principal := PrincipalFrom(ctx)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	r := e.runs[id]
	if r != nil && r.exited != nil {
		e.mu.Unlock()
		r.mu.Lock()
		r.stopBy = principal
		r.mu.Unlock()
		r.stop(reason, nil)
		select {
		case <-r.exited:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		job, err := e.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if job.Status != to {
			return nil, invalidState(id, job.Status, to)
		}
		return job, nil
	}
	if r != nil {
		e.dequeueLocked(id) // queued here: it must not start meanwhile
	}
	e.mu.Unlock()
	var rec *jobRecord
	remote := false
	err := e.committer.do(func(w *wtx) error {
		cur, err := getJob(w.Tx, seq)
		if err != nil {
			return err
		}
		if !allowed(cur.Status, from) {
			return invalidState(id, cur.Status, to)
		}
		if e.claimer != nil && cur.Status == StateRunning {
			// Another process runs it: ask that one, in the store.
			remote = true
			v, err := json.Marshal(controlRequest{Reason: reason, Principal: principal})
			if err != nil {
				return err
			}
			w.wakeOthers = true // the running process applies it at once
			return w.Put(bucketControl, []byte(id), v)
		}
		rec = cur
		prev := rec.Status
		rec.Status = to
		if to.Final() {
			now := e.now().UTC()
			rec.FinishedAt = &now
		}
		ev := EventJobPaused
		if to == StateCancelled {
			ev = EventJobCancelled
		}
		return w.transition(nil, prev, rec, ev, principal)
	})
	if err != nil {
		if r != nil && !errors.Is(err, ErrNotFound) {
			e.requeue(r)
		}
		return nil, err
	}
	if remote {
		return e.remoteControl(ctx, id, to)
	}
	e.notify()
	return e.view(rec, nil), nil
}

// requeue puts a queued job back at the front of the queue.
func (e *Engine) requeue(r *jobRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.runs[r.id] = r
	e.queue = append([]*jobRun{r}, e.queue...)
	e.dispatchLocked()
}

func allowed(s State, from []State) bool {
	for _, f := range from {
		if s == f {
			return true
		}
	}
	return false
}

func invalidState(id string, s, to State) error {
	return &Error{Code: CodeInvalidState, Message: fmt.Sprintf("job %s is %s and cannot become %s", id, s, to)}
}

// dequeueLocked forgets a queued job. e.mu is held.
func (e *Engine) dequeueLocked(id string) {
	delete(e.runs, id)
	for i, r := range e.queue {
		if r.id == id {
			e.queue = append(e.queue[:i], e.queue[i+1:]...)
			break
		}
	}
}

// Resume queues a paused job again; it continues where it stopped. A job
// that failed for a system reason (the store's disk was full, say) can be
// resumed too, once the cause is gone: it continues where it stopped,
// keeping the outcomes of the items that ran. Another state returns an
// error matching [ErrInvalidState].
func (e *Engine) Resume(ctx context.Context, id string) (*Job, error) {
	seq, ok := parseJobID(id)
	if !ok {
		return nil, notFound("job", id)
	}
	e.mu.Lock()
	closed, old := e.closed, e.runs[id]
	var exited chan struct{}
	if old != nil {
		exited = old.exited
	}
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if exited != nil && old.snapshot().Status == StatePaused {
		// Its pause is stored (another process may have seen it already);
		// the run is only giving up its lease: wait for it to leave.
		select {
		case <-exited:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.mu.Lock()
	live := e.runs[id] != nil
	e.mu.Unlock()
	var rec *jobRecord
	var needs []string
	err := e.committer.do(func(w *wtx) error {
		cur, err := getJob(w.Tx, seq)
		if err != nil {
			return err
		}
		if (cur.Status != StatePaused && !failedBySystem(cur)) || live {
			return invalidState(id, cur.Status, StateRunning)
		}
		if needs, err = operationTypes(w.Tx, seq); err != nil {
			return err
		}
		from := cur.Status
		rec = cur
		rec.Status, rec.FinishedAt, rec.Error = StateQueued, nil, nil
		now := e.now().UTC()
		rec.QueuedAt = &now
		w.wakeOthers = true // another process may have a free slot
		// A pause asked of another process is done with: it must not
		// stop the resumed run.
		if e.claimer != nil {
			if err := w.Delete(bucketControl, []byte(id)); err != nil {
				return err
			}
		}
		return w.transition(nil, from, rec, EventJobResumed, PrincipalFrom(ctx))
	})
	if err != nil {
		return nil, err
	}
	r := newRun(e, seq, rec.clone())
	r.needs = needs
	e.enqueue(r)
	return e.view(rec, nil), nil
}

// enqueue queues the run of a job stored as queued, unless the engine
// closed (the job starts when the store is opened again) or the job has a
// run here already (on a shared store the claim loop may find it first).
func (e *Engine) enqueue(r *jobRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed && e.runs[r.id] == nil {
		e.runs[r.id] = r
		e.queue = append(e.queue, r)
		e.dispatchLocked()
	}
	e.notifyLocked()
}

// Delete removes a job that is not running, with its items, errors and
// artifacts. A running job returns an error matching [ErrInvalidState]:
// cancel or pause it first.
func (e *Engine) Delete(ctx context.Context, id string) error {
	seq, ok := parseJobID(id)
	if !ok {
		return notFound("job", id)
	}
	e.mu.Lock()
	r := e.runs[id]
	if r != nil && r.exited != nil {
		e.mu.Unlock()
		// A job whose final state is already stored is only reporting
		// its last event: wait for its runner to leave, then delete.
		if !r.snapshot().Status.Final() {
			return &Error{Code: CodeInvalidState, Message: fmt.Sprintf("job %s is running: cancel or pause it before deleting it", id)}
		}
		select {
		case <-r.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.mu.Lock()
		r = e.runs[id]
		if r != nil && r.exited != nil {
			e.mu.Unlock()
			return &Error{Code: CodeInvalidState, Message: fmt.Sprintf("job %s is running: cancel or pause it before deleting it", id)}
		}
	}
	if r != nil {
		e.dequeueLocked(id)
	}
	e.mu.Unlock()
	err := e.committer.do(func(w *wtx) error {
		rec, err := getJob(w.Tx, seq)
		if err != nil {
			return err
		}
		if err := dropJob(w.Tx, seq, rec); err != nil {
			return err
		}
		return w.event(Event{Type: EventJobDeleted, Principal: PrincipalFrom(ctx), JobID: id, Job: e.view(rec, nil)})
	})
	if err != nil {
		if r != nil && !errors.Is(err, ErrNotFound) {
			e.requeue(r)
		}
		return err
	}
	e.notify()
	e.wakeJob(id)
	return nil
}

// dropJob removes job seq (stored as rec) with everything kept for it but
// its audit trail.
func dropJob(tx Tx, seq uint64, rec *jobRecord) error {
	if rec.IdempotencyKey != "" {
		if err := tx.Delete(bucketIdempotency, []byte(rec.Owner+"\x00"+rec.IdempotencyKey)); err != nil {
			return err
		}
	}
	for _, b := range []string{itemsBucket(rec.ID), doneBucket(rec.ID), errorsBucket(rec.ID), artifactsBucket(rec.ID), undoBucket(rec.ID)} {
		if err := tx.DeleteBucket(b); err != nil {
			return err
		}
	}
	if err := deleteBatch(tx, seq); err != nil {
		return err
	}
	return deleteJobRecord(tx, seq)
}

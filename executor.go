package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/panics"
	"github.com/sourcegraph/conc/pool"
)

// BackoffFunc computes the delay before the next try of an item, given the
// number of the try that just failed (from 1) and its error. Register one
// with [Engine.RegisterBackoff]; the result is capped at the batch's
// retry.max_delay.
type BackoffFunc func(attempt int, err error) time.Duration

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

// expandChunk is how many pending items one expansion transaction writes.
const expandChunk = 2000

// itemPage is how many stored items the run loop reads per transaction.
const itemPage = 1000

// jobRun is a live job: queued or running in this process.
type jobRun struct {
	e   *Engine
	id  string
	seq uint64
	// itemsBucket and errorsBucket name the job's buckets.
	itemsBucket, errorsBucket string
	// pending counts outcomes handed to the committer and not yet stored.
	pending sync.WaitGroup
	// exited is closed when the runner goroutine ends; nil until it starts.
	exited chan struct{}
	cur    atomic.Pointer[CurrentOperation]
	// failedSeen counts items that failed in this process, stored or not.
	failedSeen atomic.Int64
	// needs are the operation types of a stored job that was reopened; it
	// is not dispatched before they are all registered. waitLogged says
	// the wait was logged (guarded by e.mu).
	needs      []string
	waitLogged bool

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
	return &jobRun{e: e, id: rec.ID, seq: seq, rec: rec, itemsBucket: itemsBucket(rec.ID), errorsBucket: errorsBucket(rec.ID)}
}

// snapshot returns a copy of the job record.
func (r *jobRun) snapshot() *jobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.clone()
}

// withDelta returns the record with d applied, for the committer to store.
func (r *jobRun) withDelta(d *jobDelta) *jobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec.clone()
	rec.Progress.Completed += d.completed
	rec.Progress.Failed += d.failed
	rec.ItemNanos += d.nanos
	rec.Results = append(rec.Results, d.results...)
	for _, f := range d.failures {
		if len(rec.FirstErrors) < JobErrorsInline {
			rec.FirstErrors = append(rec.FirstErrors, f)
		}
	}
	return rec
}

// committed takes in a stored commit and stops the job when its failures
// call for it.
func (r *jobRun) committed(d *jobDelta) {
	r.mu.Lock()
	r.rec = d.rec
	opts := r.rec.Options
	failed, total := r.rec.Progress.Failed, r.rec.Progress.TotalOperations
	r.mu.Unlock()
	if d.failed == 0 {
		return
	}
	switch {
	case opts.Validation.OnError == OnErrorAbort:
		r.stop(stopFail, executionError("an item failed and validation.on_error is abort", d.failures))
	case opts.MaxFailureRate != nil && total > 0 && float64(failed)*100 > *opts.MaxFailureRate*float64(total):
		r.stop(stopFail, executionError(fmt.Sprintf("%d of %d items failed, more than max_failure_rate %v%%", failed, total, *opts.MaxFailureRate), d.failures))
	}
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

// setState stores a new state for the job (and keeps the copy in memory).
func (r *jobRun) save(mutate func(rec *jobRecord)) error {
	r.mu.Lock()
	rec := r.rec.clone()
	r.mu.Unlock()
	mutate(rec)
	if err := r.e.store.Update(func(tx Tx) error { return putJob(tx, r.seq, rec) }); err != nil {
		return err
	}
	r.mu.Lock()
	r.rec = rec
	r.mu.Unlock()
	r.e.notify()
	return nil
}

// dispatchLocked starts queued jobs while there are free slots. e.mu is held.
//
// A stored job whose operation types are not all registered (the program
// reopened the store without registering them yet) stays queued and waits:
// RegisterOperation dispatches it.
func (e *Engine) dispatchLocked() {
	for i := 0; !e.closed && e.running < e.opts.MaxRunningJobs && i < len(e.queue); {
		r := e.queue[i]
		if !e.registeredLocked(r.needs) {
			if !r.waitLogged {
				r.waitLogged = true
				e.log.Warn("job waits for its operation types to be registered", "job_id", r.id, "types", r.needs)
			}
			i++
			continue
		}
		e.queue = append(e.queue[:i], e.queue[i+1:]...)
		e.running++
		r.exited = make(chan struct{})
		e.wg.Go(func() { e.runJob(r) })
	}
}

// registeredLocked reports whether every operation type is registered.
// e.mu is held.
func (e *Engine) registeredLocked(types []string) bool {
	for _, t := range types {
		if _, ok := e.ops[t]; !ok {
			return false
		}
	}
	return true
}

// runJob runs a job until it finishes, pauses, fails or the engine closes.
func (e *Engine) runJob(r *jobRun) {
	defer close(r.exited)
	feedCtx, feedCancel := context.WithCancel(e.ctx)
	itemCtx, itemCancel := context.WithCancel(e.ctx)
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

	err := r.execute(feedCtx, itemCtx)
	r.pending.Wait()
	r.finish(err)
}

// execute plans, expands, validates and runs the job's items.
func (r *jobRun) execute(feedCtx, itemCtx context.Context) error {
	e := r.e
	now := e.now().UTC()
	first := false
	if err := r.save(func(rec *jobRecord) {
		rec.Status = StateRunning
		if rec.StartedAt == nil {
			rec.StartedAt, first = &now, true
		}
	}); err != nil {
		return err
	}
	rec := r.snapshot()
	if first {
		e.emitJob(EventJobStarted, "", rec)
	}
	opts := rec.Options
	if opts.Timeout > 0 {
		deadline := rec.StartedAt.Add(time.Duration(opts.Timeout))
		var cancel context.CancelFunc
		feedCtx, cancel = context.WithDeadline(feedCtx, deadline)
		defer cancel()
		itemCtx, cancel = context.WithDeadline(itemCtx, deadline)
		defer cancel()
		jobCtx := feedCtx
		defer func() {
			if errors.Is(jobCtx.Err(), context.DeadlineExceeded) {
				r.stop(stopFail, &Error{Code: CodeExecutionError, Message: "Batch job execution failed: the job ran past its timeout of " + opts.Timeout.String(),
					Details: []Detail{{Code: string(CodeTimeout), Message: "job timeout " + opts.Timeout.String() + " exceeded"}}})
			}
		}()
	}

	var b *Batch
	if err := e.store.View(func(tx Tx) error {
		var err error
		b, err = getBatch(tx, r.seq)
		return err
	}); err != nil {
		return err
	}
	plans, err := e.plan(feedCtx, r.id, b)
	if err != nil {
		return err
	}
	if !rec.Expanded {
		if err := r.expand(feedCtx, b, plans); err != nil {
			return err
		}
	}
	rec = r.snapshot()
	if opts.Validation.Mode == ModeStrict && !rec.Validated {
		if err := r.pass(feedCtx, itemCtx, b, plans, opts, true); err != nil {
			return err
		}
		r.pending.Wait()
		if feedCtx.Err() != nil {
			return nil
		}
		if err := r.save(func(rec *jobRecord) { rec.Validated = true }); err != nil {
			return err
		}
	}
	return r.pass(feedCtx, itemCtx, b, plans, opts, false)
}

// plan plans every operation of b for job jobID ("" while validating a
// submission), reporting every problem as one INVALID_BATCH error.
func (e *Engine) plan(ctx context.Context, jobID string, b *Batch) ([]*Plan, error) {
	var d details
	plans := make([]*Plan, len(b.Operations))
	for i := range b.Operations {
		spec := &b.Operations[i]
		path := fmt.Sprintf("operations[%d]", i)
		if spec.Type == "" {
			d.add(path+".type", DetailRequired, "operation needs a type")
			continue
		}
		op, ok := e.operation(spec.Type)
		if !ok {
			d.add(path+".type", DetailInvalidOperation, "Unknown operation type: %s", spec.Type)
			continue
		}
		p, err := callPlan(ctx, op, spec, &Env{JobID: jobID, Operation: i, e: e})
		switch {
		case err != nil:
			d.merge(path, err)
		case p == nil || (p.Resource == nil && p.Item == nil) || (p.Run == nil && p.apply == nil):
			d.add(path, DetailInvalidOperation, "operation type %s returned an incomplete plan", spec.Type)
		case p.Resource == nil && p.Count < 0:
			d.add(path, DetailInvalidOperation, "operation type %s planned a negative item count", spec.Type)
		default:
			plans[i] = p
		}
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return plans, nil
}

// callPlan runs an operation's Plan, turning a panic into an error.
func callPlan(ctx context.Context, op Operation, spec *OperationSpec, env *Env) (p *Plan, err error) {
	if r := panics.Try(func() { p, err = op.Plan(ctx, spec, env) }); r != nil {
		return nil, fmt.Errorf("operation type %s panicked while planning: %v", spec.Type, r.Value)
	}
	return p, err
}

// expand lists the items of record-driven operations (the records their
// query selects now) and fixes every operation's item range. It streams:
// ids are written in chunks, never all held at once.
func (r *jobRun) expand(ctx context.Context, b *Batch, plans []*Plan) error {
	e := r.e
	if err := e.store.Update(func(tx Tx) error {
		if err := tx.DeleteBucket(itemsBucket(r.id)); err != nil {
			return err
		}
		return tx.DeleteBucket(errorsBucket(r.id))
	}); err != nil {
		return err
	}
	ops := make([]opRange, len(plans))
	var next int64
	for i, p := range plans {
		ops[i].Base = next
		if p.Resource == nil {
			ops[i].Count = p.Count
			next += p.Count
			continue
		}
		chunk := make([][]byte, 0, expandChunk)
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			start := next - int64(len(chunk))
			err := e.store.Update(func(tx Tx) error {
				for j, v := range chunk {
					if err := tx.Put(itemsBucket(r.id), u64key(uint64(start+int64(j))), v); err != nil {
						return err
					}
				}
				return nil
			})
			chunk = chunk[:0:0]
			return err
		}
		err := p.Resource.Scan(ctx, p.Query, func(rec Record) error {
			chunk = append(chunk, appendItem(nil, &itemRecord{State: itemPending, Op: i, ResourceID: rec.ID()}))
			next++
			ops[i].Count++
			if len(chunk) == expandChunk {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return fmt.Errorf("listing the records of operation %d: %w", i, err)
		}
	}
	return r.save(func(rec *jobRecord) {
		rec.Ops = ops
		rec.Expanded = true
		rec.Progress.TotalOperations = next
	})
}

// pass goes over every unfinished item once: validating it (strict
// validation) or running it.
func (r *jobRun) pass(feedCtx, itemCtx context.Context, b *Batch, plans []*Plan, opts BatchOptions, validating bool) error {
	rec := r.snapshot()
	done, err := r.finishedItems(rec)
	if err != nil {
		return err
	}
	p := pool.New().WithMaxGoroutines(opts.MaxConcurrent)
	defer p.Wait()
	fed := 0
	feed := func(plan *Plan, it Item) {
		if fed++; fed%32 == 0 {
			runtime.Gosched() // let other goroutines (status reads) in between bursts
		}
		it.JobID, it.Type = r.id, b.Operations[it.Operation].Type
		p.Go(func() {
			if validating {
				r.validateItem(feedCtx, itemCtx, plan, it)
			} else {
				r.runItem(feedCtx, itemCtx, plan, it, opts)
			}
		})
	}
	for i, plan := range plans {
		if validating && plan.Validate == nil {
			continue
		}
		rg := rec.Ops[i]
		if plan.Resource != nil {
			err = r.eachPending(feedCtx, rg, func(index int64, ir itemRecord) {
				feed(plan, Item{Index: index, Operation: i, ResourceID: ir.ResourceID})
			})
			if err != nil {
				break
			}
			continue
		}
		for j := int64(0); j < rg.Count && feedCtx.Err() == nil; j++ {
			index := rg.Base + j
			if done != nil && done[index/64]&(1<<(index%64)) != 0 {
				continue
			}
			it, err := plan.Item(j)
			if err != nil {
				return fmt.Errorf("building item %d of operation %d: %w", j, i, err)
			}
			it.Index, it.Operation = index, i
			feed(plan, it)
		}
	}
	if err != nil && feedCtx.Err() != nil {
		return nil // stopped while listing; the stop reason decides
	}
	return err
}

// finishedItems returns a bitmap of items with a stored outcome, or nil
// when none has one yet.
func (r *jobRun) finishedItems(rec *jobRecord) ([]uint64, error) {
	if rec.Progress.Completed+rec.Progress.Failed == 0 {
		return nil, nil
	}
	done := make([]uint64, (rec.Progress.TotalOperations+63)/64)
	err := r.e.store.View(func(tx Tx) error {
		return tx.Scan(itemsBucket(r.id), nil, func(k, v []byte) bool {
			if len(v) > 1 && itemState(v[1]) != itemPending && len(k) == 8 {
				i := int64(beUint64(k))
				if i/64 < int64(len(done)) {
					done[i/64] |= 1 << (i % 64)
				}
			}
			return true
		})
	})
	return done, err
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// eachPending calls fn for each pending stored item in rg, reading a page
// per transaction.
func (r *jobRun) eachPending(ctx context.Context, rg opRange, fn func(index int64, ir itemRecord)) error {
	from := rg.Base
	end := rg.Base + rg.Count
	for from < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		type entry struct {
			index int64
			ir    itemRecord
		}
		page := make([]entry, 0, itemPage)
		next := end
		err := r.e.store.View(func(tx Tx) error {
			var derr error
			scanned := 0
			err := tx.Scan(itemsBucket(r.id), u64key(uint64(from)), func(k, v []byte) bool {
				i := int64(beUint64(k))
				if i >= end {
					return false
				}
				if scanned == itemPage {
					next = i
					return false
				}
				scanned++
				ir, err := decodeItem(v)
				if err != nil {
					derr = fmt.Errorf("item %d: %w", i, err)
					return false
				}
				if ir.State == itemPending {
					page = append(page, entry{i, ir})
				}
				return true
			})
			return firstErr(err, derr)
		})
		if err != nil {
			return err
		}
		for _, en := range page {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fn(en.index, en.ir)
		}
		from = next
	}
	return nil
}

// validateItem checks one item before any runs (strict validation); a
// failure is stored as the item's outcome.
func (r *jobRun) validateItem(feedCtx, itemCtx context.Context, p *Plan, it Item) {
	if feedCtx.Err() != nil {
		return
	}
	start := r.e.now()
	err := safeCall(itemCtx, func(ctx context.Context) error { return r.check(ctx, p, &it, true) })
	if err == nil || itemCtx.Err() != nil {
		return
	}
	o := &outcome{run: r, index: it.Index, rec: itemRecord{State: itemFailed, Op: it.Operation, Attempts: 1, ResourceID: it.ResourceID}}
	o.rec.Code, o.rec.Message, _ = classify(err)
	o.rec.Duration = r.e.now().Sub(start)
	r.abortOnFailure(o)
	r.e.committer.send(o)
}

// abortOnFailure stops the job at a failed item when validation.on_error
// is abort or max_failure_rate is passed, without waiting for the outcome
// to be stored. (Failures found inside the commit are handled by committed.)
func (r *jobRun) abortOnFailure(o *outcome) {
	if o.rec.State != itemFailed {
		return
	}
	seen := r.failedSeen.Add(1)
	r.mu.Lock()
	opts := r.rec.Options
	failed, total := max(seen, r.rec.Progress.Failed+1), r.rec.Progress.TotalOperations
	r.mu.Unlock()
	failures := []ItemError{o.rec.itemError(o.index)}
	switch {
	case opts.Validation.OnError == OnErrorAbort:
		r.stop(stopFail, executionError("an item failed and validation.on_error is abort", failures))
	case opts.MaxFailureRate != nil && total > 0 && float64(failed)*100 > *opts.MaxFailureRate*float64(total):
		r.stop(stopFail, executionError(fmt.Sprintf("%d of %d items failed, more than max_failure_rate %v%%", failed, total, *opts.MaxFailureRate), failures))
	}
}

// check loads the item's record when the plan needs it and runs the plan's
// validation when asked.
func (r *jobRun) check(ctx context.Context, p *Plan, it *Item, validate bool) error {
	if p.Resource != nil && (p.apply == nil || (validate && p.Validate != nil)) {
		rec, err := p.Resource.Get(ctx, it.ResourceID)
		if err != nil {
			return err
		}
		it.Record = rec
	}
	if validate && p.Validate != nil {
		if err := p.Validate(ctx, it); err != nil {
			if CodeOf(err) == "" {
				return &Error{Code: CodeValidation, Message: err.Error(), Err: err}
			}
			return err
		}
	}
	return nil
}

// runItem runs one item with its retries and hands the outcome to the
// committer. An item interrupted by a stop is left pending, to run again.
func (r *jobRun) runItem(feedCtx, itemCtx context.Context, p *Plan, it Item, opts BatchOptions) {
	if feedCtx.Err() != nil {
		return
	}
	start := r.e.now()
	r.cur.Store(&CurrentOperation{Index: it.Index, Type: it.Type, ResourceID: it.ResourceID, StartedAt: start.UTC()})
	lenient := opts.Validation.Mode == ModeLenient
	o := &outcome{run: r, index: it.Index, rec: itemRecord{Op: it.Operation, ResourceID: it.ResourceID}}
	for attempt := 1; ; attempt++ {
		o.rec.Attempts = attempt
		err := runAttempt(itemCtx, time.Duration(opts.ItemTimeout), func(ctx context.Context) error {
			if err := r.check(ctx, p, &it, lenient); err != nil {
				return err
			}
			if p.apply != nil {
				return nil
			}
			return r.e.runItemWith(ctx, &it, p.Run)
		})
		if err == nil {
			o.rec.State = itemSucceeded
			break
		}
		if itemCtx.Err() != nil {
			return // the job is stopping; leave the item pending
		}
		code, msg, retry := classify(err)
		if !retry || attempt >= opts.Retry.Attempts {
			o.rec.State, o.rec.Code, o.rec.Message = itemFailed, code, msg
			break
		}
		if !r.sleep(feedCtx, r.backoff(opts.Retry, attempt, err)) {
			return // paused or stopped during the backoff; run again later
		}
	}
	if p.apply != nil && o.rec.State == itemSucceeded {
		o.apply, o.item = p.apply, &it
	}
	o.result = it.Result
	if o.result != nil {
		o.result.OperationIndex, o.result.Type = it.Operation, it.Type
		// Keep the summary as it will read back from the store.
		if s, err := normalizeJSON(o.result.Summary); err == nil {
			o.result.Summary = s
		}
	}
	o.rec.Duration = r.e.now().Sub(start)
	r.abortOnFailure(o)
	r.e.committer.send(o)
}

// sleep waits d, or returns false when ctx ends first.
func (r *jobRun) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff returns the delay after the given failed attempt.
func (r *jobRun) backoff(ro RetryOptions, attempt int, err error) time.Duration {
	base, ceiling := time.Duration(ro.Delay), time.Duration(ro.MaxDelay)
	var d time.Duration
	switch ro.Backoff {
	case BackoffImmediate:
		return 0
	case BackoffLinear:
		d = base
	case BackoffCustom:
		if ro.Formula != "" {
			return r.e.formulaBackoff(ro, attempt, err)
		}
		if fn, ok := r.e.backoff(ro.Function); ok {
			d = fn(attempt, err)
		}
	default: // exponential, with equal jitter: between half and all of base x 2^(attempt-1)
		d = base << min(attempt-1, 32)
		if d <= 0 || d > ceiling {
			d = ceiling
		}
		if half := d / 2; half > 0 {
			d = half + rand.N(half+1)
		}
	}
	return min(max(d, 0), ceiling)
}

// runAttempt runs fn once with panic recovery and, when timeout is set, a
// deadline. A handler that ignores its context past the deadline is left
// behind: the item fails with TIMEOUT_ERROR and the job goes on.
func runAttempt(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	if timeout <= 0 {
		return safeCall(ctx, fn)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- safeCall(actx, fn) }()
	timedOut := func() error {
		return &Error{Code: CodeTimeout, Message: "operation timed out after " + formatDuration(timeout)}
	}
	select {
	case err := <-done:
		if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return timedOut()
		}
		return err
	case <-actx.Done():
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return timedOut()
	}
}

// safeCall runs fn, turning a panic into a SYSTEM_ERROR that carries the
// stack.
func safeCall(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &Error{Code: CodeSystem, Message: fmt.Sprintf("panic: %v", v), Err: fmt.Errorf("panic: %v\n%s", v, debug.Stack())}
		}
	}()
	return fn(ctx)
}

// classify maps an item error to its code, message and whether a retry
// may help. Validation errors and missing records are never retried.
func classify(err error) (Code, string, bool) {
	var e *Error
	if errors.As(err, &e) {
		retry := !isPermanent(err)
		switch e.Code {
		case CodeValidation, CodeInvalidBatch:
			return CodeValidation, e.Message, false
		case CodeNotFound:
			return CodeResource, e.Message, false
		case CodeResource, CodeTimeout, CodeSystem:
			return e.Code, e.Message, retry
		}
		return CodeSystem, e.Message, retry
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout, err.Error(), !isPermanent(err)
	}
	return CodeSystem, err.Error(), !isPermanent(err)
}

// finish stores where the job ended up, reports it and only then frees
// its slot: until the event is out, status reads still see the live job,
// so whoever sees the final state finds its event already reported (and
// recorded by the audit log).
func (r *jobRun) finish(execErr error) {
	e := r.e
	rec, ev := r.settle(execErr)
	if ev != "" {
		r.mu.Lock()
		by := r.stopBy
		r.mu.Unlock()
		e.emitPublishing(Event{Type: ev, Principal: by, JobID: rec.ID, Job: e.view(rec.clone(), nil)}, func() {
			r.mu.Lock()
			r.rec = rec
			r.mu.Unlock()
		})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if rec != nil {
		r.mu.Lock()
		r.rec = rec
		r.mu.Unlock()
		if n := rec.Progress.Completed + rec.Progress.Failed; rec.Status == StateCompleted && n > 0 && rec.StartedAt != nil {
			per := rec.FinishedAt.Sub(*rec.StartedAt) / time.Duration(n)
			e.itemEst = (e.itemEst*3 + per) / 4
		}
	}
	e.running--
	delete(e.runs, r.id)
	e.dispatchLocked()
	e.notifyLocked()
}

// settle stores the job's final (or paused) state and says which event
// reports it. A job stopped by Close stays running in the store.
func (r *jobRun) settle(execErr error) (*jobRecord, EventType) {
	e := r.e
	r.mu.Lock()
	reason, failErr := r.reason, r.failErr
	rec := r.rec.clone()
	r.mu.Unlock()
	if reason == stopClose {
		return nil, "" // resumes on the next open
	}
	if execErr != nil && reason != stopNone && (errors.Is(execErr, context.Canceled) || errors.Is(execErr, context.DeadlineExceeded)) {
		execErr = nil // interrupted by the stop; the stop reason decides
	}
	if execErr != nil && reason < stopCancel {
		e.errorf(r.id, "job failed: %v", execErr)
		reason = stopFail
		failErr = &Error{Code: CodeExecutionError, Message: "Batch job execution failed", Err: execErr,
			Details: []Detail{{Code: string(CodeSystem), Message: execErr.Error()}}}
	}
	now := e.now().UTC()
	var ev EventType
	switch reason {
	case stopPause:
		rec.Status, ev = StatePaused, EventJobPaused
	case stopCancel:
		rec.Status, rec.FinishedAt, ev = StateCancelled, &now, EventJobCancelled
	case stopFail:
		rec.Status, rec.FinishedAt, rec.Error, ev = StateFailed, &now, failErr, EventJobFailed
	default:
		rec.Status, rec.FinishedAt, ev = StateCompleted, &now, EventJobCompleted
	}
	if err := e.store.Update(func(tx Tx) error { return putJob(tx, r.seq, rec) }); err != nil {
		e.errorf(r.id, "storing the job's final state failed: %v", err)
		return nil, ""
	}
	return rec, ev
}

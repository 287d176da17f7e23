package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/panics"
)

// BackoffFunc computes the delay before the next try of an item, given the
// number of the try that just failed (from 1) and its error. Register one
// with [Engine.RegisterBackoff]; the result is capped at the batch's
// retry.max_delay.
type BackoffFunc func(attempt int, err error) time.Duration

// selectChunk is how many selected items one selection transaction writes.
const selectChunk = 2000

// itemPage is how many stored items the feeder reads per transaction.
const itemPage = 1000

// execute runs the job's operations in order: each selects its items when
// it starts, is validated first under strict validation, and runs; the
// next starts once every outcome of this one is durable.
func (r *jobRun) execute(ctx, feedCtx, itemCtx context.Context) error {
	e := r.e
	if err := r.start(); err != nil {
		return err
	}
	rec := r.snapshot()
	opts := rec.Options
	if opts.Timeout > 0 {
		deadline := rec.StartedAt.Add(time.Duration(opts.Timeout))
		var cancel context.CancelFunc
		feedCtx, cancel = context.WithDeadline(feedCtx, deadline)
		defer cancel()
		itemCtx, cancel = context.WithDeadline(itemCtx, deadline)
		defer cancel()
		// Both contexts end at the deadline, each on its own timer: the
		// run may stop on either one first.
		feedTimeout, itemTimeout := feedCtx, itemCtx
		defer func() {
			if errors.Is(feedTimeout.Err(), context.DeadlineExceeded) || errors.Is(itemTimeout.Err(), context.DeadlineExceeded) {
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
	types := make([]string, len(b.Operations))
	for i := range b.Operations {
		types[i] = b.Operations[i].Type
	}
	r.curMu.Lock()
	r.opTypes = types
	r.curMu.Unlock()
	plans, err := e.plan(ctx, r.id, b, rec.Trace)
	if err != nil {
		return err
	}
	if len(rec.Ops) != len(plans) {
		return fmt.Errorf("job has %d operation ranges for %d operations", len(rec.Ops), len(plans))
	}
	r.keepBeforeImages(plans)
	prog, err := r.loadProgress(rec)
	if err != nil {
		return err
	}
	for i, p := range plans {
		if feedCtx.Err() != nil {
			return nil
		}
		if err := r.selectItems(feedCtx, i, p); err != nil {
			if feedCtx.Err() != nil {
				return nil
			}
			return err
		}
		last := i == len(plans)-1
		if opts.Validation.Mode == ModeStrict && p.Validate != nil && !r.snapshot().Ops[i].Validated {
			if err := r.pass(feedCtx, itemCtx, i, p, types[i], opts, prog, true, false); err != nil {
				return err
			}
			r.pending.Wait()
			if feedCtx.Err() != nil {
				return nil
			}
			if err := r.markValidated(i); err != nil {
				return err
			}
			// Items that failed validation are done: do not run them.
			if prog, err = r.loadProgress(r.snapshot()); err != nil {
				return err
			}
		}
		start, before := time.Now(), r.snapshot().Progress
		if err := r.pass(feedCtx, itemCtx, i, p, types[i], opts, prog, false, last); err != nil {
			return err
		}
		r.pending.Wait()
		if after := r.snapshot().Progress; feedCtx.Err() == nil {
			e.observeRate(types[i], time.Since(start), after.Completed+after.Failed-before.Completed-before.Failed)
		}
	}
	return nil
}

// markValidated stores that operation i passed strict validation.
func (r *jobRun) markValidated(i int) error {
	return r.e.committer.do(func(w *wtx) error {
		rec := r.snapshot()
		rec.Ops[i].Validated = true
		if err := putJob(w.Tx, r.seq, rec); err != nil {
			return err
		}
		w.after = append(w.after, func() { r.setRec(rec) })
		return nil
	})
}

// plan plans every operation of b for job jobID ("" while validating a
// submission), reporting every problem as one INVALID_BATCH error. Every
// plan's Query is compiled here, whoever built it. trace is the job's
// trace carrier: each Plan call runs under the context the observer
// extracts from it.
func (e *Engine) plan(ctx context.Context, jobID string, b *Batch, trace map[string]string) ([]*Plan, error) {
	tp, _ := e.obs.(TracePropagator)
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
		pctx := ctx
		if tp != nil && len(trace) > 0 {
			pctx = tp.Extract(ctx, trace)
		}
		p, err := callPlan(pctx, op, spec, &Env{JobID: jobID, Operation: i, e: e})
		switch {
		case err != nil:
			d.merge(path, err)
		case p == nil || (p.Resource == nil && p.Item == nil) || (p.Run == nil && p.apply == nil):
			d.add(path, DetailInvalidOperation, "operation type %s returned an incomplete plan", spec.Type)
		case p.Resource == nil && p.Count < 0:
			d.add(path, DetailInvalidOperation, "operation type %s planned a negative item count", spec.Type)
		default:
			if p.Resource != nil && p.Query == nil && (len(spec.Filter) > 0 || spec.Where != "") {
				// A plan over a resource that built no query of its own
				// selects with the operation's filter and where.
				var qd details
				p.Query = compileQuery(spec, false, &qd)
				if len(qd.list) > 0 {
					d.merge(path, invalidBatch(qd.list))
					continue
				}
			}
			if err := p.Query.compile(); err != nil {
				d.add(path+".where", DetailInvalidExpr, "invalid where expression: %v", exprMessage(err))
				continue
			}
			if spec.Where != "" && (p.Query == nil || p.Query.Where != spec.Where) {
				// A where the plan does not use must still be sound.
				if _, err := compileRecordExpr(spec.Where, true); err != nil {
					d.add(path+".where", DetailInvalidExpr, "invalid where expression: %v", exprMessage(err))
					continue
				}
			}
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

// progress is what a resumed job already did: the items with a stored
// outcome, and the attempts of items waiting for a retry.
type progress struct {
	done     []uint64 // bitmap by item index; nil when none
	attempts map[int64]int
}

func (p *progress) isDone(i int64) bool {
	return p.done != nil && i/64 < int64(len(p.done)) && p.done[i/64]&(1<<(i%64)) != 0
}

// loadProgress reads the job's stored outcomes and attempts. A job that
// never ran an item has none.
func (r *jobRun) loadProgress(rec *jobRecord) (*progress, error) {
	if rec.Progress.Completed+rec.Progress.Failed == 0 && rec.Options.Retry.Attempts <= 1 {
		return &progress{}, nil
	}
	var end int64
	for _, o := range rec.Ops {
		if o.Selected {
			end = max(end, o.Base+o.Count)
		}
	}
	p, _, err := r.rangeProgress(0, end)
	return p, err
}

// selectItems fixes operation i's items when it starts: its range follows
// the previous operation's, and a record-driven operation stores the ids
// its query selects now, in chunks, never all held at once. The job's
// total becomes exact for the operation.
func (r *jobRun) selectItems(ctx context.Context, i int, p *Plan) error {
	rec := r.snapshot()
	if rec.Ops[i].Selected {
		return nil
	}
	var base int64
	if i > 0 {
		base = rec.Ops[i-1].Base + rec.Ops[i-1].Count
	}
	estimate := rec.Ops[i].Count
	done := func(count int64) func(rec *jobRecord) {
		return func(rec *jobRecord) {
			rec.Ops[i] = opRange{Base: base, Count: count, Selected: true}
			rec.Progress.TotalOperations += count - estimate
		}
	}
	if p.Resource == nil {
		// Stored with the operation's first outcome (or the job's end).
		r.mu.Lock()
		rec := r.rec.clone()
		done(p.Count)(rec)
		r.rec = rec
		r.mu.Unlock()
		return nil
	}
	var count int64
	first := true
	chunk := make([][]byte, 0, selectChunk)
	flush := func(final bool) error {
		start := base + count - int64(len(chunk))
		clean := first
		first = false
		err := r.e.committer.do(func(w *wtx) error {
			if clean {
				// Entries left by a selection a crash interrupted.
				var stale [][]byte
				if err := w.Scan(r.itemsBucket, u64key(uint64(base)), func(k, _ []byte) bool {
					stale = append(stale, append([]byte(nil), k...))
					return true
				}); err != nil {
					return err
				}
				if err := deleteKeys(w, r.itemsBucket, stale); err != nil {
					return err
				}
			}
			for j, v := range chunk {
				if err := w.Put(r.itemsBucket, u64key(uint64(start+int64(j))), v); err != nil {
					return err
				}
			}
			if !final {
				return nil
			}
			rec := r.snapshot()
			done(count)(rec)
			if err := putJob(w.Tx, r.seq, rec); err != nil {
				return err
			}
			w.after = append(w.after, func() { r.setRec(rec) })
			return nil
		})
		chunk = chunk[:0]
		return err
	}
	err := selectIDs(ctx, p.Resource, p.Query, func(id string) error {
		chunk = append(chunk, appendItem(nil, &itemRecord{State: itemPending, Op: i, ResourceID: id}))
		count++
		if len(chunk) == selectChunk {
			return flush(false)
		}
		return nil
	})
	if err == nil {
		err = flush(true)
	}
	if err != nil {
		return fmt.Errorf("selecting the records of operation %d: %w", i, err)
	}
	return nil
}

// pending is a selected item waiting to run.
type pendingItem struct {
	index    int64
	id       string
	attempts int
}

// pass goes over every unfinished item of operation i once, validating it
// (strict validation) or running it, with a fixed set of workers pulling
// item indexes.
func (r *jobRun) pass(feedCtx, itemCtx context.Context, i int, p *Plan, typ string, opts BatchOptions, prog *progress, validating, lastOp bool) error {
	rg := r.snapshot().Ops[i]
	workers := max(opts.MaxConcurrent, 1)
	w := &worker{r: r, plan: p, op: i, typ: typ, opts: opts, feedCtx: feedCtx, itemCtx: itemCtx, validating: validating}
	w.lenient = opts.Validation.Mode == ModeLenient
	w.attemptFn = w.attempt
	if tp, ok := r.e.obs.(TracePropagator); ok {
		if rec := r.snapshot(); len(rec.Trace) > 0 {
			w.tp, w.trace = tp, rec.Trace
		}
	}
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var failErr error
	fail := func(err error) {
		failMu.Lock()
		if failErr == nil {
			failErr = err
		}
		failMu.Unlock()
		r.stop(stopFail, &Error{Code: CodeExecutionError, Message: "Batch job execution failed", Err: err,
			Details: []Detail{{Code: string(faultCode(err)), Message: err.Error()}}})
	}
	if r.shares(rg, validating) {
		return r.sharedPass(w, rg, workers)
	}
	if p.Resource == nil {
		// Items by index: workers pull the next index.
		left := rg.Count
		if prog.done != nil {
			left = 0
			for j := range rg.Count {
				if !prog.isDone(rg.Base + j) {
					left++
				}
			}
		}
		w.left.Store(left)
		w.lastOp = lastOp
		var next atomic.Int64
		gate := r.e.paceGate()
		for range min(int64(workers), max(left, 1)) {
			wg.Go(func() {
				var it Item
				slot := r.newSlot()
				pace := gate.pacer()
				defer pace.release()
				for feedCtx.Err() == nil {
					pace.tick()
					j := next.Add(1) - 1
					if j >= rg.Count {
						return
					}
					index := rg.Base + j
					if prog.isDone(index) {
						continue
					}
					var err error
					if it, err = p.Item(j); err != nil {
						fail(fmt.Errorf("building item %d of operation %d: %w", j, i, err))
						return
					}
					it.Index, it.Operation, it.JobID, it.Type = index, i, r.id, typ
					w.run(slot, &it, prog.attempts[index])
				}
			})
		}
		wg.Wait()
		return failErr
	}
	// Items by record: the feeder reads the stored selection a page at a
	// time and hands pending items to the workers.
	return firstErr(r.runStoredRange(w, nil, rg.Base, rg.Base+rg.Count, workers), failErr)
}

// runStoredRange runs the pending stored items of [lo, hi) of a
// record-driven operation; when the range is leased (hold is not nil),
// until its lease is found lost.
func (r *jobRun) runStoredRange(w *worker, hold *rangeHold, lo, hi int64, workers int) error {
	ctx, cancel := context.WithCancel(w.feedCtx)
	defer cancel()
	ch := make(chan pendingItem, 2*workers)
	gate := r.e.paceGate()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var it Item
			slot := r.newSlot()
			pace := gate.pacer()
			defer pace.release()
			for pi := range ch {
				if hold.isLost() {
					cancel() // stop the feeder; drain what it sent
					continue
				}
				pace.tick()
				it = Item{JobID: r.id, Index: pi.index, Operation: w.op, Type: w.typ, ResourceID: pi.id}
				w.run(slot, &it, pi.attempts)
			}
		})
	}
	err := r.eachPending(ctx, opRange{Base: lo, Count: hi - lo}, func(pi pendingItem) { ch <- pi })
	close(ch)
	wg.Wait()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// eachPending calls fn for each pending stored item in rg, reading a page
// per transaction.
func (r *jobRun) eachPending(ctx context.Context, rg opRange, fn func(pendingItem)) error {
	from := rg.Base
	end := rg.Base + rg.Count
	page := make([]pendingItem, 0, itemPage)
	for from < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		page = page[:0]
		next := end
		err := r.e.store.View(func(tx Tx) error {
			var derr error
			scanned := 0
			err := tx.Scan(r.itemsBucket, u64key(uint64(from)), func(k, v []byte) bool {
				i := int64(beUint64(k))
				if i >= end {
					return false
				}
				if scanned == itemPage {
					next = i
					return false
				}
				scanned++
				if len(v) > 1 && itemState(v[1]) != itemPending {
					return true
				}
				ir, err := decodeItem(v)
				if err != nil {
					derr = fmt.Errorf("item %d: %w", i, err)
					return false
				}
				page = append(page, pendingItem{index: i, id: ir.ResourceID, attempts: ir.Attempts})
				return true
			})
			return firstErr(err, derr)
		})
		if err != nil {
			return err
		}
		for _, pi := range page {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fn(pi)
		}
		from = next
	}
	return nil
}

// worker is what the workers of one pass share.
type worker struct {
	r                *jobRun
	plan             *Plan
	op               int
	typ              string
	opts             BatchOptions
	feedCtx, itemCtx context.Context
	validating       bool
	lenient          bool
	lastOp           bool
	left             atomic.Int64 // items of an index-driven pass not yet finished
	attemptFn        func(ctx context.Context, it *Item) error
	// tp and trace, when the observer propagates traces, give each item's
	// Run the job's trace context.
	tp    TracePropagator
	trace map[string]string
}

// run validates or runs one item.
func (w *worker) run(slot *curSlot, it *Item, attempts int) {
	if w.validating {
		w.validate(it)
	} else {
		w.runItem(slot, it, attempts)
	}
}

// attempt is one try of an item: load and check its record, then run it
// (or, for a built-in change, prepare it for the commit).
func (w *worker) attempt(ctx context.Context, it *Item) error {
	p := w.plan
	if err := w.r.check(ctx, p, it, w.lenient); err != nil {
		return err
	}
	if p.prepare != nil {
		return p.prepare(ctx, it)
	}
	if p.apply != nil {
		return nil
	}
	if w.tp != nil {
		ctx = w.tp.Extract(ctx, w.trace)
	}
	return w.r.e.runItemWith(ctx, it, p.Run)
}

// interrupted reports whether an item that returned err was stopped rather
// than failed: its context was cancelled (cancel, failure, Close), or its
// job is stopping and it gave up with an error matching context.Canceled
// (see [Stopping]). Such an item stays pending, no attempt spent.
func (w *worker) interrupted(err error) bool {
	return w.itemCtx.Err() != nil || (w.feedCtx.Err() != nil && errors.Is(err, context.Canceled))
}

// validate checks one item before any runs (strict validation); a failure
// is stored as the item's outcome.
func (w *worker) validate(it *Item) {
	r := w.r
	if w.feedCtx.Err() != nil {
		return
	}
	start := time.Now()
	err := safeCall(w.itemCtx, it, func(ctx context.Context, it *Item) error { return r.check(ctx, w.plan, it, true) })
	if err == nil || w.interrupted(err) {
		return
	}
	o := outcome{run: r, index: it.Index, rec: itemRecord{State: itemFailed, Op: it.Operation, Attempts: 1, ResourceID: it.ResourceID}}
	o.rec.Code, o.rec.Message, _ = classify(err)
	o.rec.Duration = time.Since(start)
	w.observeItem(it, 1, ItemFailed, err, start)
	r.abortOnFailure(&o)
	r.e.committer.send(&o)
}

// abortOnFailure applies the failure policy to an item that just failed,
// without waiting for its outcome to be stored.
func (r *jobRun) abortOnFailure(o *outcome) {
	if o.rec.State != itemFailed {
		return
	}
	seen := r.failedSeen.Add(1)
	r.mu.Lock()
	opts := r.rec.Options
	failed, total := max(seen, r.rec.Progress.Failed+1), r.rec.Progress.TotalOperations
	r.mu.Unlock()
	if err := failurePolicy(opts, failed, total, []ItemError{o.rec.itemError(o.index)}); err != nil {
		r.stop(stopFail, err)
	}
}

// check loads the item's record when the plan needs it and runs the plan's
// validation when asked.
func (r *jobRun) check(ctx context.Context, p *Plan, it *Item, validate bool) error {
	if p.Resource != nil && it.Record == nil && (p.apply == nil || p.prepare != nil || (validate && p.Validate != nil)) {
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

// runItem runs one item with its retries, continuing from the attempts
// already stored, and hands the outcome to the committer. A failed attempt
// that will be retried is stored too, so the retry budget survives a
// restart. An item interrupted by a stop is left pending, to run again.
func (w *worker) runItem(slot *curSlot, it *Item, stored int) {
	r, e, opts := w.r, w.r.e, w.opts
	if w.feedCtx.Err() != nil {
		return
	}
	start := time.Now()
	slot.setItem(it, start)
	o := outcome{run: r, index: it.Index, rec: itemRecord{Op: it.Operation, ResourceID: it.ResourceID}}
	var end time.Time // when the last attempt ended, if observed
	for attempt := stored + 1; ; attempt++ {
		o.rec.Attempts = attempt
		t0 := start
		if attempt > stored+1 {
			t0 = time.Now()
		}
		err := r.runAttempt(w.itemCtx, time.Duration(opts.ItemTimeout), it, w.attemptFn)
		if err == nil {
			o.rec.State = itemSucceeded
			if w.plan.apply != nil && e.obs != nil {
				// The commit applies the change and may still fail it:
				// it reports the attempt with its real outcome.
				end = time.Now()
				o.observed = &ItemObservation{JobID: it.JobID, OperationIndex: it.Operation, Operation: it.Type, ItemIndex: it.Index,
					Attempt: attempt, Outcome: ItemSucceeded, Duration: end.Sub(t0)}
			} else {
				end = w.observeItem(it, attempt, ItemSucceeded, nil, t0)
			}
			break
		}
		if w.interrupted(err) {
			return // the job is stopping; leave the item pending
		}
		code, msg, retry := classify(err)
		if !retry || attempt >= opts.Retry.Attempts {
			o.rec.State, o.rec.Code, o.rec.Message = itemFailed, code, msg
			end = w.observeItem(it, attempt, ItemFailed, err, t0)
			break
		}
		w.observeItem(it, attempt, ItemRetried, err, t0)
		// Store the attempt before waiting for the next.
		retryRec := o
		retryRec.rec.State, retryRec.rec.Code, retryRec.rec.Message = itemPending, code, msg
		e.committer.send(&retryRec)
		if !r.sleep(w.feedCtx, r.backoff(opts.Retry, attempt, err)) {
			return // paused or stopped during the backoff; run again later
		}
		it.Record, it.prev = nil, nil // read again for the next attempt
	}
	if w.plan.apply != nil && o.rec.State == itemSucceeded {
		o.apply, o.item = w.plan.apply, *it
	}
	if it.Result != nil {
		o.result = it.Result
		o.result.OperationIndex, o.result.Type = it.Operation, it.Type
		// Keep the summary as it will read back from the store.
		if s, err := normalizeJSON(o.result.Summary); err == nil {
			o.result.Summary = s
		}
	}
	if end.IsZero() {
		end = time.Now()
	}
	o.rec.Duration = end.Sub(start)
	if w.plan.Resource == nil {
		o.bit = true
		if w.lastOp && w.left.Add(-1) == 0 {
			o.last = true
		}
	}
	r.abortOnFailure(&o)
	e.committer.send(&o)
}

// observeItem logs a failed attempt and reports every attempt to the
// observer, if there is one. It returns when the attempt ended, as it read
// the clock for the observer, or the zero time when there is none (so an
// unobserved item reads the clock no more than before).
func (w *worker) observeItem(it *Item, attempt int, outcome ItemOutcome, err error, start time.Time) time.Time {
	w.r.e.logItem(it, attempt, outcome, err)
	obs := w.r.e.obs
	if obs == nil {
		return time.Time{}
	}
	end := time.Now()
	o := ItemObservation{JobID: it.JobID, OperationIndex: it.Operation, Operation: it.Type, ItemIndex: it.Index,
		Attempt: attempt, Outcome: outcome, Duration: end.Sub(start)}
	if err != nil {
		code, _, _ := classify(err)
		o.ErrorType = string(code)
		var pe *panicError
		o.Panicked = errors.As(err, &pe)
	}
	obs.ObserveItem(w.itemCtx, o)
	return end
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

// runAttempt runs fn once on it with panic recovery and, when timeout is
// set, a deadline. A handler that ignores its context past the deadline
// is left behind with its own copy of the item: the item fails with
// TIMEOUT_ERROR and the job goes on; Close waits for such attempts.
func (r *jobRun) runAttempt(ctx context.Context, timeout time.Duration, it *Item, fn func(context.Context, *Item) error) error {
	if timeout <= 0 {
		return safeCall(ctx, it, fn)
	}
	e := r.e
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	own := *it // the attempt's own item
	done := make(chan error, 1)
	e.attempts.Add(1)
	go func() {
		defer e.attempts.Done()
		done <- safeCall(actx, &own, fn)
	}()
	timedOut := func() error {
		return &Error{Code: CodeTimeout, Message: "operation timed out after " + formatDuration(timeout)}
	}
	select {
	case err := <-done:
		*it = own // finished in time: what it did to its item counts
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

// panicError is a handler's panic, turned into an item error.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", p.value, p.stack) }

// safeCall runs fn on it, turning a panic into a SYSTEM_ERROR whose
// message keeps the panic's value and a trimmed stack (for the job's
// owner) and whose cause is a *panicError with the whole stack (for the
// log).
func safeCall(ctx context.Context, it *Item, fn func(context.Context, *Item) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			err = &Error{Code: CodeSystem, Message: fmt.Sprintf("panic: %v\n%s", v, trimStack(stack)), Err: &panicError{value: v, stack: stack}}
		}
	}()
	return fn(ctx, it)
}

// panicStackFrames and panicStackBytes bound the stack kept in a panicked
// item's error message.
const (
	panicStackFrames = 8
	panicStackBytes  = 2048
)

// trimStack keeps the frames of a debug.Stack from the panicking function
// on: at most panicStackFrames frames, without arguments and program
// counters, within panicStackBytes.
func trimStack(stack []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stack)), "\n")
	// Frames are pairs: "pkg.fn(args)" then "\tfile:line +0x..".
	start := 1
	for i := 1; i+1 < len(lines); i += 2 {
		if strings.HasPrefix(lines[i], "panic(") {
			start = i + 2
			break
		}
	}
	var b strings.Builder
	for i, n := start, 0; i+1 < len(lines) && n < panicStackFrames; i, n = i+2, n+1 {
		fn := lines[i]
		if p := strings.LastIndexByte(fn, '('); p > 0 {
			fn = fn[:p]
		}
		loc := strings.TrimSpace(lines[i+1])
		if p := strings.LastIndex(loc, " +0x"); p > 0 {
			loc = loc[:p]
		}
		if b.Len()+len(fn)+len(loc)+3 > panicStackBytes {
			break
		}
		if n > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(fn + "\n\t" + loc)
	}
	return b.String()
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
		case CodeConflict:
			return CodeConflict, e.Message, false
		}
		return CodeSystem, e.Message, retry
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout, err.Error(), !isPermanent(err)
	}
	return CodeSystem, err.Error(), !isPermanent(err)
}

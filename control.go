package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// SubmitOptions are per-call options of [Engine.Submit]. nil means none.
type SubmitOptions struct {
	// Owner is the principal submitting the job; it is stored on the job.
	Owner string
	// IdempotencyKey, when set, makes a repeated submission with the same
	// key and Owner within [IdempotencyWindow] return the first job instead
	// of creating another.
	IdempotencyKey string
	// TemplateID and ScheduleID record where the job came from.
	TemplateID string
	ScheduleID string
	// Replayed, if not nil, is set to whether Submit returned the job of an
	// earlier submission with the same IdempotencyKey instead of a new one.
	Replayed *bool
}

// IdempotencyWindow is how long an idempotency key keeps returning its job.
const IdempotencyWindow = 24 * time.Hour

const bucketIdempotency = "idempotency"

// Submit validates b and, if it is sound, stores it as a queued job and
// starts it when a slot is free. A rejected batch returns an INVALID_BATCH
// *Error with one detail per problem, and nothing is stored. After
// [Engine.Close] it returns an error matching [ErrClosed].
func (e *Engine) Submit(ctx context.Context, b *Batch, opts *SubmitOptions) (*Job, error) {
	return e.submit(ctx, b, opts, "")
}

// submit is Submit; reverts names the job a revert job reverts ("" for
// any other job), linked both ways in the transaction that stores it.
func (e *Engine) submit(ctx context.Context, b *Batch, opts *SubmitOptions, reverts string) (*Job, error) {
	if b == nil {
		return nil, invalidBatch([]Detail{{Field: "batch", Code: DetailRequired, Message: "a batch is required"}})
	}
	var so SubmitOptions
	if opts != nil {
		so = *opts
	}
	if so.Owner == "" {
		so.Owner = PrincipalFrom(ctx)
	}
	if so.TemplateID == "" {
		so.TemplateID = b.TemplateID
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	ctx, admin := submitter(ctx, so.Owner)
	nb, estimates, err := e.check(ctx, b)
	if err != nil {
		return nil, err
	}
	if reverts == "" {
		var d details
		for i, op := range nb.Operations {
			if op.Type == OpRevert {
				d.add(fmt.Sprintf("operations[%d].type", i), DetailInvalidOperation, "revert operations are made by reverting a job (Engine.Revert, POST /jobs/{job_id}/revert)")
			}
		}
		if err := invalidBatch(d.list); err != nil {
			return nil, err
		}
	}
	var total int64
	for _, o := range estimates {
		total += o.Count
	}
	batchJSON, err := json.Marshal(nb)
	if err != nil {
		return nil, fmt.Errorf("batch: encode batch: %w", err)
	}

	now := e.now().UTC()
	rec := &jobRecord{
		Job: Job{
			Status:      StateQueued,
			Type:        nb.Type,
			Description: nb.Description,
			Owner:       so.Owner,
			TemplateID:  so.TemplateID,
			ScheduleID:  so.ScheduleID,
			CreatedAt:   now,
			Progress:    Progress{TotalOperations: total},
		},
		Ops:            estimates,
		Options:        nb.Options.withDefaults(),
		Admin:          admin && so.Owner != "",
		IdempotencyKey: so.IdempotencyKey,
		UndoRetention:  e.undoRetention(nb.Options),
	}
	if tp, ok := e.obs.(TracePropagator); ok {
		rec.Trace = tp.Inject(ctx)
	}

	// A free slot is taken now: the job is then created and started in the
	// same transaction, and its runner needs no transaction of its own to
	// start.
	e.mu.Lock()
	startNow := !e.closed && e.running < e.opts.MaxRunningJobs && len(e.queue) == 0
	if startNow {
		e.running++
	}
	e.mu.Unlock()
	release := func() {
		if startNow {
			e.mu.Lock()
			e.running--
			e.dispatchLocked()
			e.mu.Unlock()
		}
	}

	var seq uint64
	var existing, started *jobRecord
	err = e.update(func(w *wtx) error {
		existing, started = nil, nil
		idemKey := []byte(so.Owner + "\x00" + so.IdempotencyKey)
		if so.IdempotencyKey != "" {
			if v := w.Get(bucketIdempotency, idemKey); len(v) == 16 {
				at := time.Unix(0, int64(beUint64(v[8:])))
				if now.Sub(at) < IdempotencyWindow {
					prev, err := getJob(w.Tx, beUint64(v[:8]))
					if err == nil {
						existing = prev
						return nil
					}
				}
			}
		}
		var err error
		if seq, err = w.NextSequence(bucketJobs); err != nil {
			return err
		}
		rec.ID = formatJobID(seq)
		if reverts != "" {
			if err := e.linkRevert(w.Tx, reverts, rec); err != nil {
				return err
			}
		}
		if err := putBatch(w.Tx, seq, batchJSON); err != nil {
			return err
		}
		if so.IdempotencyKey != "" {
			v := append(u64key(seq), u64key(uint64(now.UnixNano()))...)
			if err := w.Put(bucketIdempotency, idemKey, v); err != nil {
				return err
			}
		}
		// The job_created event is reported before the runner can report
		// that it started.
		if err := w.transition(nil, "", rec, EventJobCreated, so.Owner); err != nil {
			return err
		}
		// Unless it starts now, or in the slot of a job this commit
		// finishes (takeSpare), it is queued here as soon as it is
		// durable, before the next commit: a job that commit finishes
		// hands its slot on to it.
		if !startNow && !w.takeSpare() {
			queued := newRun(e, seq, rec.clone())
			w.after = append(w.after, func() { e.enqueue(queued) })
			w.wakeOthers = true // another process may have a free slot
			return nil
		}
		started = rec.clone()
		started.Status, started.StartedAt = StateRunning, &now
		return w.transition(nil, StateQueued, started, EventJobStarted, "")
	})
	if err != nil || existing != nil {
		release()
	}
	if err != nil {
		if errors.Is(err, ErrClosed) || CodeOf(err) == CodeInvalidState || errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("batch: store job: %w", err)
	}
	if so.Replayed != nil {
		*so.Replayed = existing != nil
	}
	if existing != nil {
		return e.Job(ctx, existing.ID)
	}
	job := e.view(rec, nil) // the job as submitted
	if started == nil {
		return job, nil // queued by the commit
	}
	r := newRun(e, seq, started.clone())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.running--
		return job, nil // stored; it starts (or resumes) when the store is opened again
	}
	if e.runs[r.id] != nil {
		// On a shared store the claim loop found the job first and runs
		// it: one run per job and process.
		e.running--
		e.notifyLocked()
		return job, nil
	}
	e.runs[r.id] = r
	r.started = true
	e.launchLocked(r)
	e.notifyLocked()
	return job, nil
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Validate checks b as [Engine.Submit] would, without storing or running
// anything: nil, or an INVALID_BATCH *Error with one detail per problem.
func (e *Engine) Validate(ctx context.Context, b *Batch) error {
	if b == nil {
		return invalidBatch([]Detail{{Field: "batch", Code: DetailRequired, Message: "a batch is required"}})
	}
	_, _, err := e.check(ctx, b)
	return err
}

// check validates b and counts its items: each operation's count, an
// estimate for those that select records when they start. It returns the
// batch in its canonical JSON form (numbers as float64), as it will be
// stored.
func (e *Engine) check(ctx context.Context, b *Batch) (*Batch, []opRange, error) {
	nb, plans, err := e.checkPlans(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	ops := make([]opRange, len(plans))
	for i, p := range plans {
		if p.Resource == nil {
			ops[i].Count = p.Count
			continue
		}
		if err := probeWhere(ctx, i, p); err != nil {
			return nil, nil, err
		}
		// Counted here only when an index tells it without reading the
		// records; otherwise the operation's own selection makes the
		// total exact when it starts.
		n, _, err := countSelected(ctx, p.Resource, p.Query)
		if err != nil {
			return nil, nil, fmt.Errorf("batch: counting records: %w", err)
		}
		ops[i].Count = n
	}
	return nb, ops, nil
}

// checkPlans validates b and plans its operations, returning the batch in
// its canonical JSON form.
func (e *Engine) checkPlans(ctx context.Context, b *Batch) (*Batch, []*Plan, error) {
	if b.TemplateID != "" || b.Parameters != nil {
		rendered, err := e.fromTemplate(ctx, b)
		if err != nil {
			return nil, nil, err
		}
		b = rendered
	}
	nb, err := normalizeJSON(*b)
	if err != nil {
		return nil, nil, invalidBatch([]Detail{{Field: "batch", Code: DetailInvalidValue, Message: "batch is not valid JSON: " + err.Error()}})
	}
	if err := e.authorize(ctx, &nb); err != nil {
		return nil, nil, err
	}
	var d details
	if len(nb.Operations) == 0 {
		d.add("operations", DetailRequired, "a batch needs at least one operation")
	}
	nb.Options.check(&d, func(name string) bool { _, ok := e.backoff(name); return ok })
	plans, err := e.plan(ctx, "", &nb, nil)
	if err != nil {
		d.merge("", err)
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, nil, err
	}
	return &nb, plans, nil
}

// recover queues the jobs that were queued or running when the store was
// last used; running ones resume where their stored outcomes stop.
func (e *Engine) recover() error {
	var resume, queued []*jobRun
	err := e.store.View(func(tx Tx) error {
		return forJobsIn(tx, []State{StateRunning, StateQueued}, func(st State, seq uint64) error {
			rec, err := getJob(tx, seq)
			if err != nil {
				return err
			}
			r := newRun(e, seq, rec)
			if st == StateRunning {
				resume = append(resume, r)
			} else {
				queued = append(queued, r)
			}
			r.needs, err = operationTypes(tx, seq)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("batch: reading jobs: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range append(resume, queued...) {
		if e.runs[r.id] != nil {
			continue // the claim loop found it first
		}
		e.runs[r.id] = r
		e.queue = append(e.queue, r)
		if r.rec.Status == StateRunning {
			e.log.Info("resuming job", "job_id", r.id)
		}
	}
	e.dispatchLocked()
	return nil
}

// Job returns the job with id, with its live progress, statistics and first
// item errors. An unknown id returns an error matching [ErrNotFound]. It
// never waits for the writer: running jobs are read from memory.
func (e *Engine) Job(ctx context.Context, id string) (*Job, error) {
	seq, ok := parseJobID(id)
	if !ok {
		return nil, notFound("job", id)
	}
	if r := e.answering(id); r != nil {
		return e.view(r.snapshot(), r), nil
	}
	var rec *jobRecord
	err := e.store.View(func(tx Tx) error {
		var err error
		rec, err = getJob(tx, seq)
		return err
	})
	if err != nil {
		return nil, err
	}
	return e.view(rec, nil), nil
}

// view turns a stored record into the API's Job, adding what is computed
// at each read: percentage, current operation, statistics and the
// estimates. A running job's estimates come from its live rate: the items
// it finished since it last started over the time since; a queued job's
// from the engine's recent per-item time.
func (e *Engine) view(rec *jobRecord, r *jobRun) *Job {
	j := rec.Job
	j.Errors = rec.FirstErrors
	if j.Errors == nil {
		j.Errors = []ItemError{} // the document always shows the list
	}
	if j.Reverts != "" {
		j.Revert = &RevertStats{Restored: rec.Progress.Completed, Skipped: rec.RevertSkipped, Forced: rec.RevertForced}
	}
	j.EstimatedCompletion = nil
	p := &j.Progress
	done := p.Completed + p.Failed
	p.Percentage = min(percentage(done, p.TotalOperations), 100)
	if j.Status == StateCompleted {
		p.Percentage = 100
	}
	if r != nil && j.Status == StateRunning {
		p.CurrentOperation = r.current()
	}
	left := max(p.TotalOperations-done, 0)
	if j.Status == StateQueued {
		per := time.Duration(e.itemEst.Load())
		at := e.now().UTC().Add(per * time.Duration(left) / time.Duration(max(rec.Options.MaxConcurrent, 1)))
		j.EstimatedCompletion = &at
	}
	if j.StartedAt == nil {
		return &j
	}
	st := &Statistics{SuccessRate: successRate(p.Completed, p.Failed)}
	if done > 0 {
		st.AverageOperationTime = Duration(displayRound(time.Duration(rec.ItemNanos / done)))
	}
	if r != nil && j.Status == StateRunning {
		r.mu.Lock()
		segStart, segDone := r.segStart, r.segDone
		r.mu.Unlock()
		if n := done - segDone; n > 0 {
			now := e.now()
			remaining := time.Duration(float64(now.Sub(segStart)) / float64(n) * float64(left))
			st.EstimatedRemainingTime = Duration(displayRound(remaining))
			at := now.UTC().Add(remaining)
			j.EstimatedCompletion = &at
		}
	}
	j.Statistics = st
	return &j
}

// ListOptions select and page jobs for [Engine.Jobs]. nil means the first
// page of all jobs.
type ListOptions struct {
	// State, if set, keeps only jobs in that state.
	State State
	// Owner, if set, keeps only jobs of that principal.
	Owner string
	// Cursor continues a previous page (its NextCursor).
	Cursor string
	// Limit is the page size. 0 means 50; at most 1,000.
	Limit int
}

// JobPage is one page of jobs, newest first.
type JobPage = Page[*Job]

// Jobs lists jobs newest first, filtered and paged by opts. A bad state or
// cursor returns an INVALID_BATCH *Error.
func (e *Engine) Jobs(ctx context.Context, opts *ListOptions) (*JobPage, error) {
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	limit, err := pageLimit(o.Limit)
	if err != nil {
		return nil, err
	}
	if o.State != "" && !o.State.valid() {
		return nil, invalidBatch([]Detail{{Field: "state", Code: DetailInvalidValue, Message: fmt.Sprintf("unknown state %q", o.State)}})
	}
	var fromKey []byte
	if o.Cursor != "" {
		seq, ok := parseJobID(o.Cursor)
		if !ok || seq < 2 {
			return nil, invalidBatch([]Detail{{Field: "cursor", Code: DetailInvalidValue, Message: "invalid cursor"}})
		}
		fromKey = u64key(seq - 1)
	}
	page := &JobPage{Items: []*Job{}}
	var recs []*jobRecord
	err = e.store.View(func(tx Tx) error {
		var derr error
		full := func() bool {
			if len(recs) == limit {
				page.NextCursor = recs[len(recs)-1].ID
				return true
			}
			return false
		}
		if bucket, prefix := jobListIndex(o.State, o.Owner); bucket != "" {
			var from uint64
			if o.Cursor != "" {
				from = beUint64(fromKey)
			}
			err := scanIndexReverse(tx, bucket, prefix, from, func(seq uint64) bool {
				if full() {
					return false
				}
				v := tx.Get(bucketJobs, u64key(seq))
				if v == nil {
					derr = fmt.Errorf("batch: job %d is indexed but not stored", seq)
					return false
				}
				var rec *jobRecord
				if rec, derr = e.listCache.get(seq, v); derr != nil {
					return false
				}
				recs = append(recs, rec)
				return true
			})
			return firstErr(err, derr)
		}
		err := tx.ScanReverse(bucketJobs, fromKey, func(k, v []byte) bool {
			if full() {
				return false
			}
			var rec *jobRecord
			if rec, derr = e.listCache.get(beUint64(k), v); derr != nil {
				return false
			}
			recs = append(recs, rec)
			return true
		})
		return firstErr(err, derr)
	})
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		r := e.answering(rec.ID)
		if r != nil {
			rec = r.snapshot()
		}
		page.Items = append(page.Items, e.view(rec, r))
	}
	return page, nil
}

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return 50, nil
	case n < 0 || n > 1000:
		return 0, invalidBatch([]Detail{{Field: "limit", Code: DetailInvalidValue, Message: "limit must be between 1 and 1000"}})
	}
	return n, nil
}

// pageKeys reads PageOptions for a list keyed by sequence numbers: the
// page size and the key to start at (nil for the first page). The cursor
// is the decimal sequence number of the first entry of the page.
func pageKeys(opts *PageOptions) (int, []byte, error) {
	var o PageOptions
	if opts != nil {
		o = *opts
	}
	limit, err := pageLimit(o.Limit)
	if err != nil || o.Cursor == "" {
		return limit, nil, err
	}
	n, err := strconv.ParseUint(o.Cursor, 10, 64)
	if err != nil || n == 0 {
		return 0, nil, invalidBatch([]Detail{{Field: "cursor", Code: DetailInvalidValue, Message: "invalid cursor"}})
	}
	return limit, u64key(n), nil
}

// PageOptions page a list. nil means the first page of 50.
type PageOptions struct {
	Cursor string
	// Limit is the page size. 0 means 50; at most 1,000.
	Limit int
}

// ErrorPage is one page of a job's failed items, in item order.
type ErrorPage = Page[ItemError]

// JobErrors pages through a job's failed items. An unknown job returns an
// error matching [ErrNotFound].
func (e *Engine) JobErrors(ctx context.Context, id string, opts *PageOptions) (*ErrorPage, error) {
	limit, from, err := pageKeys(opts)
	if err != nil {
		return nil, err
	}
	seq, ok := parseJobID(id)
	if !ok {
		return nil, notFound("job", id)
	}
	var page *ErrorPage
	err = e.store.View(func(tx Tx) error {
		if _, err := getJob(tx, seq); err != nil {
			return err
		}
		page, err = seqPage(tx, errorsBucket(id), from, limit, func(k, v []byte) (ItemError, error) {
			ir, err := decodeItem(v)
			if err != nil {
				return ItemError{}, err
			}
			return ir.itemError(int64(beUint64(k))), nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Wait blocks until the job is completed, failed or cancelled, or ctx
// ends, and returns the job as it then stands (with ctx's error if it ended
// first).
func (e *Engine) Wait(ctx context.Context, id string) (*Job, error) {
	for {
		w := e.watchJob(id)
		job, err := e.Job(ctx, id)
		if err != nil {
			e.unwatchJob(id, w)
			return nil, err
		}
		if job.Status.Final() && !e.live(id) {
			e.unwatchJob(id, w)
			return job, nil // and every subscriber heard its final event
		}
		select {
		case <-w.ch:
			e.unwatchJob(id, w)
		case <-ctx.Done():
			e.unwatchJob(id, w)
			return job, ctx.Err()
		}
	}
}

// answering returns the live run that answers status reads of job id
// from memory, or nil to read the store. On a store several processes
// share, that is a run that stored itself as the job's holder and has not
// been told to stop: a job queued or claimed here may have run elsewhere
// meanwhile, and a stopping run's final state is durable (and seen by the
// other processes) a moment before its memory has it.
func (e *Engine) answering(id string) *jobRun {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r != nil && e.claimer != nil && (!r.holding.Load() || r.fenced.Load() || r.stopping()) {
		return nil
	}
	return r
}

// jobWaiters is the channel the waiters of one job share: closed on the
// job's next change.
type jobWaiters struct {
	ch chan struct{}
	n  int
}

// watchJob returns the channel closed on job id's next change; the caller
// gives it back with unwatchJob.
func (e *Engine) watchJob(id string) *jobWaiters {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	w := e.waiters[id]
	if w == nil {
		w = &jobWaiters{ch: make(chan struct{})}
		e.waiters[id] = w
	}
	w.n++
	return w
}

func (e *Engine) unwatchJob(id string, w *jobWaiters) {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	w.n--
	if w.n == 0 && e.waiters[id] == w {
		delete(e.waiters, id)
	}
}

// wakeJob wakes the waiters of job id, and nobody else.
func (e *Engine) wakeJob(id string) {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	if w := e.waiters[id]; w != nil {
		close(w.ch)
		delete(e.waiters, id)
	}
}

// wakeAllJobs wakes every job's waiters: on a shared store, jobs change in
// other processes too.
func (e *Engine) wakeAllJobs() {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	for id, w := range e.waiters {
		close(w.ch)
		delete(e.waiters, id)
	}
}

// live reports whether the job is still queued or running here (its run
// has not yet reported its end).
func (e *Engine) live(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id] != nil
}

// Pause stops a queued or running job from starting more items. Items in
// flight finish first; Pause waits for them until ctx ends. Another state
// returns an error matching [ErrInvalidState].
func (e *Engine) Pause(ctx context.Context, id string) (*Job, error) {
	return e.control(ctx, id, stopPause, StatePaused, StateQueued, StateRunning)
}

// Cancel stops a queued, running or paused job for good; items in flight
// are cancelled and stay unfinished. A finished job returns an error
// matching [ErrInvalidState].
func (e *Engine) Cancel(ctx context.Context, id string) (*Job, error) {
	return e.control(ctx, id, stopCancel, StateCancelled, StateQueued, StateRunning, StatePaused)
}

package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Shared passes: on a store several processes share (a [Claimer]), the
// items of a big operation (once it selected them) are split into ranges, each leased by the process that runs it.
// The job's holder publishes the pass in the share bucket and runs the
// ranges it can claim from the front; other processes with a free slot
// help from the back. A range whose process died is claimed again once its
// lease expires and runs the items its stored outcomes do not cover. The
// holder's pass ends when every item of the operation has an outcome.
//
// Every commit of a job on a shared store adds its counts to the stored
// record, so the counts of all processes add up.

// bucketShare holds the passes open for help: job id -> shareRecord JSON.
const bucketShare = "share"

// shareRecord is a pass open for help.
type shareRecord struct {
	Op    int   `json:"op"`
	Base  int64 `json:"base"`
	Count int64 `json:"count"`
	Size  int64 `json:"size"`
}

// rangeHold is a range lease a run holds. The outcomes of the items it runs
// in the range are stored only by a commit that finds the lease still held
// under token (see [LeaseTx]); once one is refused, lost stops the run from
// starting more items of the range.
type rangeHold struct {
	name  string
	token uint64
	lost  atomic.Bool
}

// isLost reports whether h is a range lease found lost; nil is no lease.
func (h *rangeHold) isLost() bool { return h != nil && h.lost.Load() }

// rangeHolds are the range leases of a run's shared pass, by the first item
// of each range: the committer finds the lease an outcome ran under.
type rangeHolds struct {
	mu         sync.Mutex
	base, size int64
	m          map[int64]*rangeHold
}

// start begins a shared pass whose ranges start at base, size items apart.
func (h *rangeHolds) start(sh shareRecord) {
	h.mu.Lock()
	h.base, h.size = sh.Base, sh.Size
	h.mu.Unlock()
}

func (h *rangeHolds) add(lo int64, rh *rangeHold) {
	h.mu.Lock()
	if h.m == nil {
		h.m = make(map[int64]*rangeHold)
	}
	h.m[lo] = rh
	h.mu.Unlock()
}

func (h *rangeHolds) remove(lo int64) {
	h.mu.Lock()
	delete(h.m, lo)
	h.mu.Unlock()
}

// of returns the lease item index runs under, or nil.
func (h *rangeHolds) of(index int64) *rangeHold {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) == 0 || index < h.base {
		return nil
	}
	return h.m[h.base+(index-h.base)/h.size*h.size]
}

// msgRangeLost is logged when a commit refuses outcomes whose range lease
// changed hands.
const msgRangeLost = "range lease taken over by another process; outcomes refused"

// errNoLeaseTx refuses a commit on a Claimer whose transactions cannot
// check a lease.
var errNoLeaseTx = errors.New("batch: the store's transactions do not implement LeaseTx: outcomes of leased ranges cannot be fenced")

// lostRanges checks in tx the range lease each of outs ran under, and
// reports the outcomes whose lease changed hands since it was claimed:
// another process runs their items now, and only its outcomes are stored.
// nil when there are none. The leases are checked (and so locked) in name
// order, the order Renew locks them in, so the two never deadlock.
func (e *Engine) lostRanges(tx Tx, outs []outcome) ([]bool, error) {
	var holds []*rangeHold
	var of []*rangeHold // by outcome
	for i := range outs {
		h := outs[i].run.holds.of(outs[i].index)
		if h == nil {
			continue
		}
		if of == nil {
			of = make([]*rangeHold, len(outs))
		}
		of[i] = h
		if !slices.Contains(holds, h) {
			holds = append(holds, h)
		}
	}
	if len(holds) == 0 {
		return nil, nil
	}
	lt, ok := tx.(LeaseTx)
	if !ok {
		return nil, errNoLeaseTx
	}
	slices.SortFunc(holds, func(a, b *rangeHold) int { return strings.Compare(a.name, b.name) })
	var gone []*rangeHold
	for _, h := range holds {
		held, err := lt.HoldsLease(h.name, h.token)
		if err != nil {
			return nil, err
		}
		if !held {
			gone = append(gone, h)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	lost := make([]bool, len(outs))
	for _, h := range gone {
		n, id := 0, ""
		for i := range outs {
			if of[i] == h {
				lost[i] = true
				n, id = n+1, outs[i].run.id
			}
		}
		h.lost.Store(true)
		e.log.Warn(msgRangeLost, "job_id", id, "lease", h.name, "outcomes", n)
	}
	return lost, nil
}

// minShared is the smallest operation whose items are shared.
const minShared = 512

// rangeSize is how many items one leased range of an operation holds.
func rangeSize(count int64) int64 { return max(64, count/64) }

func rangeLease(id string, op int, lo int64) string {
	return id + "/" + strconv.Itoa(op) + "/" + strconv.FormatInt(lo, 10)
}

// shares reports whether the pass over rg is shared with other processes.
func (r *jobRun) shares(rg opRange, validating bool) bool {
	return r.e.claimer != nil && !validating && rg.Count >= minShared
}

// sharedPass runs an index-driven operation's items in leased ranges, with
// the help of other processes, until every item has an outcome.
func (r *jobRun) sharedPass(w *worker, rg opRange, workers int) error {
	e := r.e
	sh := shareRecord{Op: w.op, Base: rg.Base, Count: rg.Count, Size: rangeSize(rg.Count)}
	v, _ := json.Marshal(sh)
	if err := e.committer.do(func(t *wtx) error {
		t.wakeOthers = true // other processes help at once
		return t.Put(bucketShare, []byte(r.id), v)
	}); err != nil {
		return err
	}
	defer func() {
		_ = e.committer.do(func(t *wtx) error { return t.Delete(bucketShare, []byte(r.id)) })
	}()
	n := (rg.Count + sh.Size - 1) / sh.Size
	r.holds.start(sh)
	var held rangesRun
	defer held.release(r)
	for {
		// Taken before the sweep: a helper that finishes during it wakes
		// the wait after it.
		remote := e.remoteWait()
		complete := true
		for k := range n {
			if w.feedCtx.Err() != nil {
				return nil
			}
			ran, whole, err := r.runRangeIfFree(w, sh, k, workers, &held)
			if err != nil {
				return err
			}
			complete = complete && (ran || whole)
		}
		held.release(r)
		if complete {
			break
		}
		select {
		case <-w.feedCtx.Done():
			return nil
		case <-remote: // another process notified: a helper finished its ranges
		case <-time.After(e.opts.ClaimPoll):
		}
	}
	return r.refreshCounts()
}

// runRangeIfFree runs range k of the shared pass when its items are not all
// done and this process can lease it. It reports whether it ran it, and
// whether every item of the range already had an outcome.
// rangesRun are the ranges a run ran in one sweep. Their leases are kept
// until their outcomes are stored, so the next range starts without
// waiting for the commit of the last.
type rangesRun []func()

// release waits until the run's outcomes are stored, then gives up the
// leases.
func (h *rangesRun) release(r *jobRun) {
	if len(*h) == 0 {
		return
	}
	r.pending.Wait()
	for _, f := range *h {
		f()
	}
	*h = (*h)[:0]
}

func (r *jobRun) runRangeIfFree(w *worker, sh shareRecord, k int64, workers int, held *rangesRun) (ran, whole bool, err error) {
	e := r.e
	lo := sh.Base + k*sh.Size
	hi := min(lo+sh.Size, sh.Base+sh.Count)
	prog, whole, err := r.rangeProgress(lo, hi)
	if err != nil || whole {
		return false, whole, err
	}
	name := rangeLease(r.id, sh.Op, lo)
	// A lease is this process's, whichever run took it: a run of this
	// process that holds the range already keeps it to itself.
	e.mu.Lock()
	if e.rangesHeld[name] {
		e.mu.Unlock()
		return false, false, nil
	}
	if e.rangesHeld == nil {
		e.rangesHeld = make(map[string]bool)
	}
	e.rangesHeld[name] = true
	e.mu.Unlock()
	unhold := func() {
		e.mu.Lock()
		delete(e.rangesHeld, name)
		e.mu.Unlock()
	}
	token, ok, err := e.claimer.Claim(w.feedCtx, name)
	if err != nil || !ok {
		unhold()
		return false, false, nil
	}
	hold := &rangeHold{name: name, token: token}
	r.holds.add(lo, hold)
	*held = append(*held, func() {
		r.holds.remove(lo)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.claimer.Release(ctx, name)
		unhold()
	})
	// Read again under the lease: the last holder may have finished more.
	if prog, whole, err = r.rangeProgress(lo, hi); err != nil || whole {
		return false, whole, err
	}
	err = r.runRange(w, hold, sh.Base, lo, hi, prog, workers)
	return err == nil, false, err
}

// runRange runs the items of [lo, hi) that prog does not mark done, until
// the range's lease is found lost.
func (r *jobRun) runRange(w *worker, hold *rangeHold, base, lo, hi int64, prog *progress, workers int) error {
	if w.plan.Resource != nil {
		return r.runStoredRange(w, hold, lo, hi, workers)
	}
	var next atomic.Int64
	next.Store(lo)
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var failErr error
	gate := r.e.paceGate()
	for range min(int64(workers), hi-lo) {
		wg.Go(func() {
			var it Item
			slot := r.newSlot()
			pace := gate.pacer()
			defer pace.release()
			for w.feedCtx.Err() == nil {
				pace.tick()
				index := next.Add(1) - 1
				if index >= hi || hold.isLost() {
					return
				}
				if prog.isDone(index) {
					continue
				}
				var err error
				if it, err = w.plan.Item(index - base); err != nil {
					failMu.Lock()
					failErr = fmt.Errorf("building item %d of operation %d: %w", index-base, w.op, err)
					failMu.Unlock()
					return
				}
				it.Index, it.Operation, it.JobID, it.Type = index, w.op, r.id, w.typ
				w.run(slot, &it, prog.attempts[index])
			}
		})
	}
	wg.Wait()
	return failErr
}

// rangeProgress reads the stored outcomes of items [lo, hi): the done
// bitmap and the items with an outcome or attempts of their own. whole
// reports that every item has an outcome.
func (r *jobRun) rangeProgress(lo, hi int64) (p *progress, whole bool, err error) {
	p = &progress{done: make([]uint64, (hi+63)/64)}
	mark := func(i int64) {
		if i >= lo && i < hi {
			p.done[i/64] |= 1 << (i % 64)
		}
	}
	err = r.e.store.View(func(tx Tx) error {
		err := tx.Scan(r.doneBucket, u64key(uint64(lo/doneBlockItems)), func(k, v []byte) bool {
			if len(k) != 8 || len(v) != doneBlockItems/8 {
				return true
			}
			base := int64(beUint64(k)) * doneBlockItems
			if base >= hi {
				return false
			}
			for i, b := range v {
				for bit := 0; b != 0 && bit < 8; bit++ {
					if b&(1<<bit) != 0 {
						mark(base + int64(i*8+bit))
					}
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		var derr error
		err = tx.Scan(r.itemsBucket, u64key(uint64(lo)), func(k, v []byte) bool {
			if len(k) != 8 || len(v) < 2 {
				return true
			}
			i := int64(beUint64(k))
			if i >= hi {
				return false
			}
			if itemState(v[1]) != itemPending {
				mark(i)
				return true
			}
			ir, err := decodeItem(v)
			if err != nil {
				derr = fmt.Errorf("item %d: %w", i, err)
				return false
			}
			if ir.Attempts > 0 {
				if p.attempts == nil {
					p.attempts = make(map[int64]int)
				}
				p.attempts[i] = ir.Attempts
			}
			return true
		})
		return firstErr(err, derr)
	})
	if err != nil {
		return nil, false, err
	}
	whole = true
	for i := lo; i < hi && whole; i++ {
		whole = p.isDone(i)
	}
	return p, whole, nil
}

// refreshCounts takes in the counts every process stored for the job.
func (r *jobRun) refreshCounts() error {
	var cur *jobRecord
	if err := r.e.store.View(func(tx Tx) error {
		var err error
		cur, err = getJob(tx, r.seq)
		return err
	}); err != nil {
		return err
	}
	r.mu.Lock()
	rec := r.rec.clone()
	takeCounts(rec, cur)
	r.rec = rec
	r.mu.Unlock()
	return nil
}

// takeCounts copies the outcome counts of from into rec.
func takeCounts(rec, from *jobRecord) {
	rec.Progress.Completed, rec.Progress.Failed = from.Progress.Completed, from.Progress.Failed
	rec.ItemNanos = from.ItemNanos
	rec.Results = append([]Result(nil), from.Results...)
	rec.FirstErrors = append([]ItemError(nil), from.FirstErrors...)
}

// sharedDelta returns the job record a commit on a shared store writes:
// the stored counts plus d, with the rest from the holder's memory (the
// stored record for a helper).
func (r *jobRun) sharedDelta(tx Tx, d *jobDelta) (*jobRecord, error) {
	cur, err := getJob(tx, r.seq)
	if err != nil {
		return nil, err
	}
	var rec *jobRecord
	if r.helper {
		rec = cur
	} else {
		r.mu.Lock()
		rec = r.rec.clone()
		r.mu.Unlock()
		takeCounts(rec, cur)
	}
	d.addTo(rec)
	return rec, nil
}

// helpPlan is the plan of the operation of a shared pass this engine
// helped with last. Only the help goroutine (one at a time) uses it.
type helpPlan struct {
	id   string
	sh   shareRecord
	plan *Plan
	typ  string
}

// help runs ranges of passes other processes share, one job at a time,
// while this process has a free slot.
func (e *Engine) help() {
	if !e.helping.CompareAndSwap(false, true) {
		return
	}
	// Close waits for helpWG after it marks the engine closed: no Add
	// may follow.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.helping.Store(false)
		return
	}
	e.helpWG.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.helpWG.Done()
		defer e.helping.Store(false)
		type share struct {
			id string
			sh shareRecord
		}
		var shares []share
		_ = e.store.View(func(tx Tx) error {
			return eachJSON(tx, bucketShare, func(k, _ []byte, sh shareRecord) {
				shares = append(shares, share{string(k), sh})
			})
		})
		// A kept plan whose pass is over holds its job's batch: let it go.
		if hp := e.helpPlan.Load(); hp != nil && !slices.Contains(shares, share{hp.id, hp.sh}) {
			e.helpPlan.Store(nil)
		}
		for _, s := range shares {
			e.mu.Lock()
			free := !e.closed && e.running < e.opts.MaxRunningJobs
			e.mu.Unlock()
			if !free || e.helpCtx.Err() != nil {
				return
			}
			if !e.live(s.id) {
				e.helpJob(s.id, s.sh)
			}
		}
	}()
}

// helpJob runs the free ranges of one shared pass, from the back, until
// none is left or the job stops running.
func (e *Engine) helpJob(id string, sh shareRecord) {
	seq, ok := parseJobID(id)
	if !ok {
		return
	}
	// The plan of the last help is kept for the next help with the same
	// pass: planning a big operation decodes its whole batch, and a helper
	// comes back every poll while the pass lasts.
	hp := e.helpPlan.Load()
	if hp != nil && (hp.id != id || hp.sh != sh) {
		hp = nil
	}
	var rec *jobRecord
	var b *Batch
	if err := e.store.View(func(tx Tx) error {
		var err error
		if rec, err = getJob(tx, seq); err != nil || hp != nil {
			return err
		}
		b, err = getBatch(tx, seq)
		return err
	}); err != nil || rec.Status != StateRunning {
		return
	}
	if hp == nil {
		if sh.Op >= len(b.Operations) {
			return
		}
		plans, err := e.plan(e.helpCtx, id, b, rec.Trace)
		if err != nil {
			return
		}
		hp = &helpPlan{id: id, sh: sh, plan: plans[sh.Op], typ: b.Operations[sh.Op].Type}
		e.helpPlan.Store(hp)
	}
	var watcher sync.WaitGroup
	defer watcher.Wait()
	ctx, cancel := context.WithCancel(e.helpCtx)
	defer cancel()
	r := newRun(e, seq, rec)
	r.helper = true
	r.feedCancel, r.itemCancel = cancel, cancel
	// Stop when the job stops running or the pass closes.
	watcher.Go(func() {
		t := time.NewTicker(e.opts.ClaimPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var open bool
			_ = e.store.View(func(tx Tx) error {
				cur, err := getJob(tx, seq)
				open = err == nil && cur.Status == StateRunning && tx.Get(bucketShare, []byte(id)) != nil
				return nil
			})
			if !open {
				cancel()
				return
			}
		}
	})
	workers := max(rec.Options.MaxConcurrent, 1)
	// A helper's items stop with its feed: Stopping closes when their
	// context ends.
	itemCtx := context.WithValue(ctx, stoppingKey{}, ctx.Done())
	w := &worker{r: r, plan: hp.plan, op: sh.Op, typ: hp.typ, opts: rec.Options, feedCtx: ctx, itemCtx: itemCtx}
	w.lenient = rec.Options.Validation.Mode == ModeLenient
	w.attemptFn = w.attempt
	n := (sh.Count + sh.Size - 1) / sh.Size
	r.holds.start(sh)
	var held rangesRun
	defer func() {
		ran := len(held) > 0
		held.release(r)
		if ran {
			// The holder waits for the ranges this helper held: wake it.
			e.notifyOthers()
		}
	}()
	for k := n - 1; k >= 0 && ctx.Err() == nil; k-- {
		if _, _, err := r.runRangeIfFree(w, sh, k, workers, &held); err != nil {
			e.log.Warn("helping with a shared job", "job_id", id, "error", err)
			return
		}
	}
}

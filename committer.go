package batch

import (
	"encoding/binary"
	"sync"
	"time"
)

// outcome is an item attempt on its way to the store: a finished item, or
// (State pending) a failed attempt that will be tried again, stored so that
// the retry budget survives a restart.
type outcome struct {
	run   *jobRun
	index int64
	rec   itemRecord
	// apply, for built-in changes, runs inside the commit; an error turns
	// the outcome into a failure.
	apply  func(Tx, *Item) error
	item   Item
	result *Result
	// last marks the job's last item: when nothing stops the job, the
	// transaction that stores it also finishes the job.
	last bool
	// bit marks an item of a list operation, which has no pending entry.
	// Every success is stored as one bit of the job's done bitmap instead
	// of a record of its own.
	bit bool
	// observed is the observation of the item's last attempt when the
	// commit decides its outcome (a built-in change, which may still
	// fail in apply): the commit reports it. nil when there is no
	// observer or the attempt was reported already.
	observed *ItemObservation
}

// doneBlock is a done bitmap being written by one commit.
type doneBlock struct {
	run   *jobRun
	block uint64
}

// write is a change to the store other than an item outcome (a
// submission, a transition, a selection, a webhook or schedule change):
// fn runs inside the group commit, and its caller waits until it is
// durable and its events are dispatched.
type write struct {
	fn   func(w *wtx) error
	err  error
	done chan struct{}
}

// jobDelta is what one commit adds to one job.
type jobDelta struct {
	completed, failed int64
	nanos             int64
	// forced and conflicts count a revert job's records.
	forced, conflicts int64
	failures          []ItemError
	results           []Result
	last              bool
	rec               *jobRecord // the record as written
}

// committer is the one goroutine that writes for the engine: item outcomes,
// submissions, transitions and every other engine write ready at the same
// time go into one transaction, flushing when CommitBatchSize outcomes are
// waiting or CommitDelay after the first one arrived. Several jobs' writes
// share an fsync; no item costs one of its own.
//
// Outcomes wait in a slice of values rather than a channel: the committer
// takes a whole batch under one lock and wakes blocked senders once per
// batch, not once per item.
type committer struct {
	e     *Engine
	max   int
	delay time.Duration
	wake  chan struct{} // a send means work is waiting
	full  chan struct{} // a send means a whole batch is waiting
	stop  chan struct{}
	done  chan struct{}

	// mu guards outs, writes, want and stopped; space is signalled when
	// outs drains.
	mu      sync.Mutex
	space   *sync.Cond
	outs    []outcome
	writes  []*write
	stopped bool
	// want, while the loop gathers a batch, is how many waiting callers
	// (writes and jobs' last outcomes) end the gathering; 0 otherwise.
	want int
	// lasts counts the waiting outcomes that are a job's last: their
	// runners wait for them, so the loop does not linger. It is state, not
	// only the full signal, so a signal taken by the loop's first wait is
	// not lost to the linger after it.
	lasts int

	// Owned by the loop goroutine.
	takenOuts   []outcome
	takenWrites []*write
	arena       []byte
	deltas      map[*jobRun]*jobDelta
	blocks      map[doneBlock]*[doneBlockItems / 8]byte
	// handoffs are the runs of this commit that handed their slot on.
	handoffs []*jobRun
	// spare are the runs this commit finishes whose slot no queued job
	// took: a submission later in the same commit starts in it.
	spare      []*jobRun
	freeBlocks []*[doneBlockItems / 8]byte
	share      int64 // the last commit's duration per write, in ns
	// lastCallers and lastTook are the callers the last commit answered
	// (its writes and jobs' last outcomes) and how long it took: what the
	// next batch gathers for.
	lastCallers int
	lastTook    time.Duration
}

func newCommitter(e *Engine) *committer {
	c := &committer{
		e:      e,
		max:    e.opts.CommitBatchSize,
		delay:  e.opts.CommitDelay,
		wake:   make(chan struct{}, 1),
		full:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		deltas: make(map[*jobRun]*jobDelta),
		blocks: make(map[doneBlock]*[doneBlockItems / 8]byte),
	}
	c.space = sync.NewCond(&c.mu)
	return c
}

// send hands an outcome to the committer, waiting while two batches are
// already queued. The job's pending group tracks it until it is stored.
func (c *committer) send(o *outcome) {
	o.run.pending.Add(1)
	c.mu.Lock()
	for len(c.outs) >= 2*c.max && !c.stopped {
		c.space.Wait()
	}
	c.outs = append(c.outs, *o)
	n := len(c.outs)
	if o.last {
		c.lasts++
	}
	// A full batch, a gathered one, or a job's last item (its runner waits
	// for it): no reason to linger.
	flush := n == c.max || c.gatheredLocked() || (o.last && c.want == 0)
	c.mu.Unlock()
	if n == 1 {
		signal(c.wake)
	}
	if flush {
		signal(c.full)
	}
}

// do runs fn in the next group commit and returns once it is durable and
// its events are dispatched, with fn's error or the store's.
func (c *committer) do(fn func(w *wtx) error) error {
	w := &write{fn: fn, done: make(chan struct{})}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return ErrClosed
	}
	c.writes = append(c.writes, w)
	// A caller waits for this write: it ends a linger for outcomes, and a
	// gathering once the batch is complete.
	end := c.want == 0 || c.gatheredLocked()
	c.mu.Unlock()
	signal(c.wake)
	if end {
		signal(c.full)
	}
	<-w.done
	return w.err
}

// gatheredLocked reports whether the batch being gathered is complete:
// as many callers wait as the last commit answered, or a full batch of
// outcomes does. c.mu is held.
func (c *committer) gatheredLocked() bool {
	return c.want > 0 && (len(c.writes)+c.lasts >= c.want || len(c.outs) >= c.max)
}

// signal does a non-blocking send on a one-slot channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// close stops the loop after it has written everything sent so far.
func (c *committer) close() {
	close(c.stop)
	<-c.done
}

// take removes up to max waiting outcomes and every waiting write.
func (c *committer) take() {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.outs), c.max)
	c.takenOuts = append(c.takenOuts[:0], c.outs[:n]...)
	for _, o := range c.takenOuts {
		if o.last {
			c.lasts--
		}
	}
	rest := copy(c.outs, c.outs[n:])
	clear(c.outs[rest:])
	c.outs = c.outs[:rest]
	c.takenWrites = append(c.takenWrites[:0], c.writes...)
	clear(c.writes)
	c.writes = c.writes[:0]
	c.space.Broadcast()
}

// lingers reports whether a batch is worth waiting for: outcomes only,
// some but fewer than a full batch, none of them a job's last.
func (c *committer) lingers() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lasts == 0 && len(c.writes) == 0 && len(c.outs) > 0 && len(c.outs) < c.max
}

func (c *committer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.outs) + len(c.writes)
}

func (c *committer) loop() {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-c.wake:
		case <-c.full:
		case <-c.stop:
			for {
				c.mu.Lock()
				if len(c.outs)+len(c.writes) == 0 {
					c.stopped = true
					c.space.Broadcast()
					c.mu.Unlock()
					return
				}
				c.mu.Unlock()
				c.flush()
			}
		}
		// Linger briefly for a fuller batch of outcomes, unless one is
		// already full or a caller waits for a write; or gather the
		// callers the last commit answered, who are likely on their way
		// back with their next write.
		if c.delay > 0 {
			if c.lingers() {
				c.linger(timer, c.delay, 0)
			} else if wait := min(c.delay, c.lastTook/2); wait > 0 && c.lastCallers > 0 {
				c.linger(timer, wait, c.lastCallers)
			}
		}
		c.flush()
		if c.pending() > 0 {
			signal(c.wake)
		}
	}
}

// linger waits up to wait for a full batch, or, when want is positive,
// until want callers wait (see gatheredLocked).
func (c *committer) linger(timer *time.Timer, wait time.Duration, want int) {
	c.mu.Lock()
	c.want = want
	if want > 0 && c.gatheredLocked() {
		c.want = 0
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	select { // a signal left from the last batch
	case <-c.full:
	default:
	}
	// What that signal may have said, the state says.
	if (want > 0 && c.gathered()) || (want == 0 && !c.lingers()) {
		c.setWant(0)
		return
	}
	timer.Reset(wait)
	select {
	case <-timer.C:
	case <-c.full:
		timer.Stop()
	case <-c.stop:
		timer.Stop()
	}
	c.setWant(0)
}

func (c *committer) gathered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gatheredLocked()
}

func (c *committer) setWant(n int) {
	c.mu.Lock()
	c.want = n
	c.mu.Unlock()
}

// flush takes one batch and commits it.
func (c *committer) flush() {
	c.take()
	if len(c.takenOuts)+len(c.takenWrites) > 0 {
		c.commit(c.takenOuts, c.takenWrites)
	}
	clear(c.takenOuts)
	clear(c.takenWrites)
}

// commit writes a batch of outcomes and writes in one transaction. A write
// whose fn fails is answered with its error and the rest are tried again
// without it.
func (c *committer) commit(outs []outcome, writes []*write) {
	e := c.e
	start := time.Now()
	var done []*wtx
	var outTx *wtx
	for {
		failed := -1
		done = done[:0]
		outTx = &wtx{e: e}
		clear(c.deltas)
		err := e.store.Update(func(tx Tx) error {
			outTx.Tx = tx
			c.arena = c.arena[:0]
			clear(c.deltas)
			c.spare = c.spare[:0]
			c.dropBlocks() // left by an attempt that failed
			if err := c.writeOutcomes(outTx, outs); err != nil {
				return err
			}
			for i, w := range writes {
				wt := &wtx{Tx: tx, e: e}
				if err := w.fn(wt); err != nil {
					failed = i
					return err
				}
				done = append(done, wt)
			}
			return nil
		})
		if err != nil && failed >= 0 {
			w := writes[failed]
			w.err = err
			close(w.done)
			writes = append(writes[:failed:failed], writes[failed+1:]...)
			continue
		}
		if e.obs != nil {
			e.obs.ObserveCommit(CommitObservation{Size: len(outs) + len(writes), Duration: time.Since(start), Err: err})
		}
		if err != nil {
			c.launchHandoffs(false)
			c.failAll(outs, writes, err)
			return
		}
		break
	}
	c.launchHandoffs(true)
	// The transaction is durable: take it into memory, then report it.
	// The next items are charged this commit's share per write, and the
	// next batch gathers for as many callers as this one answered.
	c.lastTook = time.Since(start)
	if n := len(outs) + len(writes); n > 0 {
		c.share = int64(c.lastTook) / int64(n)
	}
	c.lastCallers = len(writes)
	for i := range outs {
		if outs[i].last {
			c.lastCallers++
		}
	}
	for r, d := range c.deltas {
		r.committed(d)
	}
	outTx.applied()
	for _, wt := range done {
		wt.applied()
	}
	for _, w := range writes {
		close(w.done)
	}
	for i := range outs {
		outs[i].run.pending.Done()
	}
}

// failAll answers a batch the store refused: nothing of it is stored, so
// the jobs cannot account for these items. Fail them.
func (c *committer) failAll(outs []outcome, writes []*write, err error) {
	for _, w := range writes {
		w.err = err
		close(w.done)
	}
	seen := map[*jobRun]bool{}
	for i := range outs {
		seen[outs[i].run] = true
	}
	for r := range seen {
		c.e.errorf(r.id, "storing item outcomes failed: %v", err)
		r.stop(stopFail, &Error{Code: CodeExecutionError, Message: "Batch job execution failed",
			Details: []Detail{{Code: string(faultCode(err)), Message: "storing item outcomes failed: " + err.Error()}}})
	}
	for i := range outs {
		outs[i].run.pending.Done()
	}
}

// writeOutcomes stores each outcome with its record change and the jobs'
// counters; a job whose last item is among them and that nothing stops is
// finished in the same transaction.
func (c *committer) writeOutcomes(w *wtx, outs []outcome) error {
	fenced := c.fenced(w.Tx, outs)
	var lost []bool
	if c.e.claimer != nil {
		var err error
		if lost, err = c.e.lostRanges(w.Tx, outs); err != nil {
			return err
		}
	}
	for i := range outs {
		o := &outs[i]
		if fenced != nil && fenced[o.run] || lost != nil && lost[i] {
			continue // another process took the job or the item's range over
		}
		if o.apply != nil && o.rec.State == itemSucceeded {
			if err := o.apply(w.Tx, &o.item); err != nil {
				o.rec.State = itemFailed
				o.rec.Code, o.rec.Message, _ = classify(err)
				c.e.log.Warn("item failed", "job_id", o.run.id, "operation", o.item.Type, "item", o.index,
					"resource_id", o.rec.ResourceID, "attempt", o.rec.Attempts, "outcome", string(ItemFailed), "code", string(o.rec.Code), "err", err.Error())
			}
		}
		if o.observed != nil {
			io := itemObs{r: o.run, o: *o.observed}
			if o.rec.State == itemFailed {
				io.o.Outcome, io.o.ErrorType = ItemFailed, string(o.rec.Code)
			}
			w.items = append(w.items, io)
		}
		var key, v []byte
		if o.rec.State == itemSucceeded {
			// A success is one bit; a record-driven item's pending entry
			// goes with it, so successes leave no record behind.
			c.setDone(o.run, o.index)
			if !o.bit {
				if err := w.Delete(o.run.itemsBucket, u64key(uint64(o.index))); err != nil {
					return err
				}
			}
		} else {
			key, v = c.alloc(uint64(o.index), &o.rec)
			if err := w.Put(o.run.itemsBucket, key, v); err != nil {
				return err
			}
		}
		d := c.deltas[o.run]
		if d == nil {
			d = &jobDelta{}
			c.deltas[o.run] = d
		}
		d.last = d.last || o.last
		if o.item.forced && o.rec.State == itemSucceeded {
			d.forced++
		}
		switch o.rec.State {
		case itemPending: // an attempt to be retried: no count changes
		case itemFailed:
			if err := w.Put(o.run.errorsBucket, key, v); err != nil {
				return err
			}
			d.nanos += int64(o.rec.Duration) + c.share
			d.failed++
			if o.rec.Code == CodeConflict {
				d.conflicts++
			}
			if len(d.failures) < JobErrorsInline {
				d.failures = append(d.failures, o.rec.itemError(o.index))
			}
		default:
			d.nanos += int64(o.rec.Duration) + c.share
			d.completed++
			if o.result != nil {
				d.results = append(d.results, *o.result)
			}
		}
	}
	if err := c.writeDone(w.Tx); err != nil {
		return err
	}
	for r, d := range c.deltas {
		if c.e.claimer != nil {
			rec, err := r.sharedDelta(w.Tx, d)
			if err != nil {
				return err
			}
			d.rec = rec
		} else {
			d.rec = r.withDelta(d)
		}
		if d.last {
			if err := r.finishInCommit(w, d, c); err != nil {
				return err
			}
		}
		if err := putJob(w.Tx, r.seq, d.rec); err != nil {
			return err
		}
	}
	return nil
}

// fenced, on a store several processes share, reports the runs among outs
// whose job another engine took over, and fences them, and the helpers of
// jobs that stopped running or sharing, and stops them; nil otherwise.
func (c *committer) fenced(tx Tx, outs []outcome) map[*jobRun]bool {
	if c.e.claimer == nil {
		return nil
	}
	var fenced map[*jobRun]bool
	seen := map[*jobRun]bool{}
	for i := range outs {
		r := outs[i].run
		if seen[r] {
			continue
		}
		seen[r] = true
		cur, err := getJob(tx, r.seq)
		if r.helper {
			// A helper stores outcomes only while the job runs and its
			// holder still shares the pass.
			if err != nil || cur.Status != StateRunning || tx.Get(bucketShare, []byte(r.id)) == nil {
				if fenced == nil {
					fenced = map[*jobRun]bool{}
				}
				fenced[r] = true
				r.stop(stopCancel, nil)
			}
			continue
		}
		if err == nil && cur.Holder != "" && cur.Holder != c.e.token {
			if fenced == nil {
				fenced = map[*jobRun]bool{}
			}
			fenced[r] = true
			r.fence()
		}
	}
	return fenced
}

// alloc encodes an item record and its key into the transaction's arena:
// bbolt keeps both until the transaction ends, and one arena saves an
// allocation per item.
func (c *committer) alloc(index uint64, rec *itemRecord) (key, v []byte) {
	if cap(c.arena)-len(c.arena) < 64+len(rec.ResourceID)+len(rec.Message)+len(rec.Code) {
		c.arena = make([]byte, 0, max(64<<10, 2*cap(c.arena)))
	}
	k0 := len(c.arena)
	c.arena = binary.BigEndian.AppendUint64(c.arena, index)
	key = c.arena[k0:len(c.arena):len(c.arena)]
	v0 := len(c.arena)
	c.arena = appendItem(c.arena, rec)
	return key, c.arena[v0:len(c.arena):len(c.arena)]
}

// setDone marks item index of r done in this commit's bitmaps.
func (c *committer) setDone(r *jobRun, index int64) {
	k := doneBlock{r, uint64(index / doneBlockItems)}
	b := c.blocks[k]
	if b == nil {
		if n := len(c.freeBlocks); n > 0 {
			b = c.freeBlocks[n-1]
			c.freeBlocks = c.freeBlocks[:n-1]
			clear(b[:])
		} else {
			b = new([doneBlockItems / 8]byte)
		}
		c.blocks[k] = b
	}
	bit := index % doneBlockItems
	b[bit/8] |= 1 << (bit % 8)
}

// writeDone merges this commit's bitmaps into the stored ones.
func (c *committer) writeDone(tx Tx) error {
	defer c.dropBlocks()
	for k, b := range c.blocks {
		if c.arena == nil || cap(c.arena)-len(c.arena) < 8+len(b) {
			c.arena = make([]byte, 0, max(64<<10, 2*cap(c.arena)))
		}
		k0 := len(c.arena)
		c.arena = binary.BigEndian.AppendUint64(c.arena, k.block)
		key := c.arena[k0:len(c.arena):len(c.arena)]
		v0 := len(c.arena)
		c.arena = append(c.arena, b[:]...)
		v := c.arena[v0:len(c.arena):len(c.arena)]
		if old := tx.Get(k.run.doneBucket, key); len(old) == len(v) {
			for i := range v {
				v[i] |= old[i]
			}
		}
		if err := tx.Put(k.run.doneBucket, key, v); err != nil {
			return err
		}
	}
	return nil
}

// dropBlocks forgets this commit's bitmaps, keeping their memory.
func (c *committer) dropBlocks() {
	for k, b := range c.blocks {
		c.freeBlocks = append(c.freeBlocks, b)
		delete(c.blocks, k)
	}
}

// launchHandoffs starts the jobs that took the slots of jobs this commit
// finished; durable says whether the commit that started them held.
func (c *committer) launchHandoffs(durable bool) {
	for _, r := range c.handoffs {
		c.e.launchHandoff(r, durable)
	}
	clear(c.handoffs)
	c.handoffs = c.handoffs[:0]
}

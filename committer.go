package batch

import (
	"sync"
	"time"
)

// outcome is a finished item on its way to the store.
type outcome struct {
	run   *jobRun
	index int64
	rec   itemRecord
	// apply, for built-in changes, runs inside the commit; an error turns
	// the outcome into a failure.
	apply  func(Tx, *Item) error
	item   *Item
	result *Result
}

// jobDelta is what one commit adds to one job.
type jobDelta struct {
	completed, failed int64
	nanos             int64
	failures          []ItemError
	results           []Result
	rec               *jobRecord // the record as written
}

// committer is the one goroutine that writes item outcomes: many per
// transaction, flushing when CommitBatchSize outcomes are waiting or
// CommitDelay after the first one arrived, never one fsync per item.
//
// Outcomes wait in a slice rather than a channel: the committer takes a
// whole batch under one lock and wakes blocked senders once per batch, not
// once per item.
type committer struct {
	e     *Engine
	max   int
	delay time.Duration
	wake  chan struct{} // a send means outcomes are waiting
	full  chan struct{} // a send means a whole batch is waiting
	stop  chan struct{}
	done  chan struct{}

	// mu guards buf and stopped; space is signalled when buf drains.
	mu      sync.Mutex
	space   *sync.Cond
	buf     []*outcome
	stopped bool
}

func newCommitter(e *Engine) *committer {
	c := &committer{
		e:     e,
		max:   e.opts.CommitBatchSize,
		delay: e.opts.CommitDelay,
		wake:  make(chan struct{}, 1),
		full:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	c.space = sync.NewCond(&c.mu)
	return c
}

// send hands an outcome to the committer, waiting while two batches are
// already queued. The job's pending group tracks it until it is stored.
func (c *committer) send(o *outcome) {
	o.run.pending.Add(1)
	c.mu.Lock()
	for len(c.buf) >= 2*c.max && !c.stopped {
		c.space.Wait()
	}
	c.buf = append(c.buf, o)
	n := len(c.buf)
	c.mu.Unlock()
	if n == 1 {
		signal(c.wake)
	}
	if n == c.max {
		signal(c.full)
	}
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

// take removes up to max waiting outcomes.
func (c *committer) take(into []*outcome) []*outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.buf), c.max)
	into = append(into[:0], c.buf[:n]...)
	rest := copy(c.buf, c.buf[n:])
	clear(c.buf[rest:])
	c.buf = c.buf[:rest]
	c.space.Broadcast()
	return into
}

func (c *committer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

func (c *committer) loop() {
	defer close(c.done)
	var batch []*outcome
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-c.wake:
		case <-c.full:
		case <-c.stop:
			c.mu.Lock()
			c.stopped = true
			c.space.Broadcast()
			c.mu.Unlock()
			for c.pending() > 0 {
				batch = c.take(batch)
				c.commit(batch)
			}
			return
		}
		// Linger briefly for a fuller batch, unless one is already full.
		if c.delay > 0 && c.pending() < c.max {
			timer.Reset(c.delay)
			select {
			case <-timer.C:
			case <-c.full:
				timer.Stop()
			case <-c.stop:
				timer.Stop()
			}
		}
		for c.pending() > 0 {
			batch = c.take(batch)
			c.commit(batch)
			clear(batch)
			if c.pending() < c.max {
				break
			}
		}
		if c.pending() > 0 {
			signal(c.wake)
		}
	}
}

// commit writes a batch of outcomes, each record change with its outcome,
// and the jobs' counters, in one transaction.
func (c *committer) commit(batch []*outcome) {
	deltas := make(map[*jobRun]*jobDelta)
	err := c.e.store.Update(func(tx Tx) error {
		clear(deltas)
		for _, o := range batch {
			if o.apply != nil && o.rec.State == itemSucceeded {
				if err := o.apply(tx, o.item); err != nil {
					o.rec.State = itemFailed
					o.rec.Code, o.rec.Message, _ = classify(err)
				}
			}
			v := appendItem(make([]byte, 0, 32+len(o.rec.ResourceID)+len(o.rec.Message)), &o.rec)
			key := u64key(uint64(o.index))
			if err := tx.Put(o.run.itemsBucket, key, v); err != nil {
				return err
			}
			d := deltas[o.run]
			if d == nil {
				d = &jobDelta{}
				deltas[o.run] = d
			}
			d.nanos += int64(o.rec.Duration)
			if o.rec.State == itemFailed {
				if err := tx.Put(o.run.errorsBucket, key, v); err != nil {
					return err
				}
				d.failed++
				if len(d.failures) < JobErrorsInline {
					d.failures = append(d.failures, o.rec.itemError(o.index))
				}
			} else {
				d.completed++
				if o.result != nil {
					d.results = append(d.results, *o.result)
				}
			}
		}
		for r, d := range deltas {
			d.rec = r.withDelta(d)
			if err := putJob(tx, r.seq, d.rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The store refused the write: nothing of this batch is stored, so
		// the jobs cannot account for these items. Fail them.
		for _, o := range batch {
			if _, seen := deltas[o.run]; !seen {
				deltas[o.run] = nil
			}
		}
		for r := range deltas {
			c.e.errorf(r.id, "storing item outcomes failed: %v", err)
			r.stop(stopFail, &Error{Code: CodeExecutionError, Message: "Batch job execution failed",
				Details: []Detail{{Code: string(faultCode(err)), Message: "storing item outcomes failed: " + err.Error()}}})
		}
	} else {
		for r, d := range deltas {
			r.committed(d)
		}
	}
	for _, o := range batch {
		o.run.pending.Done()
	}
}

package batch

import (
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
type committer struct {
	e     *Engine
	in    chan *outcome
	stop  chan struct{}
	done  chan struct{}
	max   int
	delay time.Duration
}

func newCommitter(e *Engine) *committer {
	return &committer{
		e:     e,
		in:    make(chan *outcome, 2*e.opts.CommitBatchSize),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		max:   e.opts.CommitBatchSize,
		delay: e.opts.CommitDelay,
	}
}

// send hands an outcome to the committer. The job's pending group tracks
// it until it is stored.
func (c *committer) send(o *outcome) {
	o.run.pending.Add(1)
	c.in <- o
}

// close stops the loop after it has written everything sent so far.
func (c *committer) close() {
	close(c.stop)
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	batch := make([]*outcome, 0, c.max)
	var timer *time.Timer
	for {
		select {
		case o := <-c.in:
			batch = append(batch, o)
		case <-c.stop:
			for {
				select {
				case o := <-c.in:
					batch = append(batch, o)
					if len(batch) == c.max {
						c.commit(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				c.commit(batch)
			}
			return
		}
		// Gather what else is waiting, and linger briefly for more.
		lingered := c.delay <= 0
	gather:
		for len(batch) < c.max {
			select {
			case o := <-c.in:
				batch = append(batch, o)
				continue
			default:
			}
			if lingered {
				break
			}
			lingered = true
			if timer == nil {
				timer = time.NewTimer(c.delay)
			} else {
				timer.Reset(c.delay)
			}
			for len(batch) < c.max {
				select {
				case o := <-c.in:
					batch = append(batch, o)
					continue
				case <-timer.C:
				case <-c.stop:
					timer.Stop()
				}
				break gather
			}
			timer.Stop()
		}
		c.commit(batch)
		clear(batch)
		batch = batch[:0]
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
			if err := tx.Put(itemsBucket(o.run.id), key, v); err != nil {
				return err
			}
			d := deltas[o.run]
			if d == nil {
				d = &jobDelta{}
				deltas[o.run] = d
			}
			d.nanos += int64(o.rec.Duration)
			if o.rec.State == itemFailed {
				if err := tx.Put(errorsBucket(o.run.id), key, v); err != nil {
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
				Details: []Detail{{Code: string(CodeSystem), Message: "storing item outcomes failed: " + err.Error()}}})
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

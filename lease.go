package batch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Claimer is a [Store] that several engine processes share. The engine
// finds it by a type assertion on the store it was given: a store that is
// not a Claimer (bbolt, memory) belongs to one process, and nothing below
// runs for it.
//
// With a Claimer a job runs only in the process that holds its lease. Each
// process renews its leases while it runs the jobs; the leases of a process
// that dies expire, and the others take its running and queued jobs over,
// resuming each where its committed outcomes stop. Pause and cancel from a
// process that does not run the job are stored as control requests, which
// the running process picks up within [Options.ClaimPoll] (at once when
// the store is also a [Notifier]).
//
// A lease has a fencing token, which stays the same while one process
// holds it and changes whenever it changes hands. The transactions of a
// Claimer's Update implement [LeaseTx]: the engine stores the outcomes of
// items it ran under a lease only in a transaction that finds the lease
// still held under the token it was claimed with.
type Claimer interface {
	// Claim takes the lease named name for this process, or renews it when
	// this process holds it already, and returns its token. It reports
	// false when another process holds a lease that has not expired.
	Claim(ctx context.Context, name string) (token uint64, ok bool, err error)
	// Renew extends every lease this process holds and reports the names
	// it still holds.
	Renew(ctx context.Context) (map[string]bool, error)
	// Release gives up the lease named name, if this process holds it.
	Release(ctx context.Context, name string) error
}

// LeaseTx is a transaction of a [Claimer]'s Update that can check a lease.
type LeaseTx interface {
	// HoldsLease reports whether the lease named name is still held under
	// token, that is, has not changed hands since Claim returned token. It
	// keeps the lease from changing hands until the transaction ends, so
	// what the transaction stores under the lease is stored only while
	// the lease is held.
	HoldsLease(name string, token uint64) (bool, error)
}

// Notifier is an optional interface of a [Claimer] store: it tells the
// other processes sharing the store at once that there is work for them,
// so they need not wait for their next [Options.ClaimPoll].
//
// The engine calls Notify after it committed work other processes should
// see at once: a pass over an operation's items that it shares, a job it
// queued, a pause or cancel asked of the process that runs a job, ranges
// of a shared pass it finished helping with. It calls Notify from a
// goroutine of its own, never inside a transaction, and coalesces calls
// made while one is under way. Every process's claim loop then polls as it
// does on its ticker, which stays the fallback: a notification may be
// lost, delivered late, or delivered to its sender, at no more cost than
// an extra poll.
type Notifier interface {
	// Notify wakes the other processes sharing the store.
	Notify(ctx context.Context) error
	// Notifications receives a value when another process notified. The
	// channel should buffer one value and drop the rest while it is full,
	// so that notifications coalesce. It is never closed while the store
	// is open.
	Notifications() <-chan struct{}
}

// DefaultClaimPoll is how often an engine on a [Claimer] renews its leases,
// looks for jobs nobody runs, and reads control requests.
const DefaultClaimPoll = 250 * time.Millisecond

// bucketControl holds the pause and cancel requests for jobs that run in
// another process: job id -> controlRequest JSON.
const bucketControl = "control"

// controlRequest asks the process running a job to stop it.
type controlRequest struct {
	Reason    stopReason `json:"reason"`
	Principal string     `json:"principal,omitempty"`
}

// claimLoop renews this process's leases, stops the jobs whose lease was
// lost, applies control requests, and takes over jobs nobody runs: every
// ClaimPoll, and at once when another process notifies (see [Notifier]).
func (e *Engine) claimLoop() {
	var notified <-chan struct{}
	if e.notifier != nil {
		notified = e.notifier.Notifications()
	}
	e.every(e.opts.ClaimPoll, false, notified, func(woken bool) {
		if woken {
			e.remoteChanged()
		}
		e.claimTick()
	})
}

// notifyOthers asks the notify loop to wake the other processes sharing
// the store. It does not block; requests made while a notification is
// under way coalesce into one more.
func (e *Engine) notifyOthers() {
	if e.notifier != nil {
		signal(e.othersWake)
	}
}

// notifyLoop sends the notifications notifyOthers asks for, off the
// committer's path.
func (e *Engine) notifyLoop() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.othersWake:
		}
		if err := e.notifier.Notify(e.ctx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("notifying other processes", "error", err)
		}
	}
}

// remoteChanged wakes the waits for another process's progress (a holder
// waiting for its helpers' ranges): another process notified.
func (e *Engine) remoteChanged() {
	e.remoteMu.Lock()
	close(e.remote)
	e.remote = make(chan struct{})
	e.remoteMu.Unlock()
}

// remoteWait returns a channel closed when another process next notifies.
func (e *Engine) remoteWait() <-chan struct{} {
	e.remoteMu.Lock()
	defer e.remoteMu.Unlock()
	return e.remote
}

// claimTick is one poll of the claim loop.
func (e *Engine) claimTick() {
	e.renewClaims()
	e.applyControl()
	e.discover()
	e.help()
	e.notify() // Wait and Progress see jobs other processes change
	e.wakeAllJobs()
	// Deliveries and schedules stored by other processes.
	signal(e.outboxWake)
	signal(e.schedulerWake)
}

// liveClaimed returns the runs that hold their lease.
func (e *Engine) liveClaimed() []*jobRun {
	e.mu.Lock()
	defer e.mu.Unlock()
	var runs []*jobRun
	for _, r := range e.runs {
		if r.exited != nil && r.claimed.Load() {
			runs = append(runs, r)
		}
	}
	return runs
}

func (e *Engine) renewClaims() {
	runs := e.liveClaimed() // before Renew: a lease taken later is not judged
	held, err := e.claimer.Renew(e.ctx)
	if err != nil {
		e.log.Warn("renewing job leases", "error", err)
		return
	}
	for _, r := range runs {
		if !held[r.id] {
			e.log.Warn("job lease lost; another process takes the job over", "job_id", r.id)
			r.fence()
		}
	}
}

// applyControl stops the local jobs that another process asked to pause or
// cancel, and drops requests for jobs that no longer run.
func (e *Engine) applyControl() {
	type req struct {
		id  string
		raw []byte
		req controlRequest
	}
	var reqs []req
	_ = e.store.View(func(tx Tx) error {
		return eachJSON(tx, bucketControl, func(k, v []byte, cr controlRequest) {
			reqs = append(reqs, req{string(k), bytes.Clone(v), cr})
		})
	})
	for _, q := range reqs {
		e.mu.Lock()
		r := e.runs[q.id]
		e.mu.Unlock()
		if r != nil && r.exited != nil && r.claimed.Load() {
			// Take the request out of the store before acting on it: one
			// read before a Resume (which drops it) or before a newer
			// request replaced it is stale and must not stop this run.
			taken := false
			if err := e.committer.do(func(w *wtx) error {
				if taken = bytes.Equal(w.Get(bucketControl, []byte(q.id)), q.raw); !taken {
					return nil
				}
				return w.Delete(bucketControl, []byte(q.id))
			}); err != nil || !taken {
				continue
			}
			r.mu.Lock()
			r.stopBy = q.req.Principal
			r.mu.Unlock()
			r.stop(q.req.Reason, nil)
		} else {
			// Not ours: drop it once the job no longer runs anywhere.
			seq, ok := parseJobID(q.id)
			if !ok {
				continue
			}
			_ = e.committer.do(func(w *wtx) error {
				cur, err := getJob(w.Tx, seq)
				if err == nil && cur.Status == StateRunning {
					return nil
				}
				return w.Delete(bucketControl, []byte(q.id))
			})
		}
	}
}

// discover claims queued and running jobs that no process runs, while
// this process has free slots. It reads the jobs through the jobs_by_state
// index: a poll costs what the running and queued jobs cost, however many
// finished jobs the store keeps.
func (e *Engine) discover() {
	e.mu.Lock()
	free := e.opts.MaxRunningJobs - e.running - len(e.queue)
	closed := e.closed
	e.mu.Unlock()
	if free <= 0 || closed {
		return
	}
	var cands []*jobRun
	_ = e.store.View(func(tx Tx) error {
		return forJobsIn(tx, []State{StateRunning, StateQueued}, func(st State, seq uint64) error {
			if e.live(formatJobID(seq)) {
				return nil
			}
			if rec, err := getJob(tx, seq); err == nil && rec.Status == st {
				cands = append(cands, newRun(e, seq, rec))
			}
			return nil
		})
	})
	for _, r := range cands {
		if free == 0 {
			return
		}
		_, ok, err := e.claimer.Claim(e.ctx, r.id)
		if err != nil || !ok {
			continue
		}
		e.mu.Lock()
		if e.closed || e.runs[r.id] != nil {
			e.mu.Unlock()
			continue
		}
		free--
		if r.rec.Status == StateRunning {
			e.log.Info("taking over job", "job_id", r.id)
		}
		e.runs[r.id] = r
		e.queue = append(e.queue, r)
		e.dispatchLocked()
		e.mu.Unlock()
	}
}

// claimRun takes the lease of a job about to run; false means another
// process runs it.
func (e *Engine) claimRun(r *jobRun) bool {
	if e.claimer == nil {
		return true
	}
	_, ok, err := e.claimer.Claim(e.ctx, r.id)
	if err != nil {
		e.log.Warn("claiming job", "job_id", r.id, "error", err)
		return false
	}
	r.claimed.Store(ok)
	return ok
}

// releaseRun gives up the lease of a job whose run ended here.
func (e *Engine) releaseRun(r *jobRun) {
	if e.claimer == nil || !r.claimed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.claimer.Release(ctx, r.id); err != nil {
		e.log.Warn("releasing job lease", "job_id", r.id, "error", err)
	}
}

// remoteControl waits until a job running in another process left the
// running state after a control request, and returns it.
func (e *Engine) remoteControl(ctx context.Context, id string, to State) (*Job, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		job, err := e.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if job.Status != StateRunning {
			if job.Status != to {
				return nil, invalidState(id, job.Status, to)
			}
			return job, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// The leases of the work one process does for all: the leader of each
// sends the webhook deliveries and fires the schedules.
const (
	leaseOutbox    = "leader:outbox"
	leaseScheduler = "leader:scheduler"
)

// leads reports whether this process does the shared work named name: it
// always does on a store of its own; on a [Claimer] when it holds (or
// takes) the lease, which the claim loop renews.
func (e *Engine) leads(name string) bool {
	_, ok := e.leadToken(name)
	return ok
}

// leadToken is leads with the lease's token (0 on a store of its own).
func (e *Engine) leadToken(name string) (uint64, bool) {
	if e.claimer == nil {
		return 0, true
	}
	token, ok, err := e.claimer.Claim(e.ctx, name)
	return token, err == nil && ok
}

// releaseLeads gives up the leader leases at Close, so another process
// takes the shared work over at once.
func (e *Engine) releaseLeads() {
	if e.claimer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range []string{leaseOutbox, leaseScheduler} {
		_ = e.claimer.Release(ctx, name)
	}
}

// newToken returns a random name for an engine.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

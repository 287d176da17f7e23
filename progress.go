package batch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ProgressInterval is the shortest time between two progress snapshots of
// one job that [Engine.Progress] and [Engine.Watch] deliver: at most about
// four a second. Lifecycle changes are delivered at once.
const ProgressInterval = 250 * time.Millisecond

// JobUpdate is one thing [Engine.Watch] reports about a job: either a
// lifecycle event (Event set: job_started, job_paused, job_resumed,
// job_completed, job_failed, job_cancelled, job_deleted) or a snapshot of
// the job as [Engine.Job] returns it (Job set). Exactly one is set.
type JobUpdate struct {
	Event *Event
	Job   *Job
}

// Progress returns a channel of snapshots of job id, as [Engine.Job]
// returns them, for a progress bar to range over. The first snapshot is
// the job's current state; then one comes whenever its state or counts
// change, at most one per [ProgressInterval]. A slow reader misses
// intermediate snapshots, never the latest: the channel holds only the
// newest one not yet received. It is closed after the snapshot of the
// job's final state, when the job is deleted, when ctx ends or when the
// engine closes.
//
// An unknown id returns an error matching [ErrNotFound]; a closed engine
// [ErrClosed].
func (e *Engine) Progress(ctx context.Context, id string) (<-chan *Job, error) {
	w := &watcher{jobs: make(chan *Job)}
	if err := e.watch(ctx, id, w); err != nil {
		return nil, err
	}
	return w.jobs, nil
}

// Watch is [Engine.Progress] with the job's lifecycle events in between
// the snapshots, in the order they happened: an event comes before every
// snapshot read after it. Events are never dropped; snapshots are
// coalesced as Progress does. The channel closes after the final state's
// event and snapshot, when the job is deleted (after its job_deleted
// event), when ctx ends or when the engine closes.
//
// An unknown id returns an error matching [ErrNotFound]; a closed engine
// [ErrClosed].
func (e *Engine) Watch(ctx context.Context, id string) (<-chan JobUpdate, error) {
	w := &watcher{updates: make(chan JobUpdate)}
	if err := e.watch(ctx, id, w); err != nil {
		return nil, err
	}
	return w.updates, nil
}

// watched reports whether a watcher reports events of type t: the job's
// lifecycle events.
func watched(t EventType) bool {
	switch t {
	case EventJobStarted, EventJobPaused, EventJobResumed, EventJobCompleted, EventJobFailed, EventJobCancelled, EventJobDeleted:
		return true
	}
	return false
}

// watcher follows one job for Progress (jobs set) or Watch (updates set).
type watcher struct {
	e       *Engine
	id      string
	jobs    chan *Job
	updates chan JobUpdate
	wake    chan struct{}

	// mu guards queued.
	mu     sync.Mutex
	queued []Event
}

// onEvent is the watcher's subscription: it queues the job's events and
// wakes the loop. It never blocks.
func (w *watcher) onEvent(ev Event) {
	if ev.JobID != w.id || !watched(ev.Type) {
		return
	}
	w.mu.Lock()
	w.queued = append(w.queued, ev)
	w.mu.Unlock()
	signal(w.wake)
}

func (w *watcher) take() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queued
	w.queued = nil
	return q
}

// watch subscribes w to the job's events, reads the job and starts the
// goroutine that feeds w's channel, closing it when done.
func (e *Engine) watch(ctx context.Context, id string, w *watcher) error {
	w.e, w.id, w.wake = e, id, make(chan struct{}, 1)
	unsubscribe := e.Subscribe(w.onEvent)
	job, err := e.Job(ctx, id)
	if err != nil {
		unsubscribe()
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		unsubscribe()
		return ErrClosed
	}
	e.wg.Add(1) // under e.mu: Close sets closed before it waits
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer w.close()
		defer unsubscribe()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(e.ctx, cancel)
		defer stop()
		w.loop(ctx, job)
	}()
	return nil
}

func (w *watcher) close() {
	if w.jobs != nil {
		close(w.jobs)
	} else {
		close(w.updates)
	}
}

// loop delivers the first snapshot, then events and changed snapshots
// until the job's final state is delivered or the job is gone. Snapshots
// are read when an event arrives and, while the job is queued or running
// (its counts move without events), every ProgressInterval.
func (w *watcher) loop(ctx context.Context, job *Job) {
	var (
		pending = []JobUpdate{{Job: job}} // events, then at most one snapshot, last
		last    = job                     // the newest snapshot read
		sentAt  time.Time                 // when the last snapshot was delivered
		sentJob *Job                      // the last snapshot delivered
		gone    bool                      // the job was deleted
	)
	tick := time.NewTicker(ProgressInterval)
	defer tick.Stop()
	// read queues the events that happened so far, then a snapshot read
	// after them when it differs from the last one delivered. Nothing is
	// read once the final state or the deletion was seen.
	read := func(force bool) {
		if last.Status.Final() || gone {
			return
		}
		for _, ev := range w.take() {
			if w.updates != nil {
				pending = append(pending, JobUpdate{Event: &ev})
			}
			if ev.Type == EventJobDeleted {
				gone = true
			}
			force = true
		}
		if gone || (!force && time.Since(sentAt) < ProgressInterval) {
			return
		}
		j, err := w.e.Job(ctx, w.id)
		if err != nil {
			gone = errors.Is(err, ErrNotFound)
			return
		}
		last = j
		if n := len(pending); n > 0 && pending[n-1].Job != nil {
			pending = pending[:n-1] // not delivered yet: the newest wins
		} else if prev := newest(sentJob, pending); prev != nil && !changed(prev, j) {
			return
		}
		pending = append(pending, JobUpdate{Job: j})
	}
	for {
		if len(pending) == 0 && (gone || (sentJob != nil && sentJob.Status.Final())) {
			return
		}
		var (
			jobs    chan *Job
			updates chan JobUpdate
			next    JobUpdate
		)
		if len(pending) > 0 {
			next = pending[0]
			if w.jobs != nil {
				jobs = w.jobs
			} else {
				updates = w.updates
			}
		}
		select {
		case jobs <- next.Job:
		case updates <- next:
		case <-w.wake:
			read(true)
			continue
		case <-tick.C:
			if last.Status != StatePaused {
				read(false)
			}
			continue
		case <-ctx.Done():
			return
		}
		pending = pending[1:]
		if next.Job != nil {
			sentJob, sentAt = next.Job, time.Now()
		}
	}
}

// newest returns the newest snapshot waiting in pending, else sent.
func newest(sent *Job, pending []JobUpdate) *Job {
	for i := len(pending) - 1; i >= 0; i-- {
		if pending[i].Job != nil {
			return pending[i].Job
		}
	}
	return sent
}

// changed reports whether a snapshot says something new: another state or
// other counts.
func changed(a, b *Job) bool {
	return a.Status != b.Status || a.Progress.TotalOperations != b.Progress.TotalOperations ||
		a.Progress.Completed != b.Progress.Completed || a.Progress.Failed != b.Progress.Failed ||
		len(a.Results) != len(b.Results)
}

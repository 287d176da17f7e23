package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// DefaultSchedulerPoll is how often the scheduler looks at the clock at the
// least, whatever the next due time.
const DefaultSchedulerPoll = 30 * time.Second

// missedAfter is how late a run may start before it counts as missed (and
// follows the schedule's catch-up policy).
const missedAfter = time.Minute

// schedulerLoop fires due schedules: it sleeps until the next due time
// (or Options.SchedulerPoll, or a wake from a schedule change) and runs
// what is due on the engine clock.
func (e *Engine) schedulerLoop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := e.runDueSchedules(e.ctx)
		timer.Reset(wait)
		select {
		case <-e.ctx.Done():
			return
		case <-e.schedulerWake:
		case <-timer.C:
		}
	}
}

// runDueSchedules fires every due schedule and returns how long to sleep.
func (e *Engine) runDueSchedules(ctx context.Context) time.Duration {
	if !e.leads(leaseScheduler) {
		return e.opts.SchedulerPoll // the claim loop wakes us to try again
	}
	now := e.now()
	var due []*Schedule
	var soonest time.Time
	_ = e.store.View(func(tx Tx) error {
		return tx.Scan(bucketSchedules, nil, func(_, v []byte) bool {
			var s Schedule
			if json.Unmarshal(v, &s) != nil || s.Status != ScheduleActive || s.NextRunAt == nil {
				return true
			}
			if !s.NextRunAt.After(now) {
				due = append(due, &s)
			} else if soonest.IsZero() || s.NextRunAt.Before(soonest) {
				soonest = *s.NextRunAt
			}
			return true
		})
	})
	for _, s := range due {
		if ctx.Err() != nil {
			return time.Second
		}
		if err := e.fire(ctx, s, now); err != nil {
			e.log.Error("scheduler: firing failed", "schedule_id", s.ID, "err", err)
		}
	}
	wait := e.opts.SchedulerPoll
	if !soonest.IsZero() {
		wait = min(wait, soonest.Sub(now))
	}
	return max(wait, time.Millisecond)
}

// fire handles a schedule whose next run is due: it submits one job for
// the due time (or, for runs missed while the engine was down, follows the
// catch-up policy), skips a run that would overlap an unfinished previous
// job, and moves next_run_at past now. The job's idempotency key is the
// schedule and due time, so a crash between the submission and the
// schedule's update cannot start a second job for the same due time.
func (e *Engine) fire(ctx context.Context, s *Schedule, now time.Time) error {
	p, err := compileTiming(s.Timing)
	if err != nil {
		return err
	}
	first := *s.NextRunAt
	last := first
	count := 1
	for count < 10000 {
		n, err := p.next(last)
		if err != nil {
			return err
		}
		if n.IsZero() || n.After(now) {
			break
		}
		last = n
		count++
	}
	var fireAt *time.Time
	switch {
	case count == 1 && now.Sub(first) <= missedAfter:
		fireAt = &first
	case s.CatchUp == CatchUpRunOnce:
		fireAt = &last
	default:
		e.log.Info("scheduler: skipping missed runs", "schedule_id", s.ID, "missed", count)
	}
	var job *Job
	if fireAt != nil && s.Overlap != OverlapAllow && s.LastJobID != "" {
		if prev, err := e.Job(ctx, s.LastJobID); err == nil && !prev.Status.Final() {
			e.log.Info("scheduler: skipping a run that would overlap the previous job", "schedule_id", s.ID, "job_id", prev.ID)
			fireAt = nil
		}
	}
	fired := ScheduleFireObservation{ScheduleID: s.ID, Due: first, Outcome: "skipped"}
	if fireAt != nil {
		pctx := WithPrincipal(ctx, s.Owner)
		if s.RunsAsAdmin {
			pctx = WithAdmin(pctx)
		}
		b := s.Batch
		fired.Due = *fireAt
		job, err = e.Submit(pctx, &b, &SubmitOptions{Owner: s.Owner, ScheduleID: s.ID, IdempotencyKey: fmt.Sprintf("schedule:%s:%d", s.ID, fireAt.Unix())})
		if err != nil {
			e.log.Error("scheduler: the schedule's batch was refused", "schedule_id", s.ID, "err", err)
			fired.Outcome, fired.Err = "failed", err
		} else {
			fired.Outcome, fired.JobID = "submitted", job.ID
		}
	}
	if o := e.obs; o != nil {
		defer o.ObserveScheduleFire(fired)
	}
	next, err := p.next(maxTime(last, now))
	if err != nil {
		return err
	}
	seq, _ := parseObjectID(s.ID, scheduleIDPrefix)
	err = e.update(func(tx *wtx) error {
		var cur Schedule
		if err := getObject(tx, bucketSchedules, seq, "schedule", s.ID, &cur); err != nil {
			return err
		}
		if cur.Status != ScheduleActive || cur.NextRunAt == nil || !cur.NextRunAt.Equal(first) {
			if job == nil {
				return nil // changed meanwhile: the change decides
			}
			return tx.event(Event{Type: EventScheduleFired, Principal: s.Owner, JobID: job.ID, ObjectID: s.ID, Job: job})
		}
		cur.NextRunAt = nil
		if !next.IsZero() {
			cur.NextRunAt = &next
		}
		if job != nil {
			at := fireAt.UTC()
			cur.LastRunAt, cur.LastJobID = &at, job.ID
		}
		if err := putObject(tx, bucketSchedules, seq, &cur); err != nil {
			return err
		}
		if job == nil {
			return nil
		}
		return tx.event(Event{Type: EventScheduleFired, Principal: s.Owner, JobID: job.ID, ObjectID: s.ID, Job: job})
	})
	return err
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

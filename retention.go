package batch

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// DefaultRetention is how long finished jobs are kept when
// [Options].Retention is 0.
const DefaultRetention = 30 * 24 * time.Hour

// retentionInterval is how often the retention loop sweeps.
const retentionInterval = time.Hour

// CleanupStats counts what [Engine.Cleanup] removed.
type CleanupStats struct {
	// Jobs is the number of finished jobs deleted, with their items,
	// errors and artifacts.
	Jobs int64 `json:"jobs"`
	// Deliveries is the number of webhook deliveries deleted.
	Deliveries int64 `json:"deliveries"`
	// AuditEvents is the number of audit log entries deleted.
	AuditEvents int64 `json:"audit_events"`
}

// Cleanup deletes what finished before cutoff: completed, failed and
// cancelled jobs whose finished_at is earlier (with their items, errors and
// artifacts, as [Engine.Delete] does), webhook deliveries, the audit trails
// of jobs deleted before cutoff and audit log entries older than it.
// Queued, running and paused jobs are never touched. The cleanup operation
// and the retention loop (see [Options].Retention) both call it. It stops
// early, with ctx's error, when ctx ends.
func (e *Engine) Cleanup(ctx context.Context, cutoff time.Time) (*CleanupStats, error) {
	st := &CleanupStats{}
	ids, err := e.finishedBefore(cutoff, "")
	if err != nil {
		return st, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		switch err := e.Delete(ctx, id); {
		case err == nil:
			st.Jobs++
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		default:
			return st, err
		}
	}
	n, err := e.cleanupDeliveries(ctx, cutoff)
	st.Deliveries += n
	if err != nil {
		return st, err
	}
	n, err = e.pruneAudit(ctx, cutoff)
	st.AuditEvents += n
	return st, err
}

// finishedBefore lists the jobs in a final state that finished before
// cutoff: those of owner, or everyone's when owner is "".
func (e *Engine) finishedBefore(cutoff time.Time, owner string) ([]string, error) {
	var ids []string
	err := e.store.View(func(tx Tx) error {
		var derr error
		err := tx.Scan(bucketJobs, nil, func(_, v []byte) bool {
			var rec struct {
				ID         string     `json:"job_id"`
				Owner      string     `json:"owner"`
				Status     State      `json:"status"`
				FinishedAt *time.Time `json:"finished_at"`
			}
			if derr = json.Unmarshal(v, &rec); derr != nil {
				return false
			}
			if rec.Status.Final() && rec.FinishedAt != nil && rec.FinishedAt.Before(cutoff) && (owner == "" || rec.Owner == owner) {
				ids = append(ids, rec.ID)
			}
			return true
		})
		return firstErr(err, derr)
	})
	return ids, err
}

// startRetention starts the loop that runs [Engine.Cleanup] for finished
// jobs older than [Options].Retention: shortly after the engine opens and
// then every hour. It stops when the engine closes.
func (e *Engine) startRetention() {
	keep := e.opts.Retention
	if keep < 0 {
		return
	}
	if keep == 0 {
		keep = DefaultRetention
	}
	e.wg.Go(func() { e.retentionLoop(keep) })
}

func (e *Engine) retentionLoop(keep time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.sweep(keep)
		t.Reset(retentionInterval)
	}
}

// sweep is one pass of the retention loop.
func (e *Engine) sweep(keep time.Duration) {
	st, err := e.Cleanup(e.ctx, e.now().Add(-keep))
	switch {
	case err != nil && e.ctx.Err() == nil:
		e.log.Error("retention sweep failed", "error", err)
	case st.Jobs+st.Deliveries+st.AuditEvents > 0:
		e.log.Info("retention sweep", "jobs", st.Jobs, "deliveries", st.Deliveries, "audit_events", st.AuditEvents)
	}
}

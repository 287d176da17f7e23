package batch

import (
	"context"
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
	// BeforeImages is the number of jobs whose before-images were removed
	// because their undo_retention ended (whatever the cutoff).
	BeforeImages int64 `json:"before_images"`
	// Uploads is the number of uploads deleted: those created before the
	// cutoff that no unfinished job imports.
	Uploads int64 `json:"uploads"`
}

// Cleanup deletes what finished before cutoff: completed, failed and
// cancelled jobs whose finished_at is earlier (with their items, errors,
// artifacts and audit trails, in transactions of a few hundred jobs that
// read only those jobs), webhook deliveries, the audit trails of jobs
// deleted before cutoff, audit log entries older than it and uploads made
// before it that no unfinished job imports. Jobs it deletes get no
// job_deleted entry. Queued, running and paused jobs are never touched.
// The cleanup operation and the retention loop (see [Options].Retention)
// both call it. It stops early, with ctx's error, when ctx ends.
func (e *Engine) Cleanup(ctx context.Context, cutoff time.Time) (*CleanupStats, error) {
	st := &CleanupStats{}
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		jobs, audit, more, err := e.cleanupJobs(cutoff)
		st.Jobs += jobs
		st.AuditEvents += audit
		if err != nil || !more {
			if err != nil {
				return st, err
			}
			break
		}
	}
	n, err := e.pruneUndo(ctx, e.now())
	st.BeforeImages += n
	if err != nil {
		return st, err
	}
	n, err = e.cleanupUploads(ctx, cutoff)
	st.Uploads += n
	if err != nil {
		return st, err
	}
	n, err = e.cleanupDeliveries(ctx, cutoff)
	st.Deliveries += n
	if err != nil {
		return st, err
	}
	n, err = e.pruneAudit(ctx, cutoff)
	st.AuditEvents += n
	return st, err
}

// countEach calls drop for each of items and returns how many it says it
// dropped. It stops early, with the error, when ctx ends or drop fails.
func countEach[T any](ctx context.Context, items []T, drop func(T) (bool, error)) (int64, error) {
	var n int64
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		dropped, err := drop(it)
		if err != nil {
			return n, err
		}
		if dropped {
			n++
		}
	}
	return n, nil
}

// cleanupChunk is how many finished jobs one cleanup transaction deletes:
// enough to amortize the commit, few enough that the writer is never held
// for long (a few tens of milliseconds for one-item jobs).
const cleanupChunk = 500

// cleanupBudget bounds the records one cleanup transaction deletes: jobs
// with many failed items take a transaction with fewer jobs.
const cleanupBudget = 50_000

// cleanupJobs deletes up to cleanupChunk jobs that finished before cutoff,
// with their audit trails, in one transaction, and reports how many jobs
// and audit entries went and whether more may be left. Cleaned jobs leave
// no job_deleted entry: retention is not a principal's deletion, and a
// trail entry per job would grow the file while it is being cleaned.
func (e *Engine) cleanupJobs(cutoff time.Time) (jobs, audit int64, more bool, err error) {
	var seqs []uint64
	err = e.store.View(func(tx Tx) error {
		return finishedJobsBefore(tx, cutoff, func(seq uint64) bool {
			if len(seqs) == cleanupChunk {
				more = true
				return false
			}
			seqs = append(seqs, seq)
			return true
		})
	})
	if err != nil || len(seqs) == 0 {
		return 0, 0, false, err
	}
	err = e.update(func(w *wtx) error {
		jobs, audit = 0, 0
		var cost int64
		for _, seq := range seqs {
			if cost >= cleanupBudget {
				more = true // the rest in the next transaction
				break
			}
			id := formatJobID(seq)
			if e.live(id) {
				continue
			}
			rec, err := getJob(w.Tx, seq)
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if !rec.Status.Final() || rec.FinishedAt == nil || !rec.FinishedAt.Before(cutoff) {
				continue
			}
			cost += 1 + rec.Progress.Failed // failed items are what a job keeps records of
			if err := dropJob(w.Tx, seq, rec); err != nil {
				return err
			}
			trail := auditBucket(id)
			if err := w.Scan(trail, nil, func(_, _ []byte) bool { audit++; return true }); err != nil {
				return err
			}
			if err := w.DeleteBucket(trail); err != nil {
				return err
			}
			jobs++
		}
		return nil
	})
	if err != nil {
		return 0, 0, false, err
	}
	return jobs, audit, more, nil
}

// finishedBefore lists the jobs in a final state that finished before
// cutoff: those of owner, or everyone's when owner is "". It reads the
// finish-time index, not the jobs.
func (e *Engine) finishedBefore(cutoff time.Time, owner string) ([]string, error) {
	var ids []string
	err := e.store.View(func(tx Tx) error {
		return finishedJobsBefore(tx, cutoff, func(seq uint64) bool {
			if owner != "" {
				ie, ok := decodeIndexEntry(tx.Get(bucketJobIndex, u64key(seq)))
				if !ok || ie.owner != owner {
					return true
				}
			}
			ids = append(ids, formatJobID(seq))
			return true
		})
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
	e.every(retentionInterval, true, nil, func(bool) { e.sweep(keep) })
}

// sweep is one pass of the retention loop.
func (e *Engine) sweep(keep time.Duration) {
	st, err := e.Cleanup(e.ctx, e.now().Add(-keep))
	switch {
	case err != nil && e.ctx.Err() == nil:
		e.log.Error("retention sweep failed", "error", err)
	case st.Jobs+st.Deliveries+st.AuditEvents+st.BeforeImages+st.Uploads > 0:
		e.log.Info("retention sweep", "jobs", st.Jobs, "deliveries", st.Deliveries, "audit_events", st.AuditEvents, "before_images", st.BeforeImages, "uploads", st.Uploads)
	}
}

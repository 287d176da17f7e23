package batch

import (
	"context"
	"encoding/json"
	"time"
)

// The audit log keeps every event the engine reports (job, template,
// schedule and webhook changes): what happened, when, and which principal
// did it. Each entry is written in the same transaction as the change it
// describes (see outbox.go), so a crash can lose neither.
//
//	audit_log         sequence -> AuditEvent JSON, every event in order
//	audit/<job_id>    sequence -> AuditEvent JSON, the job's trail
//	audit_deleted     deletion time (8 bytes, Unix ns) + job id -> 1
//
// Deleting a job keeps its trail, ending with job_deleted, so that who
// deleted it stays on record; [Engine.Cleanup] drops the trail once the
// deletion is older than its cutoff, and drops audit_log entries older than
// the cutoff as well. The finished jobs Cleanup itself removes go with
// their trails (all older than the cutoff) and add no job_deleted entry.
const (
	bucketAuditLog     = "audit_log"
	bucketAuditDeleted = "audit_deleted"
)

func auditBucket(jobID string) string { return "audit/" + jobID }

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	Type EventType `json:"type"`
	At   time.Time `json:"at"`
	// Principal is who made the change ("" for the engine itself).
	Principal string `json:"principal"`
	JobID     string `json:"job_id,omitempty"`
	// Details says more: for job events the job's status, owner and
	// counts (and its error when it failed); for other events their other
	// fields.
	Details map[string]any `json:"details,omitempty"`
}

// EventPage is one page of audit events, oldest first.
type EventPage = Page[AuditEvent]

// auditEventOf turns an event into its audit entry.
func auditEventOf(ev Event) AuditEvent {
	ae := AuditEvent{Type: ev.Type, At: ev.At.UTC(), Principal: ev.Principal, JobID: ev.JobID}
	details := map[string]any{}
	if ev.ObjectID != "" {
		details["object_id"] = ev.ObjectID
	}
	if j := ev.Job; j != nil {
		details["status"] = j.Status
		if j.Owner != "" {
			details["owner"] = j.Owner
		}
		if j.Type != "" {
			details["batch_type"] = j.Type
		}
		details["total_operations"] = j.Progress.TotalOperations
		details["completed"] = j.Progress.Completed
		details["failed"] = j.Progress.Failed
		if j.Error != nil {
			details["error"] = j.Error.Message
		}
	}
	if len(details) > 0 {
		ae.Details = details
	}
	return ae
}

// JobEvents pages through the audit trail of job id, oldest first. The
// trail outlives the job: it can still be read after the job is deleted,
// until [Engine.Cleanup] drops it. A job that never existed returns an
// error matching [ErrNotFound]; a bad cursor or limit an INVALID_BATCH
// *Error.
func (e *Engine) JobEvents(ctx context.Context, id string, opts *PageOptions) (*EventPage, error) {
	seq, ok := parseJobID(id)
	if !ok {
		return nil, notFound("job", id)
	}
	page, err := viewPage[AuditEvent](e.store, auditBucket(id), opts)
	if err != nil || len(page.Items) > 0 || (opts != nil && opts.Cursor != "") {
		return page, err
	}
	err = e.store.View(func(tx Tx) error {
		_, err := getJob(tx, seq)
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// AuditEvents pages through the whole audit log, oldest first: every job,
// template, schedule and webhook change. A bad cursor or limit returns an
// INVALID_BATCH *Error.
func (e *Engine) AuditEvents(ctx context.Context, opts *PageOptions) (*EventPage, error) {
	return viewPage[AuditEvent](e.store, bucketAuditLog, opts)
}

// auditPruneChunk is how many audit entries one pruning transaction
// deletes.
const auditPruneChunk = 5000

// pruneAudit drops the trails of jobs deleted before cutoff and the audit
// log entries older than cutoff, and returns how many entries went.
func (e *Engine) pruneAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	limit := uint64(cutoff.UnixNano())
	if cutoff.UnixNano() < 0 {
		limit = 0
	}
	// Trails of deleted jobs.
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var keys [][]byte
		if err := e.store.View(func(tx Tx) error {
			return tx.Scan(bucketAuditDeleted, nil, func(k, _ []byte) bool {
				if len(k) < 8 || beUint64(k) >= limit || len(keys) == auditPruneChunk {
					return false
				}
				keys = append(keys, append([]byte(nil), k...))
				return true
			})
		}); err != nil {
			return n, err
		}
		if len(keys) == 0 {
			break
		}
		var dropped int64
		if err := e.store.Update(func(tx Tx) error {
			dropped = 0
			for _, k := range keys {
				bucket := auditBucket(string(k[8:]))
				if err := tx.Scan(bucket, nil, func(_, _ []byte) bool { dropped++; return true }); err != nil {
					return err
				}
				if err := tx.DeleteBucket(bucket); err != nil {
					return err
				}
				if err := tx.Delete(bucketAuditDeleted, k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return n, err
		}
		n += dropped
	}
	// The global log, oldest first.
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var keys [][]byte
		done := true
		err := e.store.View(func(tx Tx) error {
			var derr error
			err := tx.Scan(bucketAuditLog, nil, func(k, v []byte) bool {
				var ae struct {
					At time.Time `json:"at"`
				}
				if derr = json.Unmarshal(v, &ae); derr != nil || !ae.At.Before(cutoff) {
					return false
				}
				if len(keys) == auditPruneChunk {
					done = false
					return false
				}
				keys = append(keys, append([]byte(nil), k...))
				return true
			})
			return firstErr(err, derr)
		})
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := e.store.Update(func(tx Tx) error { return deleteKeys(tx, bucketAuditLog, keys) }); err != nil {
				return n, err
			}
			n += int64(len(keys))
		}
		if done {
			return n, nil
		}
	}
}

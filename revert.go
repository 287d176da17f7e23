package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RevertOptions are the options of [Engine.Revert]. nil means none.
type RevertOptions struct {
	// Force puts back records that were changed since the job changed
	// them; without it such a record's item fails with CONFLICT and the
	// record is left as it is.
	Force bool `json:"force,omitempty"`
}

// undoScanPage is how many before-image keys one read transaction of a
// revert's listing reads.
const undoScanPage = 512

// Revert creates a job that puts every built-in collection record that
// finished job id changed (create, update, delete, import, calculate,
// restore) back as it was before that job, undoing its operations in
// reverse order, and returns it. The two jobs name each other (reverts,
// reverted_by). A record changed since by anyone else fails its item with
// CONFLICT, naming the later change, unless opts.Force is set; a record
// already as it was before is left alone and counts as restored. The new
// job's revert field counts the records restored, skipped and forced.
//
// A job can be reverted again while its last revert left records behind
// (conflicts, failures, a cancel): records already put back count as
// restored. A job that is not finished, kept no before-images
// (options.undo_retention "0s"), is past its retention, is itself a
// revert, changed no built-in records, or was reverted completely returns
// an INVALID_STATE *Error saying which.
func (e *Engine) Revert(ctx context.Context, id string, opts *RevertOptions) (*Job, error) {
	b, owner, err := e.revertBatch(ctx, id, opts)
	if err != nil {
		return nil, err
	}
	return e.submit(ctx, b, &SubmitOptions{Owner: owner}, id)
}

// DryRunRevert reports what [Engine.Revert] of job id would do now,
// without storing or changing anything: per operation it undoes (in the
// order it would), how many records it puts back, up to [DryRunSamples] of
// them as they are and as they would be again, and the conflicts it would
// report (none with opts.Force). It refuses what Revert refuses.
func (e *Engine) DryRunRevert(ctx context.Context, id string, opts *RevertOptions) (*DryRun, error) {
	b, owner, err := e.revertBatch(ctx, id, opts)
	if err != nil {
		return nil, err
	}
	ctx, _ = submitter(ctx, owner)
	return e.dryRun(ctx, b, true)
}

// revertBatch checks that job id can be reverted and returns the batch of
// its revert job and the job's owner. Each revert operation names the
// resource of the operation it undoes, for [Options].Authorize; undoing an
// administrator-only operation (restore) needs an administrator. opts may
// be nil.
func (e *Engine) revertBatch(ctx context.Context, id string, opts *RevertOptions) (*Batch, string, error) {
	force := opts != nil && opts.Force
	seq, ok := parseJobID(id)
	if !ok {
		return nil, "", notFound("job", id)
	}
	var rec *jobRecord
	var orig *Batch
	var ops []int
	err := e.store.View(func(tx Tx) error {
		var err error
		if rec, err = getJob(tx, seq); err != nil {
			return err
		}
		if orig, err = getBatch(tx, seq); err != nil {
			return err
		}
		if err := e.revertable(tx, rec); err != nil {
			return err
		}
		return tx.Scan(undoBucket(id), nil, func(k, _ []byte) bool {
			if _, _, op, ok := parseUndoKey(k); ok && !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
			return true
		})
	})
	if err != nil {
		return nil, "", err
	}
	if len(ops) == 0 {
		return nil, "", revertRefused(id, "it changed no built-in collection records")
	}
	slices.Sort(ops)
	slices.Reverse(ops)
	_, admin := submitter(ctx, rec.Owner)
	b := &Batch{Type: OpRevert, Description: "Revert of job " + id}
	for _, op := range ops {
		var spec OperationSpec
		if op < len(orig.Operations) {
			spec = orig.Operations[op]
		}
		if adminOnly[spec.Type] && !admin {
			return nil, "", &Error{Code: CodeForbidden, Message: fmt.Sprintf("job %s: undoing its %s acts on the whole store and needs an administrator", id, spec.Type)}
		}
		b.Operations = append(b.Operations, OperationSpec{
			Type: OpRevert, Resource: spec.Resource, Source: &Source{JobID: id},
			Params: map[string]any{"operation": op, "force": force},
		})
	}
	return b, rec.Owner, nil
}

func revertRefused(id, why string) error {
	return &Error{Code: CodeInvalidState, Message: fmt.Sprintf("job %s cannot be reverted: %s", id, why)}
}

// revertable says why rec cannot be reverted now, or nil.
func (e *Engine) revertable(tx Tx, rec *jobRecord) error {
	id := rec.ID
	switch {
	case !rec.Status.Final():
		return revertRefused(id, fmt.Sprintf("it is %s; only a completed, failed or cancelled job can be", rec.Status))
	case rec.Reverts != "":
		return revertRefused(id, "it is itself the revert of job "+rec.Reverts)
	case rec.UndoRetention <= 0:
		return revertRefused(id, "it kept no before-images (undo_retention 0)")
	case rec.UndoPurged || undoExpired(rec, e.now()):
		until := rec.FinishedAt.Add(time.Duration(rec.UndoRetention)).UTC().Format(time.RFC3339)
		return revertRefused(id, fmt.Sprintf("its before-images were kept for %s after it finished, until %s, and are gone", rec.UndoRetention, until))
	case rec.RevertedBy != "":
		if seq, ok := parseJobID(rec.RevertedBy); ok {
			prev, err := getJob(tx, seq)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			case !prev.Status.Final():
				return revertRefused(id, fmt.Sprintf("job %s (%s) is reverting it", prev.ID, prev.Status))
			case prev.Status == StateCompleted && prev.Progress.Failed == 0:
				return revertRefused(id, fmt.Sprintf("job %s reverted it already", prev.ID))
			}
		}
	}
	return nil
}

// linkRevert, in the transaction that creates revert job rec, checks once
// more that job id can be reverted and names rec as its revert.
func (e *Engine) linkRevert(tx Tx, id string, rec *jobRecord) error {
	seq, _ := parseJobID(id)
	orig, err := getJob(tx, seq)
	if err != nil {
		return err
	}
	if err := e.revertable(tx, orig); err != nil {
		return err
	}
	orig.RevertedBy = rec.ID
	rec.Reverts = id
	rec.UndoRetention = 0
	return putJob(tx, seq, orig)
}

// undoLog is the record source of a revert operation: the before-images
// operation op of job jobID left, one record per changed record, with
// id "<collection>/<record id>".
type undoLog struct {
	e     *Engine
	jobID string
	op    int
}

var errUndoReadOnly = errors.New("batch: a job's before-images are read-only")

// Scan lists the entries of the operation, a page per transaction.
func (l *undoLog) Scan(ctx context.Context, q *Query, fn func(Record) error) error {
	var from []byte
	bucket := undoBucket(l.jobID)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []Record
		more := false
		err := l.e.store.View(func(tx Tx) error {
			var err error
			more, err = scanPage(tx, bucket, &from, undoScanPage, func(k, _ []byte) bool {
				if coll, id, op, ok := parseUndoKey(k); ok && op == l.op {
					if rec := (Record{"id": coll + "/" + id}); q.Match(rec) {
						page = append(page, rec)
					}
				}
				return true
			})
			return err
		})
		if err != nil {
			return err
		}
		for _, rec := range page {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// Get returns the entry's record if it exists.
func (l *undoLog) Get(ctx context.Context, id string) (Record, error) {
	coll, rid, ok := strings.Cut(id, "/")
	if !ok {
		return nil, notFound("before-image", id)
	}
	var found bool
	err := l.e.store.View(func(tx Tx) error {
		found = tx.Get(undoBucket(l.jobID), undoKey(coll, rid, l.op)) != nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, notFound("before-image", id)
	}
	return Record{"id": id}, nil
}

// Put refuses: before-images are written only with the changes they undo.
func (l *undoLog) Put(context.Context, Record) error { return errUndoReadOnly }

// Delete refuses, as Put does.
func (l *undoLog) Delete(context.Context, string) error { return errUndoReadOnly }

// planRevert plans a revert operation: {"source": {"job_id"}, "params":
// {"operation": n, "force": bool}}, one item per record operation n of
// that job changed. Only [Engine.Revert] submits it.
func planRevert(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "source", "params")
	var from string
	if spec.Source == nil || spec.Source.JobID == "" {
		d.add("source.job_id", DetailRequired, "revert needs source: {\"job_id\": <the job it reverts>}")
	} else if _, ok := parseJobID(spec.Source.JobID); !ok {
		d.add("source.job_id", DetailInvalidValue, "%q is not a job id", spec.Source.JobID)
	} else {
		from = spec.Source.JobID
	}
	opf, ok := spec.Params["operation"].(float64)
	if !ok || opf < 0 || opf != float64(int(opf)) {
		d.add("params.operation", DetailInvalidValue, "revert needs params.operation, the index of the operation it undoes")
	}
	force, _ := spec.Params["force"].(bool)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	e, op := env.e, int(opf)
	bucket := undoBucket(from)
	// undo checks the item's record against the entry and, when write is
	// set, puts it back. A record already as it was is left alone; one
	// that moved on since is conflict's error, unless forced.
	undo := func(tx Tx, it *Item, write bool, conflict func(coll, id string) error) error {
		coll, id, _ := strings.Cut(it.ResourceID, "/")
		u, ok := decodeUndo(tx.Get(bucket, undoKey(coll, id, op)))
		if !ok {
			return Permanent(&Error{Code: CodeResource, Message: "Before-image not found: " + it.ResourceID})
		}
		cur := tx.Get(collectionsRoot+"/"+coll, []byte(id))
		existed := u.flags&undoBefore != 0
		if existed && cur != nil && bytes.Equal(cur, u.before) || !existed && cur == nil {
			return nil
		}
		if !u.matchesAfter(cur) {
			if !force {
				return conflict(coll, id)
			}
			it.forced = true
		}
		switch {
		case !write:
			return nil
		case existed:
			return e.putRecordRaw(tx, coll, id, bytes.Clone(u.before))
		default:
			return e.deleteRecordRaw(tx, coll, id)
		}
	}
	p := &Plan{Resource: &undoLog{e: e, jobID: from, op: op}}
	// Checked outside the commit first, to name the later change: under
	// strict validation before any record is put back.
	p.Validate = func(ctx context.Context, it *Item) error {
		return e.store.View(func(tx Tx) error {
			return undo(tx, it, false, func(coll, id string) error { return e.conflict(tx, from, coll, id) })
		})
	}
	p.prepare = p.Validate
	p.sample = func(ctx context.Context, it *Item) (before, after Record, err error) {
		coll, id, _ := strings.Cut(it.ResourceID, "/")
		err = e.store.View(func(tx Tx) error {
			u, ok := decodeUndo(tx.Get(bucket, undoKey(coll, id, op)))
			if !ok {
				return notFound("before-image", it.ResourceID)
			}
			if cur := tx.Get(collectionsRoot+"/"+coll, []byte(id)); cur != nil {
				if err := json.Unmarshal(cur, &before); err != nil {
					return err
				}
			}
			if u.flags&undoBefore != 0 {
				return json.Unmarshal(u.before, &after)
			}
			return nil
		})
		return before, after, err
	}
	p.apply = func(tx Tx, it *Item) error {
		// The commit checks again: a change may have come in meanwhile.
		it.forced = false
		return undo(tx, it, true, func(coll, id string) error {
			return Permanent(&Error{Code: CodeConflict, Message: fmt.Sprintf("Record %s/%s was changed since job %s changed it; revert with force to overwrite it", coll, id, from)})
		})
	}
	return p, nil
}

// conflictLookahead is how many later jobs a conflict looks through for
// the one that changed the record.
const conflictLookahead = 1000

// conflict is the CONFLICT error of record id of collection coll, which
// changed since job jobID changed it: it names the first later job (of
// the next [conflictLookahead]) that kept a before-image of it.
func (e *Engine) conflict(tx Tx, jobID, coll, id string) error {
	seq, _ := parseJobID(jobID)
	var later []string
	if err := tx.Scan(bucketJobs, u64key(seq+1), func(k, _ []byte) bool {
		later = append(later, formatJobID(beUint64(k)))
		return len(later) < conflictLookahead
	}); err != nil {
		return err
	}
	prefix := undoKey(coll, id, 0)
	prefix = prefix[:len(prefix)-4]
	by := ""
	for _, j := range later {
		if err := tx.Scan(undoBucket(j), prefix, func(k, _ []byte) bool {
			if bytes.HasPrefix(k, prefix) {
				by = j
			}
			return false
		}); err != nil {
			return err
		}
		if by != "" {
			break
		}
	}
	msg := fmt.Sprintf("Record %s/%s was changed by job %s after job %s changed it; revert with force to overwrite it", coll, id, by, jobID)
	if by == "" {
		msg = fmt.Sprintf("Record %s/%s was changed after job %s changed it, outside the jobs that keep before-images; revert with force to overwrite it", coll, id, jobID)
	}
	return Permanent(&Error{Code: CodeConflict, Message: msg})
}

// putRecordRaw stores a record's bytes in built-in collection coll, with
// its index entries.
func (e *Engine) putRecordRaw(tx Tx, coll, id string, v []byte) error {
	return e.writeRecordRaw(tx, coll, id, v)
}

// deleteRecordRaw removes a record from built-in collection coll, with its
// index entries.
func (e *Engine) deleteRecordRaw(tx Tx, coll, id string) error {
	return e.writeRecordRaw(tx, coll, id, nil)
}

// writeRecordRaw stores (next nil: removes) a record of built-in
// collection coll through the collection, so that its indexes follow.
func (e *Engine) writeRecordRaw(tx Tx, coll, id string, next []byte) error {
	c, err := e.Collection(coll)
	if err != nil {
		// Not defined in this process: no index of its is known here.
		if next == nil {
			return tx.Delete(collectionsRoot+"/"+coll, []byte(id))
		}
		return tx.Put(collectionsRoot+"/"+coll, []byte(id), next)
	}
	key := []byte(id)
	prev := bytes.Clone(tx.Get(c.bucket, key))
	return c.writeRecord(tx, key, prev, next, nil)
}

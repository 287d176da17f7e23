package batch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Before-images. Every change a job makes to a built-in collection record
// (create, update, delete, import, calculate, restore) writes, in the same
// transaction as the change, an entry in the job's undo/<job_id> bucket:
//
//	key:   collection NUL record id NUL operation index (4 bytes, big-endian)
//	value: flags (1 byte) | FNV-1a 64 of the record after the change (8) |
//	       the record before the change (its stored bytes)
//
// flags: undoBefore (the record existed before), undoAfter (it exists
// after). A second change of the same record by the same operation (a
// restore run again after a crash) keeps the first before-image. So the
// entries are exact after a crash, like the changes themselves, and
// [Engine.Revert] can put each record back, operation by operation in
// reverse order, and tell a later change (the record no longer hashes to
// what the job left) from none.

const (
	undoBefore byte = 1 << iota
	undoAfter
)

func undoBucket(jobID string) string { return "undo/" + jobID }

// undoKey is the entry key of record id of collection coll changed by
// operation op.
func undoKey(coll, id string, op int) []byte {
	k := make([]byte, 0, len(coll)+len(id)+6)
	k = append(k, coll...)
	k = append(k, 0)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(op))
}

// parseUndoKey splits an entry key; ok is false for a malformed one.
func parseUndoKey(k []byte) (coll, id string, op int, ok bool) {
	if len(k) < 6 || k[len(k)-5] != 0 {
		return "", "", 0, false
	}
	i := bytes.IndexByte(k, 0)
	if i < 0 || i >= len(k)-5 {
		return "", "", 0, false
	}
	return string(k[:i]), string(k[i+1 : len(k)-5]), int(binary.BigEndian.Uint32(k[len(k)-4:])), true
}

// recordHash is the hash an entry keeps of a record as the job left it.
func recordHash(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

// undoEntry is a decoded entry.
type undoEntry struct {
	flags  byte
	after  uint64
	before []byte // valid only in the transaction that read it
}

func decodeUndo(v []byte) (undoEntry, bool) {
	if len(v) < 9 {
		return undoEntry{}, false
	}
	return undoEntry{flags: v[0], after: binary.BigEndian.Uint64(v[1:9]), before: v[9:]}, true
}

// encodeUndo builds an entry: before is the record before the change (nil
// when it did not exist), after the record after it (nil when deleted).
func encodeUndo(before, after []byte, existed bool) []byte {
	v := make([]byte, 9, 9+len(before))
	if existed {
		v[0] |= undoBefore
		v = append(v, before...)
	}
	if after != nil {
		v[0] |= undoAfter
		binary.BigEndian.PutUint64(v[1:9], recordHash(after))
	}
	return v
}

// matchesAfter reports whether cur (nil: no record) is the record as the
// entry's change left it.
func (u undoEntry) matchesAfter(cur []byte) bool {
	if cur == nil {
		return u.flags&undoAfter == 0
	}
	return u.flags&undoAfter != 0 && recordHash(cur) == u.after
}

// keepBeforeImages wraps the apply step of each plan that changes built-in
// records so that it writes the record's before-image in the same
// transaction, when the job keeps them.
func (r *jobRun) keepBeforeImages(plans []*Plan) {
	if r.snapshot().UndoRetention <= 0 {
		return
	}
	bucket := undoBucket(r.id)
	for op, p := range plans {
		if p.coll == nil || p.apply == nil {
			continue
		}
		apply, coll := p.apply, p.coll
		p.apply = func(tx Tx, it *Item) error {
			id := []byte(it.ResourceID)
			old := tx.Get(coll.bucket, id)
			// One allocation holds the entry, the old bytes copied in
			// before the change can reuse their memory.
			v := make([]byte, 9, 9+len(old))
			if old != nil {
				v[0] = undoBefore
				v = append(v, old...)
			}
			// apply reads the record from the entry (no second lookup) and
			// its write is seen on the way (no lookup after it).
			ct := &captureTx{Tx: tx, bucket: coll.bucket, key: id, old: old}
			if err := apply(ct, it); err != nil {
				return err
			}
			after := old
			if ct.written {
				after = ct.new
			}
			if after != nil {
				v[0] |= undoAfter
				binary.BigEndian.PutUint64(v[1:9], recordHash(after))
			}
			return tx.Put(bucket, undoKey(coll.name, it.ResourceID, op), v)
		}
	}
}

// captureTx is the transaction an apply step runs in while its
// before-image is kept: a read of the record returns the bytes read
// already, and its write is noted. Any other access goes through.
type captureTx struct {
	Tx
	bucket string
	key    []byte
	old    []byte
	// written: the record was written (new) or deleted (new is nil).
	written bool
	new     []byte
}

func (c *captureTx) mine(bucket string, key []byte) bool {
	return bucket == c.bucket && bytes.Equal(key, c.key)
}

func (c *captureTx) Get(bucket string, key []byte) []byte {
	if !c.written && c.mine(bucket, key) {
		return c.old
	}
	return c.Tx.Get(bucket, key)
}

func (c *captureTx) Put(bucket string, key, value []byte) error {
	if c.mine(bucket, key) {
		c.written, c.new = true, value
	}
	return c.Tx.Put(bucket, key, value)
}

func (c *captureTx) Delete(bucket string, key []byte) error {
	if c.mine(bucket, key) {
		c.written, c.new = true, nil
	}
	return c.Tx.Delete(bucket, key)
}

// undoRetention is the before-image retention of a job submitted with
// opts: the batch's option, else the engine's.
func (e *Engine) undoRetention(opts BatchOptions) Duration {
	if opts.UndoRetention != nil {
		return *opts.UndoRetention
	}
	switch d := e.opts.UndoRetention; {
	case d < 0:
		return 0
	case d == 0:
		return Duration(DefaultUndoRetention)
	default:
		return Duration(d)
	}
}

// keepsBeforeImages reports whether live job jobID keeps before-images.
func (e *Engine) keepsBeforeImages(jobID string) bool {
	e.mu.Lock()
	r := e.runs[jobID]
	e.mu.Unlock()
	return r != nil && r.snapshot().UndoRetention > 0
}

// restoreImages records, inside a restore's transaction, the before-image
// of every built-in record before the restore replaces them (before is
// called first, for each record as it is) and the after-state of every
// record it writes (after). Entries an earlier run of the same restore
// stored are kept: their before-images are the original ones.
type restoreImages struct {
	tx     Tx
	bucket string
	op     int
}

func (ri *restoreImages) before(coll string, id, v []byte) error {
	k := undoKey(coll, string(id), ri.op)
	if ri.tx.Get(ri.bucket, k) != nil {
		return nil
	}
	return ri.tx.Put(ri.bucket, k, encodeUndo(v, nil, true))
}

func (ri *restoreImages) after(coll string, id, v []byte) error {
	k := undoKey(coll, string(id), ri.op)
	cur := ri.tx.Get(ri.bucket, k)
	if cur == nil {
		return ri.tx.Put(ri.bucket, k, encodeUndo(nil, v, false))
	}
	u, ok := decodeUndo(cur)
	if !ok {
		return errors.New("batch: corrupt before-image " + string(k))
	}
	return ri.tx.Put(ri.bucket, k, encodeUndo(u.before, v, u.flags&undoBefore != 0))
}

// pruneUndo removes the before-images of finished jobs whose retention
// ended by now, marking each job, and returns how many jobs held some.
func (e *Engine) pruneUndo(ctx context.Context, now time.Time) (int64, error) {
	var due []uint64
	err := e.store.View(func(tx Tx) error {
		return undoDueBy(tx, now, func(seq uint64) bool {
			due = append(due, seq)
			return true
		})
	})
	if err != nil {
		return 0, err
	}
	return countEach(ctx, due, func(seq uint64) (bool, error) {
		held := false
		err := e.update(func(w *wtx) error {
			rec, err := getJob(w.Tx, seq)
			if err != nil {
				return err
			}
			if rec.UndoPurged || !undoExpired(rec, now) {
				return nil
			}
			held = false
			if err := w.Scan(undoBucket(rec.ID), nil, func(_, _ []byte) bool { held = true; return false }); err != nil {
				return err
			}
			if err := w.DeleteBucket(undoBucket(rec.ID)); err != nil {
				return err
			}
			rec.UndoPurged = true
			return putJob(w.Tx, seq, rec)
		})
		if errors.Is(err, ErrNotFound) {
			return false, nil // deleted meanwhile
		}
		return held, err
	})
}

// undoDue returns when a finished job's before-images expire; false while
// the job is not final or when it keeps none.
func undoDue(rec *jobRecord) (time.Time, bool) {
	if !rec.Status.Final() || rec.FinishedAt == nil || rec.UndoRetention <= 0 {
		return time.Time{}, false
	}
	return rec.FinishedAt.Add(time.Duration(rec.UndoRetention)), true
}

// undoExpired reports whether a job's before-images are past their
// retention at now.
func undoExpired(rec *jobRecord, now time.Time) bool {
	due, ok := undoDue(rec)
	return ok && !now.Before(due)
}

// beforeAll stores the before-image of every record of the named
// collections and of those the backup (root, may be nil) holds.
func (ri *restoreImages) beforeAll(tx Tx, names []string, root *bolt.Bucket) error {
	if root != nil {
		_ = root.ForEachBucket(func(name []byte) error {
			if !slices.Contains(names, string(name)) {
				names = append(names, string(name))
			}
			return nil
		})
	}
	for _, name := range names {
		var derr error
		err := tx.Scan(collectionsRoot+"/"+name, nil, func(k, v []byte) bool {
			derr = ri.before(name, k, v)
			return derr == nil
		})
		if err = firstErr(err, derr); err != nil {
			return err
		}
	}
	return nil
}

// collectionNames lists the built-in collections.
func (e *Engine) collectionNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.collections))
	for name := range e.collections {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// observeRate takes in that n items of operation type typ ran in d, for
// the estimates of dry runs.
func (e *Engine) observeRate(typ string, d time.Duration, n int64) {
	if n <= 0 {
		return
	}
	per := int64(d) / n
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.rates[typ]; ok {
		per = (old*3 + per) / 4
	}
	e.rates[typ] = per
}

// rate is the recent wall time per item of operation type typ, or the
// engine's per-item estimate when none of that type ran yet.
func (e *Engine) rate(typ string) time.Duration {
	e.mu.Lock()
	per, ok := e.rates[typ]
	e.mu.Unlock()
	if !ok {
		per = e.itemEst.Load()
	}
	return time.Duration(per)
}

package batch

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Job indexes let a filtered list page, recovery and cleanup read only the
// jobs they return, however many jobs the store holds. They are written in
// the same transaction as the job record (putJob and deleteJob), so they
// never disagree with it:
//
//	job_index            seq -> what the job is indexed under (indexEntry)
//	jobs_by_state        state + seq -> 1
//	jobs_by_owner        owner + seq -> 1
//	jobs_by_owner_state  owner + state + seq -> 1
//	jobs_finished        finished_at (8 bytes, Unix ns) + seq -> 1, final jobs only
//	jobs_undo_due        when the before-images expire (8 bytes, Unix ns) + seq -> 1,
//	                     final jobs that still hold them
//	store_meta           "job_index" -> version, once the indexes cover every job
//
// Strings in keys are prefixed by their length (uvarint), so one owner's
// prefix never matches another's keys.
const (
	bucketJobIndex      = "job_index"
	bucketJobsByState   = "jobs_by_state"
	bucketJobsByOwner   = "jobs_by_owner"
	bucketJobsByOwnerSt = "jobs_by_owner_state"
	bucketJobsFinished  = "jobs_finished"
	bucketJobsUndoDue   = "jobs_undo_due"
	bucketStoreMeta     = "store_meta"
)

var (
	jobIndexVersionKey = []byte("job_index")
	jobIndexVersion    = []byte{2}
	indexMark          = []byte{1}
)

// indexEntry is what a job is indexed under.
type indexEntry struct {
	state    State
	owner    string
	finished int64 // Unix ns; 0 while the job is not final
	undoDue  int64 // Unix ns the before-images expire; 0 when none are held
}

func indexEntryOf(r *jobRecord) indexEntry {
	ie := indexEntry{state: r.Status, owner: r.Owner}
	if r.Status.Final() && r.FinishedAt != nil {
		ie.finished = r.FinishedAt.UnixNano()
		if due, ok := undoDue(r); ok && !r.UndoPurged {
			ie.undoDue = due.UnixNano()
		}
	}
	return ie
}

func (ie indexEntry) encode() []byte {
	b := appendStr(nil, string(ie.state))
	b = appendStr(b, ie.owner)
	b = binary.BigEndian.AppendUint64(b, uint64(ie.finished))
	if ie.undoDue != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(ie.undoDue))
	}
	return b
}

func decodeIndexEntry(b []byte) (indexEntry, bool) {
	var ie indexEntry
	var strs [2]string
	for i := range strs {
		var ok bool
		if strs[i], b, ok = cutStr(b); !ok {
			return ie, false
		}
	}
	if len(b) != 8 && len(b) != 16 {
		return ie, false
	}
	ie.state, ie.owner, ie.finished = State(strs[0]), strs[1], int64(beUint64(b))
	if len(b) == 16 {
		ie.undoDue = int64(beUint64(b[8:]))
	}
	return ie, true
}

// indexKeys returns the bucket and key of each index entry of job seq.
func (ie indexEntry) keys(seq uint64) [][2][]byte {
	s := u64key(seq)
	st := appendStr(nil, string(ie.state))
	ow := appendStr(nil, ie.owner)
	out := [][2][]byte{
		{[]byte(bucketJobsByState), append(st, s...)},
		{[]byte(bucketJobsByOwner), append(ow, s...)},
		{[]byte(bucketJobsByOwnerSt), append(append(append([]byte(nil), ow...), st...), s...)},
	}
	if ie.finished != 0 {
		out = append(out, [2][]byte{[]byte(bucketJobsFinished), append(u64key(uint64(ie.finished)), s...)})
	}
	if ie.undoDue != 0 {
		out = append(out, [2][]byte{[]byte(bucketJobsUndoDue), append(u64key(uint64(ie.undoDue)), s...)})
	}
	return out
}

// indexJob brings the indexes of job seq in line with r. It costs one small
// read when nothing it is indexed under changed.
func indexJob(tx Tx, seq uint64, r *jobRecord) error {
	ie := indexEntryOf(r)
	enc := ie.encode()
	key := u64key(seq)
	old := tx.Get(bucketJobIndex, key)
	if bytes.Equal(old, enc) {
		return nil
	}
	if old != nil {
		if err := unindexJob(tx, seq, old); err != nil {
			return err
		}
	}
	for _, k := range ie.keys(seq) {
		if err := tx.Put(string(k[0]), k[1], indexMark); err != nil {
			return err
		}
	}
	return tx.Put(bucketJobIndex, key, enc)
}

// unindexJob removes the index entries old (the job's job_index value)
// stands for, and the job_index value itself.
func unindexJob(tx Tx, seq uint64, old []byte) error {
	ie, ok := decodeIndexEntry(old)
	if !ok {
		return fmt.Errorf("batch: malformed index entry of job %d", seq)
	}
	for _, k := range ie.keys(seq) {
		if err := tx.Delete(string(k[0]), k[1]); err != nil {
			return err
		}
	}
	return tx.Delete(bucketJobIndex, u64key(seq))
}

// deleteJobRecord removes job seq's record and its index entries.
func deleteJobRecord(tx Tx, seq uint64) error {
	if old := tx.Get(bucketJobIndex, u64key(seq)); old != nil {
		if err := unindexJob(tx, seq, append([]byte(nil), old...)); err != nil {
			return err
		}
	}
	return tx.Delete(bucketJobs, u64key(seq))
}

// ensureJobIndex builds the job indexes of a store written before they
// existed, once, reading every job; later opens find the version mark.
func ensureJobIndex(s Store) error {
	var have bool
	if err := s.View(func(tx Tx) error {
		have = bytes.Equal(tx.Get(bucketStoreMeta, jobIndexVersionKey), jobIndexVersion)
		return nil
	}); err != nil || have {
		return err
	}
	return s.Update(func(tx Tx) error {
		type entry struct {
			seq uint64
			job jobRecord
		}
		var all []entry
		var derr error
		err := tx.Scan(bucketJobs, nil, func(k, v []byte) bool {
			var j jobRecord
			if derr = json.Unmarshal(v, &j); derr != nil {
				return false
			}
			all = append(all, entry{beUint64(k), j})
			return true
		})
		if err = firstErr(err, derr); err != nil {
			return fmt.Errorf("batch: indexing jobs: %w", err)
		}
		for _, en := range all {
			if err := indexJob(tx, en.seq, &en.job); err != nil {
				return err
			}
		}
		return tx.Put(bucketStoreMeta, jobIndexVersionKey, jobIndexVersion)
	})
}

// scanIndexReverse calls fn with the job sequence numbers under prefix in
// bucket, newest first, starting at or below seq from (all when from is 0),
// until fn returns false.
func scanIndexReverse(tx Tx, bucket string, prefix []byte, from uint64, fn func(seq uint64) bool) error {
	start := append(append([]byte(nil), prefix...), u64key(from)...)
	if from == 0 {
		start = append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	}
	return tx.ScanReverse(bucket, start, indexSeqs(prefix, fn))
}

// scanIndex is scanIndexReverse in ascending order, from the first entry.
func scanIndex(tx Tx, bucket string, prefix []byte, fn func(seq uint64) bool) error {
	return tx.Scan(bucket, prefix, indexSeqs(prefix, fn))
}

// indexSeqs is the Scan callback of scanIndex and scanIndexReverse: it
// hands fn the job sequence number of each key under prefix, and stops at
// the first key outside it.
func indexSeqs(prefix []byte, fn func(seq uint64) bool) func(k, _ []byte) bool {
	return func(k, _ []byte) bool {
		if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			return false
		}
		return fn(beUint64(k[len(prefix):]))
	}
}

// forJobsIn calls fn with each job in states, state by state and oldest
// first, until fn returns an error. The jobs of a state are listed before
// fn sees the first of them.
func forJobsIn(tx Tx, states []State, fn func(st State, seq uint64) error) error {
	for _, st := range states {
		var seqs []uint64
		if err := scanIndex(tx, bucketJobsByState, appendStr(nil, string(st)), func(seq uint64) bool {
			seqs = append(seqs, seq)
			return true
		}); err != nil {
			return err
		}
		for _, seq := range seqs {
			if err := fn(st, seq); err != nil {
				return err
			}
		}
	}
	return nil
}

// jobListIndex picks the index a list filtered by state and owner reads,
// and the prefix of its keys; "" when there is no filter.
func jobListIndex(state State, owner string) (string, []byte) {
	switch {
	case state != "" && owner != "":
		return bucketJobsByOwnerSt, appendStr(appendStr(nil, owner), string(state))
	case state != "":
		return bucketJobsByState, appendStr(nil, string(state))
	case owner != "":
		return bucketJobsByOwner, appendStr(nil, owner)
	}
	return "", nil
}

// undoDueBy calls fn with each job whose before-images expire at or
// before now, soonest first, until fn returns false.
func undoDueBy(tx Tx, now time.Time, fn func(seq uint64) bool) error {
	limit := now.UnixNano()
	return tx.Scan(bucketJobsUndoDue, nil, func(k, _ []byte) bool {
		if len(k) != 16 || int64(beUint64(k)) > limit {
			return false
		}
		return fn(beUint64(k[8:]))
	})
}

// finishedJobsBefore calls fn with each job that finished before cutoff,
// oldest first, until fn returns false.
func finishedJobsBefore(tx Tx, cutoff time.Time, fn func(seq uint64) bool) error {
	limit := cutoff.UnixNano()
	return tx.Scan(bucketJobsFinished, nil, func(k, _ []byte) bool {
		if len(k) != 16 || int64(beUint64(k)) >= limit {
			return false
		}
		return fn(beUint64(k[8:]))
	})
}

// recCache keeps decoded records of finished jobs for list pages, keyed by
// sequence and checked against the stored bytes, so it can never serve a
// record other than the one stored: a hit saves the JSON decoding that is
// most of a page's cost.
type recCache struct {
	mu sync.Mutex
	m  map[uint64]cachedRec
}

type cachedRec struct {
	raw []byte
	rec *jobRecord
}

// recCacheSize bounds the cached records (about 1 KB each).
const recCacheSize = 4096

// get returns job seq stored as raw, decoded.
func (c *recCache) get(seq uint64, raw []byte) (*jobRecord, error) {
	c.mu.Lock()
	hit, ok := c.m[seq]
	c.mu.Unlock()
	if ok && bytes.Equal(hit.raw, raw) {
		return hit.rec.clone(), nil
	}
	var r jobRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("batch: decode job %d: %w", seq, err)
	}
	if !r.Status.Final() {
		return &r, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[uint64]cachedRec)
	}
	if len(c.m) >= recCacheSize {
		for k := range c.m { // drop one at random
			delete(c.m, k)
			break
		}
	}
	c.m[seq] = cachedRec{raw: bytes.Clone(raw), rec: r.clone()}
	return &r, nil
}

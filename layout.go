package batch

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// How the engine lays its data out in a Store:
//
//	jobs              seq (8 bytes, big-endian) -> jobRecord JSON (state, counters)
//	batches           seq -> the submitted Batch JSON (never rewritten), or a
//	                  marker for one stored in chunks in batch_chunks
//	items/<job_id>    item index (8 bytes) -> itemRecord (binary): pending
//	                  entries of record-driven operations (with the attempts
//	                  of items waiting for a retry), deleted when the item
//	                  succeeds, and the failures and pending retries of all
//	                  operations
//	done/<job_id>     block (8 bytes) -> bitmap of 4,096 items: the
//	                  succeeded items, one bit each
//	errors/<job_id>   item index -> itemRecord of each failed item
//	artifacts/<job_id> name NUL chunk (4 bytes) -> bytes; name NUL "" -> meta
//	coll/<name>       record id -> record JSON
//	undo/<job_id>     collection NUL record id NUL operation (4 bytes) ->
//	                  before-image of a record the job changed (undo.go)
//	cidx/<name>       field NUL canonical value JSON NUL record id -> 1 (index.go)
//	cidxmeta          collection NUL field -> 'b' (building) or 'r' (ready)
const (
	bucketJobs    = "jobs"
	bucketBatches = "batches"
)

func itemsBucket(jobID string) string  { return "items/" + jobID }
func errorsBucket(jobID string) string { return "errors/" + jobID }
func doneBucket(jobID string) string   { return "done/" + jobID }

// doneBlockItems is how many items one done bitmap covers.
const doneBlockItems = 4096

func artifactsBucket(jobID string) string { return "artifacts/" + jobID }

// jobIDPrefix starts every job id: "batch12345".
const jobIDPrefix = "batch"

func formatJobID(seq uint64) string { return jobIDPrefix + strconv.FormatUint(seq, 10) }

// parseJobID returns the sequence number in a job id, or false.
func parseJobID(id string) (uint64, bool) { return parseObjectID(id, jobIDPrefix) }

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// appendStr appends s to b, after its length as a uvarint.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// cutStr reads a string that appendStr wrote at the start of b and returns
// it and the rest of b. ok is false when b does not start with one.
func cutStr(b []byte) (s string, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return "", b, false
	}
	return string(b[n : n+int(l)]), b[n+int(l):], true
}

// jobRecord is a job as stored: the API view plus what the executor needs
// to resume it.
type jobRecord struct {
	Job
	// Ops are the item ranges of the batch's operations.
	Ops []opRange `json:"ops,omitempty"`
	// Options are the batch's options with defaults filled in.
	Options BatchOptions `json:"options"`
	// ItemNanos is the summed run time of finished items.
	ItemNanos int64 `json:"item_nanos,omitempty"`
	// Admin is whether the owner submitted the job as an administrator.
	Admin bool `json:"admin,omitempty"`
	// IdempotencyKey is the key the job was submitted with, if any.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Trace is the carrier of the submitter's trace context, stored by a
	// TracePropagator observer.
	Trace map[string]string `json:"trace,omitempty"`
	// QueuedAt is when the job was last queued (by Resume), if after its
	// creation.
	QueuedAt *time.Time `json:"queued_at,omitempty"`
	// Errors holds the first failed items, kept for status reads.
	FirstErrors []ItemError `json:"first_errors,omitempty"`
	// Holder names the engine that runs the job, on a store several
	// processes share (a [Claimer]); empty otherwise. A write of the
	// record by another engine is refused: a process that lost the job's
	// lease cannot overwrite the progress of the one that took it over.
	Holder string `json:"holder,omitempty"`
	// UndoRetention is how long after the job finishes the before-images
	// of the records it changes are kept; 0: none are kept.
	UndoRetention Duration `json:"undo_retention,omitempty"`
	// UndoPurged is set once the before-images were removed.
	UndoPurged bool `json:"undo_purged,omitempty"`
	// RevertSkipped and RevertForced count a revert job's conflicts.
	RevertSkipped int64 `json:"revert_skipped,omitempty"`
	RevertForced  int64 `json:"revert_forced,omitempty"`
}

// opRange is the slice of item indexes one operation owns. Until the
// operation selects its items (Selected), Count is the estimate made at
// submission.
type opRange struct {
	Base      int64 `json:"base"`
	Count     int64 `json:"count"`
	Selected  bool  `json:"selected,omitempty"`
	Validated bool  `json:"validated,omitempty"`
}

func (r *jobRecord) clone() *jobRecord {
	c := *r
	c.Ops = append([]opRange(nil), r.Ops...)
	c.FirstErrors = append([]ItemError(nil), r.FirstErrors...)
	c.Results = append([]Result(nil), r.Results...)
	return &c
}

func getJob(tx Tx, seq uint64) (*jobRecord, error) {
	v := tx.Get(bucketJobs, u64key(seq))
	if v == nil {
		return nil, notFound("job", formatJobID(seq))
	}
	var r jobRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("batch: decode job %d: %w", seq, err)
	}
	return &r, nil
}

// errLeaseLost refuses a write of a job that another engine took over.
var errLeaseLost = errors.New("batch: the job was taken over by another process")

// putJob stores a job record. A record written by the engine that holds
// the job is refused once another engine holds it (see jobRecord.Holder).
func putJob(tx Tx, seq uint64, r *jobRecord) error {
	if r.Holder != "" {
		if cur, err := getJob(tx, seq); err == nil && cur.Holder != r.Holder {
			return errLeaseLost
		}
	}
	return takeJob(tx, seq, r)
}

// takeJob stores a job record unchecked: the start of a run, which makes
// r.Holder the job's holder.
func takeJob(tx Tx, seq uint64, r *jobRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("batch: encode job %s: %w", r.ID, err)
	}
	if err := tx.Put(bucketJobs, u64key(seq), b); err != nil {
		return err
	}
	return indexJob(tx, seq, r)
}

// operationTypes lists the distinct operation types of a stored job's batch.
func operationTypes(tx Tx, seq uint64) ([]string, error) {
	b, err := getBatch(tx, seq)
	if err != nil {
		return nil, err
	}
	var types []string
	for _, op := range b.Operations {
		if !slices.Contains(types, op.Type) {
			types = append(types, op.Type)
		}
	}
	return types, nil
}

func getBatch(tx Tx, seq uint64) (*Batch, error) {
	v := tx.Get(bucketBatches, u64key(seq))
	if v == nil {
		return nil, notFound("batch of job", formatJobID(seq))
	}
	if len(v) > 0 && v[0] == batchChunked {
		var buf bytes.Buffer
		if err := scanPrefix(tx, bucketBatchChunks, u64key(seq), func(_, c []byte) bool {
			buf.Write(c)
			return true
		}); err != nil {
			return nil, err
		}
		v = buf.Bytes()
	}
	var b Batch
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("batch: decode batch %d: %w", seq, err)
	}
	return &b, nil
}

// A batch bigger than batchChunk is stored in chunks of that size under
// batch_chunks (seq + chunk number -> bytes), with a one-byte marker in
// batches: a big value would otherwise sit in the leaf that every later
// submission rewrites.
const (
	bucketBatchChunks = "batch_chunks"
	batchChunk        = 64 << 10
	batchChunked      = 0
)

// putBatch stores the submitted batch of job seq.
func putBatch(tx Tx, seq uint64, batchJSON []byte) error {
	if len(batchJSON) <= batchChunk {
		return tx.Put(bucketBatches, u64key(seq), batchJSON)
	}
	for i := 0; len(batchJSON) > 0; i++ {
		n := min(len(batchJSON), batchChunk)
		key := binary.BigEndian.AppendUint32(u64key(seq), uint32(i))
		if err := tx.Put(bucketBatchChunks, key, batchJSON[:n]); err != nil {
			return err
		}
		batchJSON = batchJSON[n:]
	}
	return tx.Put(bucketBatches, u64key(seq), []byte{batchChunked})
}

// deleteBatch removes the submitted batch of job seq.
func deleteBatch(tx Tx, seq uint64) error {
	if v := tx.Get(bucketBatches, u64key(seq)); len(v) > 0 && v[0] == batchChunked {
		if err := deletePrefix(tx, bucketBatchChunks, u64key(seq)); err != nil {
			return err
		}
	}
	return tx.Delete(bucketBatches, u64key(seq))
}

// itemState is where an item stands.
type itemState byte

const (
	itemPending itemState = iota
	itemSucceeded
	itemFailed
)

func (s itemState) String() string {
	switch s {
	case itemSucceeded:
		return "completed"
	case itemFailed:
		return "failed"
	}
	return "pending"
}

// itemRecord is an item's stored state: a pending entry written when a
// record-driven operation selects its records, or an outcome.
type itemRecord struct {
	State      itemState
	Op         int
	Attempts   int
	Duration   time.Duration
	ResourceID string
	Code       Code
	Message    string
}

const itemRecordVersion = 1

// appendItem encodes r compactly: item outcomes are the engine's hottest
// write.
func appendItem(b []byte, r *itemRecord) []byte {
	b = append(b, itemRecordVersion, byte(r.State))
	b = binary.AppendUvarint(b, uint64(r.Op))
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	b = binary.AppendUvarint(b, uint64(max(r.Duration, 0)))
	for _, s := range []string{r.ResourceID, string(r.Code), r.Message} {
		b = appendStr(b, s)
	}
	return b
}

var errBadItem = errors.New("batch: malformed item record")

func decodeItem(b []byte) (itemRecord, error) {
	var r itemRecord
	if len(b) < 2 || b[0] != itemRecordVersion {
		return r, errBadItem
	}
	r.State = itemState(b[1])
	b = b[2:]
	var nums [3]uint64
	for i := range nums {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return r, errBadItem
		}
		nums[i], b = v, b[n:]
	}
	r.Op, r.Attempts, r.Duration = int(nums[0]), int(nums[1]), time.Duration(nums[2])
	var strs [3]string
	for i := range strs {
		var ok bool
		if strs[i], b, ok = cutStr(b); !ok {
			return r, errBadItem
		}
	}
	r.ResourceID, r.Code, r.Message = strs[0], Code(strs[1]), strs[2]
	return r, nil
}

// itemError is the API view of a failed item.
func (r *itemRecord) itemError(index int64) ItemError {
	return ItemError{
		ItemIndex:      index,
		BatchOperation: r.Op,
		ResourceID:     r.ResourceID,
		Error:          ErrorBody{Code: r.Code, Message: r.Message},
		Attempts:       r.Attempts,
		Status:         r.State.String(),
	}
}

// Stored objects (templates, and later schedules and webhooks) live in a
// bucket per kind, keyed by sequence, with ids like "template12".

// parseObjectID returns the sequence number in an object id with prefix.
func parseObjectID(id, prefix string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, prefix)
	if !ok || s == "" || s[0] == '0' || len(s) > 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return seq, err == nil
}

func putObject(tx Tx, bucket string, seq uint64, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("batch: encode %s %d: %w", bucket, seq, err)
	}
	return tx.Put(bucket, u64key(seq), b)
}

// getObject decodes the object seq of bucket into v, or returns NOT_FOUND
// naming what and id.
func getObject(tx Tx, bucket string, seq uint64, what, id string, v any) error {
	b := tx.Get(bucket, u64key(seq))
	if b == nil {
		return notFound(what, id)
	}
	return json.Unmarshal(b, v)
}

// listObjects pages through a bucket of objects, oldest first. keep
// decodes one value and says whether it belongs on the page (and its id).
func listObjects(s Store, bucket, prefix string, opts *ListOptions, keep func(v []byte) (string, bool, error)) (string, error) {
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	limit, err := pageLimit(o.Limit)
	if err != nil {
		return "", err
	}
	var from []byte
	if o.Cursor != "" {
		seq, ok := parseObjectID(o.Cursor, prefix)
		if !ok {
			return "", invalidBatch([]Detail{{Field: "cursor", Code: DetailInvalidValue, Message: "invalid cursor"}})
		}
		from = u64key(seq)
	}
	var next string
	n := 0
	err = s.View(func(tx Tx) error {
		var kerr error
		err := tx.Scan(bucket, from, func(k, v []byte) bool {
			if n == limit {
				next = prefix + strconv.FormatUint(beUint64(k), 10)
				return false
			}
			var ok bool
			if _, ok, kerr = keep(v); kerr != nil {
				return false
			}
			if ok {
				n++
			}
			return true
		})
		return firstErr(err, kerr)
	})
	return next, err
}

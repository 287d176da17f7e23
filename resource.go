package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Record is one resource record: a JSON object whose "id" field, a string,
// identifies it.
type Record map[string]any

// ID returns the record's "id", or "" when it has none or it is not a string.
func (r Record) ID() string {
	id, _ := r["id"].(string)
	return id
}

// Resource is a program's own data that batches can read, registered with
// [Engine.RegisterResource]: enough for export, analyze, generate, validate
// and custom operations. A resource that batches may also change (create,
// update, delete, import, calculate) is a [WritableResource]. Built-in
// operations reach it only through these methods, so their effects on it
// are at-least-once: a record may be written again after a crash (see the
// package documentation, "Durability"). Implementations must be safe for
// concurrent use.
type Resource interface {
	// Scan calls fn for every record that q matches, stopping at the first
	// error fn returns and returning it. It may use q.Filter to narrow what
	// it reads, but must check q.Match before calling fn.
	Scan(ctx context.Context, q *Query, fn func(Record) error) error
	// Get returns the record with id, or an error matching [ErrNotFound].
	Get(ctx context.Context, id string) (Record, error)
}

// WritableResource is a [Resource] that batches may change. A batch that
// would write to a resource that is not one is refused at submission.
type WritableResource interface {
	Resource
	// Put creates or replaces the record with rec.ID().
	Put(ctx context.Context, rec Record) error
	// Delete removes the record with id, or returns an error matching
	// [ErrNotFound].
	Delete(ctx context.Context, id string) error
}

// RecordValidator is a [Resource] that checks records before they are
// written. Its errors become VALIDATION_ERROR items.
type RecordValidator interface {
	ValidateRecord(ctx context.Context, rec Record) error
}

// Query selects records: every Filter entry must equal the record's
// top-level field, and the Where expression, if any, must be true.
//
// Build one with [NewQuery], which compiles Where, or as a literal: the
// engine compiles the Query of every plan an operation returns (a bad
// Where rejects the batch), and Match compiles a literal's Where on first
// use. A Where that does not compile matches nothing.
type Query struct {
	// Filter maps top-level fields to the JSON values they must equal.
	Filter map[string]any
	// Where is the source of the expression; see [OperationSpec].Where.
	Where string
	where *predicate
	// src is the Where that where was compiled from.
	src string
}

// NewQuery returns a Query over filter and where, with where compiled. A
// bad where returns a VALIDATION_ERROR *Error.
func NewQuery(filter map[string]any, where string) (*Query, error) {
	q := &Query{Filter: filter, Where: where}
	if err := q.compile(); err != nil {
		return nil, &Error{Code: CodeValidation, Message: "invalid where expression: " + exprMessage(err), Err: err}
	}
	return q, nil
}

// compile compiles Where unless it is compiled already. It must not run
// while the Query is matched concurrently.
func (q *Query) compile() error {
	if q == nil || q.Where == "" || (q.where != nil && q.src == q.Where) {
		return nil
	}
	prog, err := compileRecordExpr(q.Where, true)
	if err != nil {
		return err
	}
	q.where, q.src = &predicate{prog: prog}, q.Where
	return nil
}

// Match reports whether rec is selected. A Where expression that fails on a
// record (a missing field compared with a number, say, or one that goes over
// the expression budgets) does not select it.
func (q *Query) Match(rec Record) bool {
	return q.MatchContext(context.Background(), rec)
}

// MatchContext is [Query.Match] whose Where evaluation stops when ctx ends.
func (q *Query) MatchContext(ctx context.Context, rec Record) bool {
	ok, _ := q.match(ctx, rec)
	return ok
}

// match is MatchContext that also returns the error of a Where expression
// that went over its budgets (matching [ErrExpressionLimit]) or whose
// context ended: those stop a scan instead of skipping the record.
func (q *Query) match(ctx context.Context, rec Record) (bool, error) {
	if q == nil {
		return true, nil
	}
	for k, want := range q.Filter {
		got, ok := rec[k]
		if !ok || !jsonEqual(got, want) {
			return false, nil
		}
	}
	if q.Where == "" {
		return true, nil
	}
	w := q.where
	if w == nil || q.src != q.Where {
		// Not compiled by NewQuery or the engine: compile a copy here.
		prog, err := compileRecordExpr(q.Where, true)
		if err != nil {
			return false, nil
		}
		w = &predicate{prog: prog}
	}
	ok, err := w.eval(ctx, rec)
	if err != nil {
		if errors.Is(err, ErrExpressionLimit) || ctx.Err() != nil {
			return false, fmt.Errorf("where on record %q: %w", rec.ID(), err)
		}
		return false, nil
	}
	return ok, nil
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.DeepEqual(a, b)
}

// normalizeJSON returns v as encoding/json would decode it (float64
// numbers, map[string]any objects, []any arrays).
func normalizeJSON[T any](v T) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

// mergePatch applies an RFC 7396 merge patch to rec: objects merge
// recursively and a null removes the key. rec is not modified.
func mergePatch(rec Record, patch map[string]any) Record {
	out := make(Record, len(rec)+len(patch))
	for k, v := range rec {
		out[k] = v
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			cur, _ := out[k].(map[string]any)
			out[k] = map[string]any(mergePatch(cur, pv))
		default:
			out[k] = v
		}
	}
	return out
}

// CollectionOptions configures a built-in collection. The zero value
// accepts every record and indexes nothing.
type CollectionOptions struct {
	// Validate, if set, checks each record before a batch writes it; an
	// error fails that item with VALIDATION_ERROR.
	Validate func(ctx context.Context, rec Record) error
	// Indexes names top-level fields to index. An equality filter on
	// indexed fields reads the matching ids from the index instead of
	// scanning the collection. A field not indexed yet is indexed in the
	// background (see [Collection.AddIndex]).
	Indexes []string
}

// Collection is a built-in document collection: JSON records keyed by id
// in the engine's own store. Built-in operations on it are exactly-once:
// each record change commits in the same transaction as the item's outcome,
// and so do the changes of its field indexes.
// It implements [Resource] and is safe for concurrent use.
type Collection struct {
	name     string
	bucket   string
	store    Store
	e        *Engine
	idx      *collIndexes
	validate func(ctx context.Context, rec Record) error
}

var (
	_ Resource        = (*Collection)(nil)
	_ RecordValidator = (*Collection)(nil)
)

// Name returns the collection's name.
func (c *Collection) Name() string { return c.name }

// Scan calls fn for each record q matches, in id order. An equality filter
// on indexed fields reads only the matching records; other filter fields
// are compared on the stored bytes before a record is decoded. It reads in
// short transactions of a few hundred records, so fn may write to the
// store.
func (c *Collection) Scan(ctx context.Context, q *Query, fn func(Record) error) error {
	s, err := c.prepare(q)
	if err != nil {
		return err
	}
	return s.each(ctx, true, func(_ string, rec Record) error { return fn(rec) })
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Count returns how many records q matches. When indexes decide q it
// reads no record.
func (c *Collection) Count(ctx context.Context, q *Query) (int64, error) {
	s, err := c.prepare(q)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.each(ctx, false, func(string, Record) error { n++; return nil })
	return n, err
}

// Get returns the record with id, or an error matching [ErrNotFound].
func (c *Collection) Get(ctx context.Context, id string) (Record, error) {
	var rec Record
	err := c.store.View(func(tx Tx) error {
		var err error
		rec, err = c.get(tx, id)
		return err
	})
	return rec, err
}

func (c *Collection) get(tx Tx, id string) (Record, error) {
	v := tx.Get(c.bucket, []byte(id))
	if v == nil {
		return nil, &Error{Code: CodeNotFound, Message: "Resource not found: " + id}
	}
	return decodeRecord(c.name, []byte(id), v)
}

// Put creates or replaces rec. It must have a non-empty string "id". Put
// does not run the collection's Validate; batches do.
func (c *Collection) Put(ctx context.Context, rec Record) error {
	return c.PutMany(ctx, []Record{rec})
}

// PutMany writes records in transactions of up to 1,000, for loading data.
func (c *Collection) PutMany(ctx context.Context, recs []Record) error {
	for len(recs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(recs), 1000)
		err := c.store.Update(func(tx Tx) error {
			for _, rec := range recs[:n] {
				if err := c.put(tx, rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

func (c *Collection) put(tx Tx, rec Record) error {
	id := rec.ID()
	if id == "" {
		return ValidationError("record needs a non-empty string \"id\"")
	}
	if len(id) > MaxRecordIDLength {
		return ValidationError("record id is %d bytes long; record ids are at most %d bytes", len(id), MaxRecordIDLength)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return ValidationError("record %s is not valid JSON: %v", id, err)
	}
	key := []byte(id)
	var prev []byte
	if len(c.idx.load().fields) > 0 {
		prev = tx.Get(c.bucket, key)
	}
	return c.writeRecord(tx, key, prev, b, nil)
}

// patch applies a merge patch to the stored record id, for a collection
// without a Validate function: to the stored bytes, changing only the index
// entries of the fields the patch names (through a decoded record only if
// the stored bytes cannot be patched).
func (c *Collection) patch(tx Tx, id string, patch map[string]any, rp *rawPatch) error {
	key := []byte(id)
	prev := tx.Get(c.bucket, key)
	if prev == nil {
		return &Error{Code: CodeNotFound, Message: "Resource not found: " + id}
	}
	if next, err := rp.apply(make([]byte, 0, len(prev)+64), prev); err == nil {
		return c.writeRecord(tx, key, prev, next, rp.touches)
	}
	cur, err := decodeRecord(c.name, key, prev)
	if err != nil {
		return err
	}
	return c.put(tx, mergePatch(cur, patch))
}

// Delete removes the record with id, or returns an error matching
// [ErrNotFound].
func (c *Collection) Delete(ctx context.Context, id string) error {
	return c.store.Update(func(tx Tx) error { return c.delete(tx, id) })
}

func (c *Collection) delete(tx Tx, id string) error {
	key := []byte(id)
	prev := tx.Get(c.bucket, key)
	if prev == nil {
		return &Error{Code: CodeNotFound, Message: "Resource not found: " + id}
	}
	return c.writeRecord(tx, key, prev, nil, nil)
}

// ValidateRecord runs the collection's Validate function, if any.
func (c *Collection) ValidateRecord(ctx context.Context, rec Record) error {
	if c.validate == nil {
		return nil
	}
	if err := c.validate(ctx, rec); err != nil {
		if CodeOf(err) == "" {
			return &Error{Code: CodeValidation, Message: err.Error(), Err: err}
		}
		return err
	}
	return nil
}

package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// This file selects the records of a built-in collection that a [Query]
// matches. An equality filter on indexed fields reads the matching ids
// from an index; the rest of the filter is checked on the stored bytes,
// decoding only the fields it names; only a where expression, or a caller
// that wants the records, decodes whole records.

// selectPage is how many candidates one read transaction of a selection
// looks at, so that a long selection never holds a transaction open.
const selectPage = 256

// filterTerm is one field of an equality filter.
type filterTerm struct {
	field string
	want  any
	canon []byte // want's canonical encoding
}

// selection is a query prepared for one collection.
type selection struct {
	c        *Collection
	q        *Query
	indexed  []filterTerm // answered by ready indexes; the first drives
	residual []filterTerm // checked on each record's bytes
	names    []string     // residual field names
	where    bool         // q has a where expression to evaluate
	budget   int          // when > 0, how many candidates each may look at
	// project, when set, limits a decoded record to these top-level
	// fields (unless a where expression needs the whole record).
	project []string
	// raw hands each selected record's stored bytes over, undecoded.
	raw bool
}

// prepare splits q's filter into the terms ready indexes answer and the
// ones left to check on each record.
func (c *Collection) prepare(q *Query) (*selection, error) {
	s := &selection{c: c, q: q}
	if q == nil {
		return s, nil
	}
	// "true" is how a batch selects every record: nothing to evaluate.
	s.where = q.where != nil && strings.TrimSpace(q.Where) != "true"
	st := c.idx.load()
	for _, field := range sortedKeys(q.Filter) {
		want, err := normalizeJSON(q.Filter[field])
		if err != nil {
			return nil, ValidationError("filter %s is not valid JSON: %v", field, err)
		}
		canon, err := canonicalValue(want)
		if err != nil {
			return nil, ValidationError("filter %s is not valid JSON: %v", field, err)
		}
		t := filterTerm{field: field, want: want, canon: canon}
		if st.ready[field] {
			s.indexed = append(s.indexed, t)
		}
		if !st.ready[field] || len(canon) > maxIndexedValue { // hashed in the index: check it too
			s.residual = append(s.residual, t)
			s.names = append(s.names, field)
		}
	}
	if s.where && len(st.fields) > 0 {
		// Equalities the where expression implies narrow the candidates
		// through an index too; the expression still decides each one.
		eq := whereEqualities(q.Where)
		for _, field := range sortedKeys(eq) {
			if _, inFilter := q.Filter[field]; inFilter || !st.ready[field] {
				continue
			}
			canon, err := canonicalValue(eq[field])
			if err != nil || len(canon) > maxIndexedValue {
				continue
			}
			s.indexed = append(s.indexed, filterTerm{field: field, want: eq[field], canon: canon})
		}
	}
	return s, nil
}

// needsRecord reports whether each candidate's stored bytes must be read.
func (s *selection) needsRecord(decode bool) bool {
	return decode || len(s.residual) > 0 || s.where || len(s.indexed) == 0
}

// selected is one record of a page.
type selected struct {
	id  string
	rec Record
	raw []byte
}

// each calls fn for each record the selection matches, in id order. With
// decode, rec is the decoded record; without it, rec may be nil. It reads
// a page of candidates per transaction, so fn may write to the store.
func (s *selection) each(ctx context.Context, decode bool, fn func(id string, rec Record) error) error {
	return s.pages(ctx, decode, func(x selected) error { return fn(x.id, x.rec) })
}

// eachRaw calls fn with the stored bytes of each record the selection
// matches (s.raw must be set).
func (s *selection) eachRaw(ctx context.Context, fn func(raw []byte) error) error {
	return s.pages(ctx, false, func(x selected) error { return fn(x.raw) })
}

// pages reads the selection a page of candidates per transaction and calls
// fn for each selected record once the transaction has ended.
func (s *selection) pages(ctx context.Context, decode bool, fn func(selected) error) error {
	c := s.c
	bucket, prefix := c.bucket, []byte(nil)
	if len(s.indexed) > 0 {
		bucket = c.idx.bucket
		prefix = indexKey(nil, s.indexed[0].field, s.indexed[0].canon, nil)
	}
	readRecord := s.needsRecord(decode) || s.raw
	vals := make([][]byte, len(s.names))
	pvals := make([][]byte, len(s.project))
	var probe []byte
	from := prefix
	seen := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []selected
		var last []byte
		exhausted := true
		err := c.store.View(func(tx Tx) error {
			// visit looks at one candidate and adds it to the page if it
			// is selected.
			visit := func(k, v []byte) error {
				id := k[len(prefix):]
				for _, t := range s.indexed[min(1, len(s.indexed)):] {
					probe = indexKey(probe[:0], t.field, t.canon, id)
					if tx.Get(c.idx.bucket, probe) == nil {
						return nil
					}
				}
				if !readRecord {
					page = append(page, selected{id: string(id)})
					return nil
				}
				if len(s.indexed) > 0 {
					if v = tx.Get(c.bucket, id); v == nil {
						return fmt.Errorf("collection %s: index entry %q has no record", c.name, k)
					}
				}
				if len(s.residual) > 0 {
					if err := rawFieldValues(v, s.names, vals); err != nil {
						return fmt.Errorf("collection %s: record %q: %w", c.name, id, err)
					}
					for i, t := range s.residual {
						if vals[i] == nil || !rawMatches(vals[i], t.want, t.canon) {
							return nil
						}
					}
				}
				var rec Record
				var err error
				if decode && s.project != nil && !s.where {
					if rec, err = s.projectRecord(id, v, pvals); err != nil {
						return err
					}
				} else if decode || s.where {
					if rec, err = decodeRecord(c.name, id, v); err != nil {
						return err
					}
				}
				var raw []byte
				if s.raw {
					raw = bytes.Clone(v)
				}
				page = append(page, selected{id: string(id), rec: rec, raw: raw})
				return nil
			}
			var ferr error
			n := 0
			err := tx.Scan(bucket, from, func(k, v []byte) bool {
				if !bytes.HasPrefix(k, prefix) {
					return false
				}
				if seen++; s.budget > 0 && seen > s.budget {
					ferr = errOverBudget
					return false
				}
				last = append(last[:0], k...)
				if ferr = visit(k, v); ferr != nil {
					return false
				}
				if n++; n == selectPage {
					exhausted = false
					return false
				}
				return true
			})
			return firstErr(err, ferr)
		})
		if err != nil {
			return err
		}
		for _, x := range page {
			// The where expression runs outside the transaction, so that
			// a slow one never holds the store.
			if s.where {
				switch ok, err := s.q.match(ctx, x.rec); {
				case err != nil:
					return err
				case !ok:
					continue
				}
			}
			if err := fn(x); err != nil {
				return err
			}
		}
		if exhausted {
			return nil
		}
		from = append(last, 0) // the next key after last
		runtime.Gosched()      // let other goroutines (status reads) in between pages
	}
}

// projectRecord decodes only the projected fields of the stored record v.
func (s *selection) projectRecord(id, v []byte, vals [][]byte) (Record, error) {
	if err := rawFieldValues(v, s.project, vals); err != nil {
		return nil, fmt.Errorf("collection %s: record %q: %w", s.c.name, id, err)
	}
	rec := make(Record, len(vals))
	for i, raw := range vals {
		if raw == nil {
			continue
		}
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			return nil, fmt.Errorf("collection %s: record %q: %w", s.c.name, id, err)
		}
		rec[s.project[i]] = x
	}
	return rec, nil
}

// scanFields calls fn for each record q selects in res, holding at least
// the top-level fields named (a built-in collection decodes only those; a
// program's Resource hands over whole records).
func scanFields(ctx context.Context, res Resource, q *Query, fields []string, fn func(Record) error) error {
	c, ok := res.(*Collection)
	if !ok {
		return res.Scan(ctx, q, fn)
	}
	s, err := c.prepare(q)
	if err != nil {
		return err
	}
	s.project = fields
	if s.project == nil {
		s.project = []string{}
	}
	return s.each(ctx, true, func(_ string, rec Record) error { return fn(rec) })
}

// scanRaw calls fn with the stored JSON of each record q selects in c,
// decoding a record only when a where expression needs it.
func (c *Collection) scanRaw(ctx context.Context, q *Query, fn func(raw []byte) error) error {
	s, err := c.prepare(q)
	if err != nil {
		return err
	}
	s.raw = true
	return s.eachRaw(ctx, fn)
}

// submitCountBudget bounds how many index entries a submission reads to
// count its items; past it the total is left to the job's own selection,
// so that submitting over a large collection stays quick.
const submitCountBudget = 10_000

// errOverBudget stops a selection that looked at more candidates than its
// budget.
var errOverBudget = errors.New("selection over budget")

// selectIDs calls fn with the id of each record q selects in res, in the
// resource's order. On a built-in collection it uses indexes and matches
// stored bytes (see [Collection.Scan]); a program's Resource is scanned.
// This is how a record-driven operation lists its items.
func selectIDs(ctx context.Context, res Resource, q *Query, fn func(id string) error) error {
	if c, ok := res.(*Collection); ok {
		s, err := c.prepare(q)
		if err != nil {
			return err
		}
		return s.each(ctx, false, func(id string, _ Record) error { return fn(id) })
	}
	return res.Scan(ctx, q, func(rec Record) error { return fn(rec.ID()) })
}

// countSelected returns how many records q selects in res when indexes
// tell it without reading a record (and in at most submitCountBudget index
// entries). ok is false otherwise: the count is left to the operation's
// own selection when it starts, so that a job reads each record at most
// once to select, count and list it.
func countSelected(ctx context.Context, res Resource, q *Query) (n int64, ok bool, err error) {
	c, isColl := res.(*Collection)
	if !isColl {
		return 0, false, nil
	}
	s, err := c.prepare(q)
	if err != nil || s.needsRecord(false) {
		return 0, false, err
	}
	s.budget = submitCountBudget
	err = s.each(ctx, false, func(string, Record) error { n++; return nil })
	if errors.Is(err, errOverBudget) {
		return 0, false, nil
	}
	return n, err == nil, err
}

package batch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// This file holds the field indexes of built-in collections.
//
// An index maps the value of one top-level field to the ids of the records
// holding it. Its entries live in the bucket "cidx/<collection>", one key
// per record and indexed field: field NUL canonical-JSON-value NUL id (the
// value's encoding escapes NUL, so the parts never run into each other).
// Every write of a record (Put, Delete, the built-in operations, restore)
// changes the entries in the same transaction as the record, so an index
// never disagrees with the data it covers.
//
// Which fields are indexed is stored too ("cidxmeta": collection NUL field
// -> building or ready), so that an index declared once keeps being
// maintained even by a process that does not declare it. A new index is
// built in the background, a page of records per transaction, while writes
// keep every entry of the pages already done right; queries use it only
// once the build has gone over the whole collection.

const (
	bucketIndexes   = "cidx"
	bucketIndexMeta = "cidxmeta"
	indexBuilding   = 'b'
	indexReady      = 'r'
)

// indexPresent is the value of every index entry.
var indexPresent = []byte{1}

// IndexStatus describes one field index of a [Collection].
type IndexStatus struct {
	// Field is the indexed top-level field.
	Field string `json:"field"`
	// Ready is false while the index is being built; queries use it only
	// once it is ready.
	Ready bool `json:"ready"`
}

// indexState is an immutable view of a collection's indexes.
type indexState struct {
	fields []string // sorted: every maintained index
	ready  map[string]bool
	// gen numbers each declaration of an index, so that a build of an
	// index dropped (and perhaps declared again) meanwhile stops.
	gen map[string]uint64
}

// collIndexes holds the indexes of one collection name; every Collection
// value of that name shares it.
type collIndexes struct {
	name   string
	bucket string
	state  atomic.Pointer[indexState]
	mu     sync.Mutex // serialises changes of state
	builds map[uint64]bool
	gens   atomic.Uint64
}

func (ix *collIndexes) load() *indexState {
	if s := ix.state.Load(); s != nil {
		return s
	}
	return &indexState{}
}

// set stores field's status in memory.
func (ix *collIndexes) set(field string, ready bool) {
	old := ix.load()
	next := &indexState{fields: slices.Clone(old.fields), ready: make(map[string]bool, len(old.ready)+1), gen: make(map[string]uint64, len(old.gen)+1)}
	for k, v := range old.ready {
		next.ready[k] = v
	}
	for k, v := range old.gen {
		next.gen[k] = v
	}
	if !slices.Contains(next.fields, field) {
		next.fields = append(next.fields, field)
		slices.Sort(next.fields)
		next.gen[field] = ix.gens.Add(1)
	}
	next.ready[field] = ready
	ix.state.Store(next)
}

// unset forgets field's index in memory.
func (ix *collIndexes) unset(field string) {
	old := ix.load()
	next := &indexState{ready: make(map[string]bool, len(old.ready)), gen: make(map[string]uint64, len(old.gen))}
	for _, f := range old.fields {
		if f != field {
			next.fields = append(next.fields, f)
			next.ready[f] = old.ready[f]
			next.gen[f] = old.gen[f]
		}
	}
	ix.state.Store(next)
}

func indexMetaKey(coll, field string) []byte { return []byte(coll + "\x00" + field) }

func indexBucket(coll string) string { return bucketIndexes + "/" + coll }

// maxIndexedValue is the longest canonical value an index key holds as it
// is; a longer one is keyed by its SHA-256 ("#" and hex, which no JSON
// value starts with), so that keys stay far below bbolt's limit, and a
// filter on such a value checks the records too.
const maxIndexedValue = 256

// indexKey appends the entry key of (field, canonical value, id) to dst.
func indexKey(dst []byte, field string, canon, id []byte) []byte {
	dst = append(dst, field...)
	dst = append(dst, 0)
	if len(canon) > maxIndexedValue {
		sum := sha256.Sum256(canon)
		dst = append(dst, '#')
		dst = hex.AppendEncode(dst, sum[:])
	} else {
		dst = append(dst, canon...)
	}
	dst = append(dst, 0)
	return append(dst, id...)
}

// storedIndexes reads the indexes stored for collection coll.
func storedIndexes(tx Tx, coll string) map[string]bool {
	out := map[string]bool{}
	prefix := []byte(coll + "\x00")
	_ = scanPrefix(tx, bucketIndexMeta, prefix, func(k, v []byte) bool {
		out[string(k[len(prefix):])] = len(v) > 0 && v[0] == indexReady
		return true
	})
	return out
}

// checkIndexField reports a field name that cannot be indexed.
func checkIndexField(field string) error {
	if field == "" || strings.IndexByte(field, 0) >= 0 {
		return NewError(CodeValidation, "invalid index field %q: use a non-empty top-level field name", field)
	}
	return nil
}

// indexes returns the engine's index set for collection name, loading it
// from the store the first time.
func (e *Engine) indexes(name string) (*collIndexes, error) {
	e.idxMu.Lock()
	defer e.idxMu.Unlock()
	if ix, ok := e.idx[name]; ok {
		return ix, nil
	}
	ix := &collIndexes{name: name, bucket: indexBucket(name), builds: map[uint64]bool{}}
	var stored map[string]bool
	if err := e.store.View(func(tx Tx) error { stored = storedIndexes(tx, name); return nil }); err != nil {
		return nil, err
	}
	for f, ready := range stored {
		ix.set(f, ready)
	}
	if e.idx == nil {
		e.idx = map[string]*collIndexes{}
	}
	e.idx[name] = ix
	for f, ready := range stored {
		if !ready {
			e.buildIndex(ix, f)
		}
	}
	return ix, nil
}

// AddIndex adds an index on the top-level field to the collection and
// builds it in the background; it returns once the index is declared.
// From then on every write maintains it, and queries use it once
// [Collection.Indexes] reports it ready. Adding an index that exists does
// nothing. The index is stored: it stays maintained across restarts.
func (c *Collection) AddIndex(ctx context.Context, field string) error {
	if err := checkIndexField(field); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ix := c.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.load().ready[field]; ok {
		return nil
	}
	// Declared in memory first, so that every write from now on maintains
	// it, then stored.
	ix.set(field, false)
	if err := c.store.Update(func(tx Tx) error {
		return tx.Put(bucketIndexMeta, indexMetaKey(c.name, field), []byte{indexBuilding})
	}); err != nil {
		return fmt.Errorf("collection %s: declaring index %s: %w", c.name, field, err)
	}
	c.e.buildIndex(ix, field)
	return nil
}

// DropIndex removes the index on field and its entries, in one
// transaction. Dropping an index that does not exist does nothing.
func (c *Collection) DropIndex(ctx context.Context, field string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ix := c.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.load().ready[field]; !ok {
		return nil
	}
	prefix := indexKey(nil, field, nil, nil)
	prefix = prefix[:len(prefix)-1] // field NUL
	err := c.store.Update(func(tx Tx) error {
		if err := deletePrefix(tx, ix.bucket, prefix); err != nil {
			return err
		}
		// Forgotten inside the transaction: writes after it no longer
		// maintain the entries, and none can run in between.
		ix.unset(field)
		return tx.Delete(bucketIndexMeta, indexMetaKey(c.name, field))
	})
	if err != nil {
		ix.set(field, false)
		c.e.buildIndex(ix, field)
		return fmt.Errorf("collection %s: dropping index %s: %w", c.name, field, err)
	}
	return nil
}

// Indexes reports the collection's indexes, by field name.
func (c *Collection) Indexes() []IndexStatus {
	s := c.idx.load()
	out := make([]IndexStatus, 0, len(s.fields))
	for _, f := range s.fields {
		out = append(out, IndexStatus{Field: f, Ready: s.ready[f]})
	}
	return out
}

// WaitIndexes waits until every index of the collection is ready, or ctx
// ends.
func (c *Collection) WaitIndexes(ctx context.Context) error {
	for {
		c.e.mu.Lock()
		changed := c.e.changed
		c.e.mu.Unlock()
		all := true
		for _, st := range c.Indexes() {
			all = all && st.Ready
		}
		if all {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// indexBuildPage is how many records one transaction of an index build
// covers.
const indexBuildPage = 2000

// buildIndex starts building field's index in the background, unless a
// build is under way.
func (e *Engine) buildIndex(ix *collIndexes, field string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	gen := ix.load().gen[field]
	if e.closed || gen == 0 || ix.builds[gen] {
		return
	}
	ix.builds[gen] = true
	e.wg.Go(func() {
		err := e.runIndexBuild(e.ctx, ix, field, gen)
		e.mu.Lock()
		delete(ix.builds, gen)
		e.mu.Unlock()
		if err != nil && e.ctx.Err() == nil {
			e.log.Error("building an index failed", "collection", ix.name, "field", field, "error", err)
		}
	})
}

// runIndexBuild writes field's entry for every record, a page per
// transaction, then marks the index ready.
func (e *Engine) runIndexBuild(ctx context.Context, ix *collIndexes, field string, gen uint64) error {
	bucket := collectionsRoot + "/" + ix.name
	names := []string{field}
	vals := make([][]byte, 1)
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		more, dropped := false, false
		err := e.store.Update(func(tx Tx) error {
			if ix.load().gen[field] != gen {
				dropped = true // by DropIndex, which removed every entry
				return nil
			}
			var key []byte
			var ferr, err error
			more, err = scanPage(tx, bucket, &from, indexBuildPage, func(k, v []byte) bool {
				if ferr = rawFieldValues(v, names, vals); ferr != nil {
					ferr = fmt.Errorf("record %q: %w", k, ferr)
					return false
				}
				if vals[0] == nil {
					return true
				}
				canon, err := canonicalRaw(vals[0])
				if err != nil {
					ferr = fmt.Errorf("record %q: %w", k, err)
					return false
				}
				key = indexKey(key[:0], field, canon, k)
				ferr = tx.Put(ix.bucket, key, indexPresent)
				return ferr == nil
			})
			if err = firstErr(err, ferr); err != nil || more {
				return err
			}
			return tx.Put(bucketIndexMeta, indexMetaKey(ix.name, field), []byte{indexReady})
		})
		if err != nil || dropped {
			return err
		}
		if !more {
			ix.mu.Lock()
			if ix.load().gen[field] == gen {
				ix.set(field, true)
			}
			ix.mu.Unlock()
			e.notify()
			return nil
		}
	}
}

// reindex writes the entries of every index stored for collection coll
// from its records, in tx; restore uses it after replacing the records.
// The index bucket must be empty.
func reindex(tx Tx, coll string) error {
	stored := storedIndexes(tx, coll)
	if len(stored) == 0 {
		return nil
	}
	fields := make([]string, 0, len(stored))
	for f := range stored {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	vals := make([][]byte, len(fields))
	bucket := indexBucket(coll)
	var key []byte
	var ferr error
	err := tx.Scan(collectionsRoot+"/"+coll, nil, func(k, v []byte) bool {
		if ferr = rawFieldValues(v, fields, vals); ferr != nil {
			return false
		}
		for i, f := range fields {
			if vals[i] == nil {
				continue
			}
			var canon []byte
			if canon, ferr = canonicalRaw(vals[i]); ferr != nil {
				return false
			}
			key = indexKey(key[:0], f, canon, k) // stores copy keys
			if ferr = tx.Put(bucket, key, indexPresent); ferr != nil {
				return false
			}
		}
		return true
	})
	if err = firstErr(err, ferr); err != nil {
		return fmt.Errorf("indexing collection %s: %w", coll, err)
	}
	return nil
}

// indexFieldValues returns the canonical values of the indexed fields in
// the raw record v (nil for an absent field, or when v is nil).
func indexFieldValues(fields []string, v []byte, out [][]byte) error {
	clear(out)
	if v == nil {
		return nil
	}
	if err := rawFieldValues(v, fields, out); err != nil {
		return err
	}
	for i, raw := range out {
		if raw == nil {
			continue
		}
		canon, err := canonicalRaw(raw)
		if err != nil {
			return err
		}
		out[i] = canon
	}
	return nil
}

// writeRecord stores (or, with next nil, removes) the record id and
// changes its index entries in the same transaction. prev is the record as
// stored, nil when there is none. touched, when not nil, says which fields
// the change may have touched; entries of other fields are left alone.
func (c *Collection) writeRecord(tx Tx, id, prev, next []byte, touched func(string) bool) error {
	s := c.idx.load()
	if len(s.fields) > 0 {
		if err := c.updateEntries(tx, s.fields, id, prev, next, touched); err != nil {
			return err
		}
	}
	if next == nil {
		return tx.Delete(c.bucket, id)
	}
	return tx.Put(c.bucket, id, next)
}

func (c *Collection) updateEntries(tx Tx, all []string, id, prev, next []byte, touched func(string) bool) error {
	fields := all
	if touched != nil {
		fields = nil
		for _, f := range all {
			if touched(f) {
				fields = append(fields, f)
			}
		}
		if len(fields) == 0 {
			return nil
		}
	}
	olds := make([][]byte, len(fields))
	news := make([][]byte, len(fields))
	if err := indexFieldValues(fields, prev, olds); err != nil {
		return fmt.Errorf("collection %s: record %q as stored: %w", c.name, id, err)
	}
	if err := indexFieldValues(fields, next, news); err != nil {
		return fmt.Errorf("collection %s: record %q: %w", c.name, id, err)
	}
	var key []byte
	for i, f := range fields {
		o, n := olds[i], news[i]
		if o != nil && n != nil && bytes.Equal(o, n) {
			continue
		}
		if o != nil {
			key = indexKey(key[:0], f, o, id)
			if err := tx.Delete(c.idx.bucket, key); err != nil {
				return err
			}
		}
		if n != nil {
			key = indexKey(key[:0], f, n, id)
			if err := tx.Put(c.idx.bucket, key, indexPresent); err != nil {
				return err
			}
		}
	}
	return nil
}

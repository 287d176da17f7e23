package batch

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
)

// memoryStore is the in-memory [Store]: the same engine with no file, for
// tests and programs that keep nothing across restarts. Views take a read
// lock and updates the write lock, so a View sees one consistent state.
type memoryStore struct {
	// mu guards everything below; Update holds it for writing, View for
	// reading.
	mu      sync.RWMutex
	buckets map[string]*memBucket
	closed  bool
}

var _ Store = (*memoryStore)(nil)

// memBucket is one bucket: values by key, plus the key order, rebuilt lazily
// when a write lands out of order.
type memBucket struct {
	values map[string][]byte
	keys   []string // sorted when !dirty
	dirty  bool
	seq    uint64
}

// errStoreClosed is returned by a closed memory store.
var errStoreClosed = errors.New("batch: store is closed")

// errReadOnly is returned by a write in a View.
var errReadOnly = errors.New("batch: write in a read-only transaction")

// NewMemoryStore returns an empty in-memory [Store].
func NewMemoryStore() Store {
	return &memoryStore{buckets: make(map[string]*memBucket)}
}

func (s *memoryStore) View(fn func(Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errStoreClosed
	}
	return fn(&memTx{s: s})
}

func (s *memoryStore) Update(fn func(Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	tx := &memTx{s: s, writable: true}
	err := fn(tx)
	if err != nil {
		tx.rollback()
	}
	// Views run concurrently under the read lock and must not reorder keys,
	// so every bucket leaves an update sorted.
	for b := range tx.touched {
		if b.dirty {
			b.sorted()
		}
	}
	return err
}

func (s *memoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// memTx is a transaction on the memory store. A writable one keeps an undo
// log so a failed Update leaves no trace.
type memTx struct {
	s        *memoryStore
	writable bool
	undo     []func()
	touched  map[*memBucket]struct{} // buckets written to
}

func (t *memTx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
}

func (t *memTx) touch(b *memBucket) {
	if t.touched == nil {
		t.touched = make(map[*memBucket]struct{})
	}
	t.touched[b] = struct{}{}
}

func (t *memTx) bucket(name string, create bool) *memBucket {
	b := t.s.buckets[name]
	if b == nil && create {
		b = &memBucket{values: make(map[string][]byte)}
		t.s.buckets[name] = b
		t.undo = append(t.undo, func() { delete(t.s.buckets, name) })
	}
	return b
}

func (t *memTx) Get(bucket string, key []byte) []byte {
	b := t.bucket(bucket, false)
	if b == nil {
		return nil
	}
	return b.values[string(key)]
}

func (t *memTx) Put(bucket string, key, value []byte) error {
	if !t.writable {
		return errReadOnly
	}
	if len(key) == 0 {
		return errors.New("batch: empty key")
	}
	b := t.bucket(bucket, true)
	t.touch(b)
	k := string(key)
	old, existed := b.values[k]
	b.values[k] = bytes.Clone(value)
	if !existed {
		if n := len(b.keys); n > 0 && b.keys[n-1] >= k {
			b.dirty = true
		}
		b.keys = append(b.keys, k)
	}
	t.undo = append(t.undo, func() {
		if existed {
			b.values[k] = old
			return
		}
		delete(b.values, k)
		b.dirty = true
	})
	return nil
}

func (t *memTx) Delete(bucket string, key []byte) error {
	if !t.writable {
		return errReadOnly
	}
	b := t.bucket(bucket, false)
	if b == nil {
		return nil
	}
	k := string(key)
	old, existed := b.values[k]
	if !existed {
		return nil
	}
	t.touch(b)
	delete(b.values, k)
	b.dirty = true
	t.undo = append(t.undo, func() { b.values[k] = old })
	return nil
}

func (t *memTx) DeleteBucket(bucket string) error {
	if !t.writable {
		return errReadOnly
	}
	for name, b := range t.s.buckets {
		if name == bucket || strings.HasPrefix(name, bucket+"/") {
			delete(t.s.buckets, name)
			t.undo = append(t.undo, func() { t.s.buckets[name] = b })
		}
	}
	return nil
}

// sorted returns the bucket's keys in order, rebuilding them if needed. It
// only rebuilds under the write lock: Update leaves no bucket dirty.
func (b *memBucket) sorted() []string {
	if b.dirty {
		b.keys = b.keys[:0]
		for k := range b.values {
			b.keys = append(b.keys, k)
		}
		slices.Sort(b.keys)
		b.dirty = false
	}
	return b.keys
}

func (t *memTx) Scan(bucket string, from []byte, fn func(key, value []byte) bool) error {
	return t.scan(bucket, from, false, fn)
}

func (t *memTx) ScanReverse(bucket string, from []byte, fn func(key, value []byte) bool) error {
	return t.scan(bucket, from, true, fn)
}

// scan is Scan, or ScanReverse when reverse is set.
func (t *memTx) scan(bucket string, from []byte, reverse bool, fn func(key, value []byte) bool) error {
	b := t.bucket(bucket, false)
	if b == nil {
		return nil
	}
	keys := b.sorted()
	i, found := slices.BinarySearch(keys, string(from))
	step := 1
	if reverse {
		step = -1
		if from == nil {
			i = len(keys) - 1
		} else if !found {
			i--
		}
	}
	for ; i >= 0 && i < len(keys); i += step {
		v, ok := b.values[keys[i]]
		if !ok {
			continue
		}
		if !fn([]byte(keys[i]), v) {
			return nil
		}
	}
	return nil
}

func (t *memTx) NextSequence(bucket string) (uint64, error) {
	if !t.writable {
		return 0, errReadOnly
	}
	b := t.bucket(bucket, true)
	b.seq++
	t.undo = append(t.undo, func() { b.seq-- })
	return b.seq, nil
}

package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BoltOptions configures [OpenBoltStore]. The zero value gives the defaults.
type BoltOptions struct {
	// Timeout bounds the wait for the file lock held by another process.
	// 0 means one second.
	Timeout time.Duration
	// NoSync skips fsync on commit. It gives up durability and is meant for
	// throw-away stores only. Default false.
	NoSync bool
	// MaxSize, if positive, caps the file's size in bytes: a write that
	// would grow it further fails with STORAGE_FULL, as on a full disk.
	MaxSize int
}

// boltStore is the bbolt [Store]: one file, one writer at a time, readers
// that never wait for the writer.
type boltStore struct {
	path string
	opts *bolt.Options

	// writers is held by every Update, and by Compact while it copies the
	// file, so that writes wait for the copy while reads go on.
	writers sync.Mutex
	// mu guards db: every transaction holds it for reading; Compact holds it
	// for writing only while it swaps the copied file in. A transaction
	// function must never start another transaction.
	mu sync.RWMutex
	db *bolt.DB
}

// compactLockWait bounds how long Compact waits for the writer and then for
// the readers; past it, the compaction gives up (the store is busy) rather
// than hold everyone else up. A variable for tests.
var compactLockWait = 10 * time.Second

// compactBusy, when set, is told each time Compact finds a lock it waits
// for taken, and what it waits for: a seam for tests, nil otherwise.
var compactBusy func(what string)

// tryLock takes lock within wait, polling, so that a waiting Compact never
// queues ahead of other transactions. It gives up with an error when the
// time is over or ctx ends.
func tryLock(ctx context.Context, lock func() bool, wait time.Duration, what string) error {
	deadline := time.Now().Add(wait)
	for delay := 100 * time.Microsecond; !lock(); delay = min(2*delay, 20*time.Millisecond) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("batch: compact: the store stayed busy (%s) for %v; try again later", what, wait)
		}
		if compactBusy != nil {
			compactBusy(what)
		}
		time.Sleep(delay)
	}
	return nil
}

var (
	_ Store       = (*boltStore)(nil)
	_ Snapshotter = (*boltStore)(nil)
	_ Compactor   = (*boltStore)(nil)
)

// OpenBoltStore opens (creating it if needed) the bbolt file at path as a
// [Store]. A file locked by another process fails after opts.Timeout with an
// error saying so; a file that is not a store, or was cut short, fails with
// an error naming the file and the problem, and is left untouched. A nil
// opts means defaults.
func OpenBoltStore(path string, opts *BoltOptions) (Store, error) {
	var o BoltOptions
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	bo := &bolt.Options{
		Timeout:         o.Timeout,
		NoSync:          o.NoSync,
		InitialMmapSize: 64 << 20,
		FreelistType:    bolt.FreelistMapType,
		MaxSize:         o.MaxSize,
	}
	if err := checkFile(path); err != nil {
		return nil, fmt.Errorf("batch: open bolt store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, bo)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("batch: open bolt store %s: the file is locked by another process (is another server using it?); gave up after %v: %w", path, o.Timeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("batch: open bolt store %s: not a batch store or damaged: %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("batch: open bolt store %s: %w", path, storageErr(err))
	}
	return &boltStore{path: path, opts: bo, db: db}, nil
}

func (s *boltStore) View(fn func(Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error { return fn(&boltTx{tx: tx}) })
}

func (s *boltStore) Update(fn func(Tx) error) error {
	s.writers.Lock()
	defer s.writers.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return storageErr(s.db.Update(func(tx *bolt.Tx) error { return fn(&boltTx{tx: tx}) }))
}

func (s *boltStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

// Compact rewrites the file with only its live data (bbolt files never
// shrink on their own): it copies into a temporary file beside it, swaps
// that in and reopens it. Writes wait while it copies; reads go on, and
// wait only for the swap. Its own waits are bounded: a store too busy to
// let it in for [compactLockWait] fails the compaction, not the others.
// When the copy fails the original file stays in use. It must not be
// called from inside a transaction.
func (s *boltStore) Compact(ctx context.Context) (before, after int64, err error) {
	if err := tryLock(ctx, s.writers.TryLock, compactLockWait, "a write is running"); err != nil {
		return 0, 0, err
	}
	defer s.writers.Unlock()
	if before, err = fileSize(s.path); err != nil {
		return 0, 0, err
	}
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: s.opts.Timeout, NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return before, 0, fmt.Errorf("batch: compact: %w", err)
	}
	s.mu.RLock()
	err = bolt.Compact(dst, s.db, 64<<20)
	s.mu.RUnlock()
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = tryLock(ctx, s.mu.TryLock, compactLockWait, "long reads are running")
	}
	if err != nil {
		os.Remove(tmp)
		return before, before, fmt.Errorf("batch: compact: %w", storageErr(err))
	}
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return before, before, fmt.Errorf("batch: compact: closing the store: %w", err)
	}
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		syncDir(filepath.Dir(s.path))
	} else {
		os.Remove(tmp)
	}
	db, err := bolt.Open(s.path, 0o600, s.opts)
	if err != nil {
		return before, 0, fmt.Errorf("batch: compact: reopening %s: %w", s.path, err)
	}
	s.db = db
	if renameErr != nil {
		return before, before, fmt.Errorf("batch: compact: %w", renameErr)
	}
	after, err = fileSize(s.path)
	return before, after, err
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("batch: %w", err)
	}
	return fi.Size(), nil
}

// syncDir makes a rename in dir durable; failures only weaken that.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Snapshot writes a consistent copy of the database file to w, taken in one
// read transaction so writers are not held up.
func (s *boltStore) Snapshot(w io.Writer) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// boltTx adapts a bolt.Tx, caching the bucket handles it resolves.
type boltTx struct {
	tx      *bolt.Tx
	buckets map[string]*bolt.Bucket
}

// bucket resolves a '/'-separated bucket path, creating it when create is set.
func (t *boltTx) bucket(name string, create bool) (*bolt.Bucket, error) {
	if b, ok := t.buckets[name]; ok {
		return b, nil
	}
	var b *bolt.Bucket
	for i, part := range strings.Split(name, "/") {
		key := []byte(part)
		var next *bolt.Bucket
		switch {
		case i == 0 && create:
			var err error
			if next, err = t.tx.CreateBucketIfNotExists(key); err != nil {
				return nil, fmt.Errorf("bucket %q: %w", name, err)
			}
		case i == 0:
			next = t.tx.Bucket(key)
		case create:
			var err error
			if next, err = b.CreateBucketIfNotExists(key); err != nil {
				return nil, fmt.Errorf("bucket %q: %w", name, err)
			}
		default:
			next = b.Bucket(key)
		}
		if next == nil {
			return nil, nil
		}
		if i == 0 && appendOnly(part) {
			next.FillPercent = appendFill
		}
		b = next
	}
	if t.buckets == nil {
		t.buckets = make(map[string]*bolt.Bucket)
	}
	if appendOnly(name) {
		b.FillPercent = appendFill
	}
	t.buckets[name] = b
	return b, nil
}

func (t *boltTx) Get(bucket string, key []byte) []byte {
	b, _ := t.bucket(bucket, false)
	if b == nil {
		return nil
	}
	return b.Get(key)
}

func (t *boltTx) Put(bucket string, key, value []byte) error {
	b, err := t.bucket(bucket, true)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

func (t *boltTx) Delete(bucket string, key []byte) error {
	b, _ := t.bucket(bucket, false)
	if b == nil {
		return nil
	}
	return b.Delete(key)
}

func (t *boltTx) DeleteBucket(bucket string) error {
	for k := range t.buckets {
		if k == bucket || strings.HasPrefix(k, bucket+"/") {
			delete(t.buckets, k)
		}
	}
	var err error
	if i := strings.LastIndexByte(bucket, '/'); i < 0 {
		err = t.tx.DeleteBucket([]byte(bucket))
	} else {
		b, _ := t.bucket(bucket[:i], false)
		if b == nil {
			return nil
		}
		err = b.DeleteBucket([]byte(bucket[i+1:]))
	}
	if errors.Is(err, berrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

func (t *boltTx) Scan(bucket string, from []byte, fn func(key, value []byte) bool) error {
	return t.scan(bucket, from, false, fn)
}

func (t *boltTx) ScanReverse(bucket string, from []byte, fn func(key, value []byte) bool) error {
	return t.scan(bucket, from, true, fn)
}

// scan is Scan, or ScanReverse when reverse is set. Nested buckets (keys
// without a value) are passed over.
func (t *boltTx) scan(bucket string, from []byte, reverse bool, fn func(key, value []byte) bool) error {
	b, _ := t.bucket(bucket, false)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	var k, v []byte
	switch {
	case from != nil:
		k, v = c.Seek(from)
		if reverse && k == nil {
			k, v = c.Last()
		} else if reverse && !bytes.Equal(k, from) {
			k, v = c.Prev()
		}
	case reverse:
		k, v = c.Last()
	default:
		k, v = c.First()
	}
	for k != nil {
		if v != nil && !fn(k, v) {
			return nil
		}
		if reverse {
			k, v = c.Prev()
		} else {
			k, v = c.Next()
		}
	}
	return nil
}

func (t *boltTx) NextSequence(bucket string) (uint64, error) {
	b, err := t.bucket(bucket, true)
	if err != nil {
		return 0, err
	}
	return b.NextSequence()
}

// appendFill is the fill percent of buckets whose keys only grow: bbolt
// splits a page at its fill percent, so the default (half) leaves every
// page of an appended bucket half empty.
const appendFill = 0.95

// appendOnly says whether new keys of bucket name always come after the
// ones it holds, and only its last few values are rewritten, little larger:
// jobs by sequence, audit entries, item entries and errors, done bitmaps
// (and the buckets holding each job's), stored batches and upload chunks.
func appendOnly(name string) bool {
	switch name {
	case bucketJobs, bucketJobIndex, bucketAuditLog, bucketBatches, bucketBatchChunks, bucketJobsFinished, bucketUploads:
		return true
	case "audit", "items", "errors", "done":
		// The parents of the per-job buckets: new jobs' come after the
		// last ones of their id length.
		return true
	}
	for _, p := range []string{"audit/", "items/", "errors/", "done/"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

package batch

import (
	"context"
	"io"
)

// Store is the durable state under an [Engine]: an ordered, transactional
// key-value store with named buckets. Everything the engine keeps (jobs,
// items, outcomes, built-in collections, artifacts) is laid out on top of it,
// so a new backend only has to provide these few methods.
//
// Contract, checked for every implementation by the shared conformance suite:
//   - Safe for concurrent use. Update calls run one at a time; View calls may
//     run alongside each other and alongside an Update, and see the state as
//     of the last committed Update when they began.
//   - Update is atomic: if fn returns an error, or the commit fails, none of
//     its writes are visible, and Update returns that error.
//   - Keys within a bucket are ordered bytewise.
//
// [Open] returns the bbolt implementation; [NewMemoryStore] the in-memory one.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits it if fn
	// returns nil.
	Update(fn func(Tx) error) error
	// Close releases the store. No call may follow it.
	Close() error
}

// Tx is one transaction of a [Store]. A Tx, and every byte slice it returns,
// is valid only until the function it was handed to returns; callers copy
// what they keep. Buckets are named by strings; a name may hold '/' to
// express nesting ("items/batch12"), and a bucket springs into existence on
// its first Put.
type Tx interface {
	// Get returns the value stored under key, or nil when there is none.
	Get(bucket string, key []byte) []byte
	// Put stores value under key. It fails in a read-only transaction.
	Put(bucket string, key, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(bucket string, key []byte) error
	// DeleteBucket removes a bucket with all its keys and nested buckets; a
	// missing bucket is not an error.
	DeleteBucket(bucket string) error
	// Scan calls fn for each key at or after from (all keys when from is
	// nil) in ascending order, until fn returns false.
	Scan(bucket string, from []byte, fn func(key, value []byte) bool) error
	// ScanReverse is Scan in descending order, starting at or before from
	// (at the last key when from is nil).
	ScanReverse(bucket string, from []byte, fn func(key, value []byte) bool) error
	// NextSequence returns the bucket's next sequence number, starting at 1.
	// A rolled-back transaction gives its numbers back.
	NextSequence(bucket string) (uint64, error)
}

// Snapshotter is a [Store] that can write a consistent copy of itself while
// other transactions go on. The bbolt store is one.
type Snapshotter interface {
	// Snapshot writes a consistent copy of the whole store to w and returns
	// the number of bytes written.
	Snapshot(w io.Writer) (int64, error)
}

// Compactor is a [Store] whose file can be rewritten without its free space
// while the engine runs; the optimize operation uses it. The bbolt store is
// one. Transactions started meanwhile wait for it to finish.
type Compactor interface {
	// Compact compacts the store and returns its size in bytes before and
	// after. It must not be called from inside a transaction.
	Compact(ctx context.Context) (before, after int64, err error)
}

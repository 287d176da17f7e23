package batch_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// readCountingStore counts the collection records read through it.
type readCountingStore struct {
	batch.Store
	reads atomic.Int64
}

func (s *readCountingStore) View(fn func(batch.Tx) error) error {
	return s.Store.View(func(tx batch.Tx) error { return fn(&readCountingTx{tx, s}) })
}

func (s *readCountingStore) Update(fn func(batch.Tx) error) error {
	return s.Store.Update(func(tx batch.Tx) error { return fn(&readCountingTx{tx, s}) })
}

type readCountingTx struct {
	batch.Tx
	s *readCountingStore
}

func isCollection(bucket string) bool { return strings.HasPrefix(bucket, "coll/") }

func (t *readCountingTx) Get(bucket string, key []byte) []byte {
	v := t.Tx.Get(bucket, key)
	if v != nil && isCollection(bucket) {
		t.s.reads.Add(1)
	}
	return v
}

func (t *readCountingTx) Scan(bucket string, from []byte, fn func(k, v []byte) bool) error {
	return t.Tx.Scan(bucket, from, func(k, v []byte) bool {
		if isCollection(bucket) {
			t.s.reads.Add(1)
		}
		return fn(k, v)
	})
}

// TestSelection_ReadsEachRecordOnce counts the records the document's
// update reads: submitting, selecting, counting and listing read each
// record at most once (none with the filter's fields indexed), and running
// reads each selected record once more to patch it.
func TestSelection_ReadsEachRecordOnce(t *testing.T) {
	t.Parallel()
	for _, indexed := range []bool{false, true} {
		store := &readCountingStore{Store: batch.NewMemoryStore()}
		e, err := batch.New(store, nil)
		require.NoError(t, err)
		tb := &testBundle{e: e}
		tb.fields, err = e.Collection("fields")
		require.NoError(t, err)
		if indexed {
			tb.indexFields(t, "status", "irrigation_enabled")
		}
		tb.seedFields(t, 2000)
		store.reads.Store(0)
		job := tb.wait(t, tb.submit(t, docBatch(t)).ID)
		require.Equal(t, int64(500), job.Progress.Completed)
		want := int64(2000 + 500)
		if indexed {
			want = 500
		}
		require.Equal(t, want, store.reads.Load(), "indexed: %v", indexed)
		require.NoError(t, e.Close(t.Context()))
	}
}

// TestSelection_WhereNarrowedByIndex: the equalities of a where expression
// select candidates through indexes, and the expression decides each.
func TestSelection_WhereNarrowedByIndex(t *testing.T) {
	t.Parallel()
	store := &readCountingStore{Store: batch.NewMemoryStore()}
	e, err := batch.New(store, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(t.Context())) }()
	tb := &testBundle{e: e}
	tb.indexFields(t, "status", "irrigation_enabled")
	tb.seedFields(t, 2000)
	store.reads.Store(0)
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "update", Resource: "fields",
		Where:  `record.status == "active" and true == record.irrigation_enabled and record.area > 10`,
		Update: map[string]any{"checked": true},
	}}}).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	// 500 candidates read once to evaluate the expression, and each of
	// the selected ones once more to patch it.
	var want int64
	require.NoError(t, tb.fields.Scan(t.Context(), nil, func(r batch.Record) error {
		sel := r["status"] == "active" && r["irrigation_enabled"] == true && r["area"].(float64) > 10
		require.Equal(t, sel, r["checked"] == true, r.ID())
		if sel {
			want++
		}
		return nil
	}))
	require.Equal(t, want, job.Progress.Completed)
	require.Equal(t, 500+want, store.reads.Load()-2000, "reads beside the final check's scan")
}

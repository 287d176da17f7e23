package batch

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// Issue 18, observation 3: buckets with appended keys fill their pages,
// not half of them.
func TestBoltStore_AppendedBucketsFillTheirPages(t *testing.T) {
	t.Parallel()
	s, err := OpenBoltStore(filepath.Join(t.TempDir(), "fill.db"), &BoltOptions{NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	val := make([]byte, 40)
	for base := 0; base < 50_000; base += 1000 {
		require.NoError(t, s.Update(func(tx Tx) error {
			for i := base; i < base+1000; i++ {
				for _, b := range []string{"errors/batch1", "other"} {
					if err := tx.Put(b, u64key(uint64(i)), val); err != nil {
						return err
					}
				}
			}
			return nil
		}))
	}
	fill := func(name string) float64 {
		var st bolt.BucketStats
		require.NoError(t, s.(*boltStore).db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(name))
			if i := len("errors/"); name == "errors/batch1" {
				b = tx.Bucket([]byte(name[:i-1])).Bucket([]byte(name[i:]))
			}
			st = b.Stats()
			return nil
		}))
		return float64(st.LeafInuse) / float64(st.LeafAlloc)
	}
	require.Greater(t, fill("errors/batch1"), 0.85, "an appended bucket's leaf fill")
	require.Less(t, fill("other"), 0.6, "another bucket keeps bbolt's default")
}

// Issue 18, observation 3: a record-driven operation's successes leave a
// bit each and no item record.
func TestOutcomes_RecordDrivenSuccessesAreBits(t *testing.T) {
	t.Parallel()
	e, err := Open(filepath.Join(t.TempDir(), "batch.db"), &Options{Retention: -1})
	require.NoError(t, err)
	defer e.Close(t.Context())
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	recs := make([]Record, 5000)
	for i := range recs {
		recs[i] = Record{"id": "f" + strconv.Itoa(i), "v": float64(i)}
	}
	require.NoError(t, fields.PutMany(t.Context(), recs))
	job, err := e.Submit(t.Context(), &Batch{Operations: []OperationSpec{{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"x": 1}}}}, nil)
	require.NoError(t, err)
	job, err = e.Wait(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, int64(5000), job.Progress.Completed)
	items, bits := 0, 0
	require.NoError(t, e.store.View(func(tx Tx) error {
		if err := tx.Scan(itemsBucket(job.ID), nil, func(_, _ []byte) bool { items++; return true }); err != nil {
			return err
		}
		return tx.Scan(doneBucket(job.ID), nil, func(_, v []byte) bool {
			for _, b := range v {
				bits += bits8(b)
			}
			return true
		})
	}))
	require.Zero(t, items, "item records left by successes")
	require.Equal(t, 5000, bits)
}

func bits8(b byte) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// Issue 18, observation 8: a big submitted batch is stored in chunks, not
// as one value in the leaf later submissions rewrite; it reads back whole
// and goes with its job.
func TestBatch_BigOneStoredInChunks(t *testing.T) {
	t.Parallel()
	e, err := Open(filepath.Join(t.TempDir(), "batch.db"), &Options{Retention: -1})
	require.NoError(t, err)
	defer e.Close(t.Context())
	var nd strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&nd, "{\"id\":\"r%04d\",\"pad\":\"%s\"}\n", i, strings.Repeat("p", 60))
	}
	job, err := e.Submit(t.Context(), &Batch{Operations: []OperationSpec{{Type: "import", Resource: "fields", Source: &Source{Format: "ndjson", Data: nd.String()}}}}, nil)
	require.NoError(t, err)
	job, err = e.Wait(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, int64(3000), job.Progress.Completed)
	seq, _ := parseJobID(job.ID)
	chunks, biggest := 0, 0
	require.NoError(t, e.store.View(func(tx Tx) error {
		require.Equal(t, []byte{batchChunked}, tx.Get(bucketBatches, u64key(seq)))
		b, err := getBatch(tx, seq)
		require.NoError(t, err)
		require.Equal(t, nd.String(), b.Operations[0].Source.Data)
		return tx.Scan(bucketBatchChunks, nil, func(_, v []byte) bool { chunks++; biggest = max(biggest, len(v)); return true })
	}))
	require.Greater(t, chunks, 3)
	require.LessOrEqual(t, biggest, batchChunk)
	require.NoError(t, e.Delete(t.Context(), job.ID))
	require.NoError(t, e.store.View(func(tx Tx) error {
		return tx.Scan(bucketBatchChunks, nil, func(_, _ []byte) bool { t.Error("a chunk outlived its job"); return false })
	}))
}

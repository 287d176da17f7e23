package batch

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testStore is the conformance suite every Store implementation passes.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	put := func(t *testing.T, s Store, bucket, k, v string) {
		t.Helper()
		require.NoError(t, s.Update(func(tx Tx) error { return tx.Put(bucket, []byte(k), []byte(v)) }))
	}
	get := func(t *testing.T, s Store, bucket, k string) []byte {
		t.Helper()
		var out []byte
		require.NoError(t, s.View(func(tx Tx) error { out = bytes.Clone(tx.Get(bucket, []byte(k))); return nil }))
		return out
	}
	scan := func(t *testing.T, s Store, bucket string, from []byte, reverse bool) []string {
		t.Helper()
		var keys []string
		require.NoError(t, s.View(func(tx Tx) error {
			fn := func(k, _ []byte) bool { keys = append(keys, string(k)); return true }
			if reverse {
				return tx.ScanReverse(bucket, from, fn)
			}
			return tx.Scan(bucket, from, fn)
		}))
		return keys
	}

	t.Run("PutGetDelete", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		require.Nil(t, get(t, s, "b", "k"), "missing bucket reads as nil")
		put(t, s, "b", "k", "v1")
		require.Equal(t, []byte("v1"), get(t, s, "b", "k"))
		put(t, s, "b", "k", "v2")
		require.Equal(t, []byte("v2"), get(t, s, "b", "k"))
		require.NoError(t, s.Update(func(tx Tx) error { return tx.Delete("b", []byte("k")) }))
		require.Nil(t, get(t, s, "b", "k"))
		require.NoError(t, s.Update(func(tx Tx) error { return tx.Delete("b", []byte("absent")) }))
		require.NoError(t, s.Update(func(tx Tx) error { return tx.Delete("nobucket", []byte("x")) }))
	})

	t.Run("UpdateRollsBackOnError", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		put(t, s, "b", "keep", "1")
		boom := errors.New("boom")
		err := s.Update(func(tx Tx) error {
			require.NoError(t, tx.Put("b", []byte("keep"), []byte("changed")))
			require.NoError(t, tx.Put("b", []byte("new"), []byte("x")))
			require.NoError(t, tx.Put("other", []byte("k"), []byte("x")))
			require.NoError(t, tx.Delete("b", []byte("keep")))
			_, err := tx.NextSequence("b")
			require.NoError(t, err)
			return boom
		})
		require.ErrorIs(t, err, boom)
		require.Equal(t, []byte("1"), get(t, s, "b", "keep"))
		require.Nil(t, get(t, s, "b", "new"))
		require.Nil(t, get(t, s, "other", "k"))
		require.NoError(t, s.Update(func(tx Tx) error {
			n, err := tx.NextSequence("b")
			require.Equal(t, uint64(1), n, "a rolled-back sequence is given back")
			return err
		}))
	})

	t.Run("ViewIsReadOnly", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		require.Error(t, s.View(func(tx Tx) error { return tx.Put("b", []byte("k"), []byte("v")) }))
		require.Nil(t, get(t, s, "b", "k"))
	})

	t.Run("ScanOrderAndBounds", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		require.NoError(t, s.Update(func(tx Tx) error {
			for _, k := range []string{"d", "a", "c", "e", "b"} {
				if err := tx.Put("b", []byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			return nil
		}))
		require.Equal(t, []string{"a", "b", "c", "d", "e"}, scan(t, s, "b", nil, false))
		require.Equal(t, []string{"c", "d", "e"}, scan(t, s, "b", []byte("c"), false))
		require.Equal(t, []string{"c", "d", "e"}, scan(t, s, "b", []byte("bb"), false))
		require.Equal(t, []string{"e", "d", "c", "b", "a"}, scan(t, s, "b", nil, true))
		require.Equal(t, []string{"c", "b", "a"}, scan(t, s, "b", []byte("c"), true))
		require.Equal(t, []string{"b", "a"}, scan(t, s, "b", []byte("bb"), true))
		require.Equal(t, []string{"e", "d", "c", "b", "a"}, scan(t, s, "b", []byte("z"), true))
		require.Empty(t, scan(t, s, "missing", nil, false))

		var stopped []string
		require.NoError(t, s.View(func(tx Tx) error {
			return tx.Scan("b", nil, func(k, _ []byte) bool { stopped = append(stopped, string(k)); return len(stopped) < 2 })
		}))
		require.Equal(t, []string{"a", "b"}, stopped)
	})

	t.Run("NestedBuckets", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		put(t, s, "items/job1", "k", "1")
		put(t, s, "items/job2", "k", "2")
		put(t, s, "items", "plain", "p")
		require.Equal(t, []byte("1"), get(t, s, "items/job1", "k"))
		require.Equal(t, []string{"plain"}, scan(t, s, "items", nil, false), "nested buckets are not keys")
		require.NoError(t, s.Update(func(tx Tx) error { return tx.DeleteBucket("items/job1") }))
		require.Nil(t, get(t, s, "items/job1", "k"))
		require.Equal(t, []byte("2"), get(t, s, "items/job2", "k"))
		require.NoError(t, s.Update(func(tx Tx) error { return tx.DeleteBucket("items/none") }))
		require.NoError(t, s.Update(func(tx Tx) error { return tx.DeleteBucket("nothing") }))
	})

	t.Run("Sequences", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var got []uint64
		for range 3 {
			require.NoError(t, s.Update(func(tx Tx) error {
				n, err := tx.NextSequence("jobs")
				got = append(got, n)
				return err
			}))
		}
		require.Equal(t, []uint64{1, 2, 3}, got)
	})

	t.Run("ConcurrentWritersAndReaders", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 50 {
					err := s.Update(func(tx Tx) error {
						return tx.Put("b", fmt.Appendf(nil, "%d-%03d", w, i), []byte("v"))
					})
					if err != nil {
						t.Error(err)
					}
				}
			})
			wg.Go(func() {
				for range 50 {
					_ = s.View(func(tx Tx) error { return tx.Scan("b", nil, func(_, _ []byte) bool { return true }) })
				}
			})
		}
		wg.Wait()
		require.Len(t, scan(t, s, "b", nil, false), 200)
	})

	t.Run("ValuesOutliveNothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		v := []byte("original")
		require.NoError(t, s.Update(func(tx Tx) error { return tx.Put("b", []byte("k"), v) }))
		copy(v, "mutated!")
		require.Equal(t, []byte("original"), get(t, s, "b", "k"), "the store keeps its own copy after commit")
	})
}

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	testStore(t, func(t *testing.T) Store {
		s := NewMemoryStore()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore(t *testing.T) {
	t.Parallel()
	testStore(t, func(t *testing.T) Store {
		s, err := OpenBoltStore(filepath.Join(t.TempDir(), "store.db"), nil)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore_SecondOpenTimesOut(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBoltStore(path, nil)
	require.NoError(t, err)
	defer s.Close()
	_, err = OpenBoltStore(path, &BoltOptions{Timeout: 50 * 1e6})
	require.Error(t, err)
}

package batch

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// txStores are a fresh memory store and a fresh bbolt store.
func txStores(t *testing.T) map[string]Store {
	t.Helper()
	bs, err := OpenBoltStore(filepath.Join(t.TempDir(), "batch.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { bs.Close() })
	return map[string]Store{"memory": NewMemoryStore(), "bolt": bs}
}

func putKeys(t *testing.T, s Store, bucket string, keys ...string) {
	t.Helper()
	require.NoError(t, s.Update(func(tx Tx) error {
		for _, k := range keys {
			if err := tx.Put(bucket, []byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	}))
}

func bucketKeys(t *testing.T, s Store, bucket string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.View(func(tx Tx) error {
		return tx.Scan(bucket, nil, func(k, _ []byte) bool { keys = append(keys, string(k)); return true })
	}))
	return keys
}

func TestScanPrefixAndDeletePrefix(t *testing.T) {
	t.Parallel()
	for name, s := range txStores(t) {
		t.Run(name, func(t *testing.T) {
			putKeys(t, s, "b", "a", "ab", "abc", "abd", "ac", "b")
			var got []string
			require.NoError(t, s.View(func(tx Tx) error {
				return scanPrefix(tx, "b", []byte("ab"), func(k, v []byte) bool {
					require.Equal(t, "v"+string(k), string(v))
					got = append(got, string(k))
					return len(got) < 2
				})
			}))
			require.Equal(t, []string{"ab", "abc"}, got, "stops when fn says so")

			require.NoError(t, s.Update(func(tx Tx) error { return deletePrefix(tx, "b", []byte("ab")) }))
			require.Equal(t, []string{"a", "ac", "b"}, bucketKeys(t, s, "b"))
			require.NoError(t, s.Update(func(tx Tx) error { return deletePrefix(tx, "missing", []byte("a")) }))

			require.NoError(t, s.Update(func(tx Tx) error { return deleteKeys(tx, "b", [][]byte{[]byte("a"), []byte("zz")}) }))
			require.Equal(t, []string{"ac", "b"}, bucketKeys(t, s, "b"))
		})
	}
}

func TestScanPage(t *testing.T) {
	t.Parallel()
	for name, s := range txStores(t) {
		t.Run(name, func(t *testing.T) {
			var keys []string
			for i := range 7 {
				keys = append(keys, fmt.Sprintf("k%d", i))
			}
			putKeys(t, s, "b", keys...)
			var from []byte
			var pages [][]string
			for {
				var page []string
				var more bool
				require.NoError(t, s.View(func(tx Tx) error {
					var err error
					more, err = scanPage(tx, "b", &from, 3, func(k, _ []byte) bool {
						page = append(page, string(k))
						return true
					})
					return err
				}))
				pages = append(pages, page)
				require.Equal(t, page[len(page)-1], string(from), "from is the page's last key")
				if !more {
					break
				}
			}
			require.Equal(t, [][]string{{"k0", "k1", "k2"}, {"k3", "k4", "k5"}, {"k6"}}, pages)

			// A bucket that ends exactly with a page has no more keys; fn can
			// stop a page early, and the next page goes on after its last key.
			from = nil
			var page []string
			require.NoError(t, s.View(func(tx Tx) error {
				more, err := scanPage(tx, "b", &from, 7, func(k, _ []byte) bool { page = append(page, string(k)); return len(page) < 2 })
				require.False(t, more)
				return err
			}))
			require.Equal(t, []string{"k0", "k1"}, page)
			require.Equal(t, "k1", string(from))
			require.NoError(t, s.View(func(tx Tx) error {
				more, err := scanPage(tx, "b", &from, 7, func(k, _ []byte) bool { page = append(page, string(k)); return true })
				require.False(t, more)
				return err
			}))
			require.Equal(t, []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6"}, page)
		})
	}
}

func TestForJobsIn(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore()
	put := func(seq uint64, st State) {
		require.NoError(t, s.Update(func(tx Tx) error {
			return tx.Put(bucketJobsByState, append(appendStr(nil, string(st)), u64key(seq)...), []byte{1})
		}))
	}
	put(3, StateQueued)
	put(1, StateRunning)
	put(2, StateQueued)
	put(4, StatePaused)
	var got []string
	require.NoError(t, s.View(func(tx Tx) error {
		return forJobsIn(tx, []State{StateRunning, StateQueued}, func(st State, seq uint64) error {
			got = append(got, fmt.Sprintf("%s:%d", st, seq))
			return nil
		})
	}))
	require.Equal(t, []string{"running:1", "queued:2", "queued:3"}, got)
	stop := fmt.Errorf("stop")
	n := 0
	err := s.View(func(tx Tx) error {
		return forJobsIn(tx, []State{StateQueued}, func(State, uint64) error { n++; return stop })
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)
}

// TestEachJSON: every value that decodes is passed, with its key and raw
// bytes, in key order; one that does not decode is passed over.
func TestEachJSON(t *testing.T) {
	for name, s := range txStores(t) {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, s.Update(func(tx Tx) error {
				for k, v := range map[string]string{"a": `{"n":1}`, "b": `not json`, "c": `{"n":3}`} {
					if err := tx.Put("vals", []byte(k), []byte(v)); err != nil {
						return err
					}
				}
				return nil
			}))
			var got []string
			require.NoError(t, s.View(func(tx Tx) error {
				return eachJSON(tx, "vals", func(k, v []byte, val struct{ N int }) {
					got = append(got, fmt.Sprintf("%s=%d %s", k, val.N, v))
				})
			}))
			require.Equal(t, []string{`a=1 {"n":1}`, `c=3 {"n":3}`}, got)
		})
	}
}

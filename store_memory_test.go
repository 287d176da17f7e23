package batch_test

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/batchtest"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	batchtest.TestStore(t, func(t *testing.T) batch.Store {
		s := batch.NewMemoryStore()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMemoryStore_ScansMatchAModel(t *testing.T) {
	t.Parallel()
	s := batch.NewMemoryStore()
	defer s.Close()
	requireScansMatchModel(t, s)
}

func TestMemoryStore_Closed(t *testing.T) {
	t.Parallel()
	s := batch.NewMemoryStore()
	require.NoError(t, s.Close())
	require.Error(t, s.View(func(batch.Tx) error { return nil }))
	require.Error(t, s.Update(func(batch.Tx) error { return nil }))
}

// requireScansMatchModel applies random writes (keys out of order,
// deletes, rolled-back updates) to s and a map, and after each update
// checks Scan and ScanReverse from every kind of start, and paging by
// cursor in both directions, against the sorted model.
func requireScansMatchModel(t *testing.T, s batch.Store) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 'a', 'b', 'c', 0xff}
	randKey := func() []byte {
		k := make([]byte, 1+rng.IntN(3))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return k
	}
	model := map[string]string{}
	scan := func(from []byte, reverse bool, limit int) []string {
		var got []string
		require.NoError(t, s.View(func(tx batch.Tx) error {
			fn := func(k, v []byte) bool {
				require.Equal(t, model[string(k)], string(v), "value of %q", k)
				got = append(got, string(k))
				return limit == 0 || len(got) < limit
			}
			if reverse {
				return tx.ScanReverse("b", from, fn)
			}
			return tx.Scan("b", from, fn)
		}))
		return got
	}
	for round := range 60 {
		next := maps.Clone(model)
		fail := round%7 == 3
		err := s.Update(func(tx batch.Tx) error {
			for range 1 + rng.IntN(8) {
				k := randKey()
				if rng.IntN(3) == 0 {
					delete(next, string(k))
					require.NoError(t, tx.Delete("b", k))
				} else {
					v := []byte{byte(round), byte(rng.IntN(256))}
					next[string(k)] = string(v)
					require.NoError(t, tx.Put("b", k, v))
				}
			}
			if fail {
				return errors.New("roll back")
			}
			return nil
		})
		if fail {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
			model = next
		}
		keys := slices.Sorted(maps.Keys(model))
		require.Equal(t, keys, nilIfEmpty(scan(nil, false, 0)), "round %d: Scan", round)
		require.Equal(t, reversed(keys), nilIfEmpty(scan(nil, true, 0)), "round %d: ScanReverse", round)
		from := randKey()
		var asc, desc []string
		for _, k := range keys {
			if bytes.Compare([]byte(k), from) >= 0 {
				asc = append(asc, k)
			} else {
				desc = append([]string{k}, desc...)
			}
		}
		if _, ok := model[string(from)]; ok {
			desc = append([]string{string(from)}, desc...)
		}
		require.Equal(t, asc, nilIfEmpty(scan(from, false, 0)), "round %d: Scan from %q", round, from)
		require.Equal(t, desc, nilIfEmpty(scan(from, true, 0)), "round %d: ScanReverse from %q", round, from)

		// Paging: each page starts at the last key seen, which it skips.
		for _, reverse := range []bool{false, true} {
			var all []string
			var cursor []byte
			for {
				page := scan(cursor, reverse, 3)
				if cursor != nil && len(page) > 0 && page[0] == string(cursor) {
					page = page[1:]
				}
				if len(page) == 0 {
					break
				}
				all = append(all, page...)
				cursor = []byte(page[len(page)-1])
			}
			want := keys
			if reverse {
				want = reversed(keys)
			}
			require.Equal(t, want, nilIfEmpty(all), "round %d: paging, reverse=%v", round, reverse)
		}
	}
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

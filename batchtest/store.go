// Package batchtest holds the conformance suite of the [batch.Store]
// contract, for the stores in this module and for any other backend.
//
// A backend's test calls [TestStore] with a function that opens a fresh,
// empty store for each subtest:
//
//	func TestMyStore(t *testing.T) {
//		batchtest.TestStore(t, func(t *testing.T) batch.Store { return openEmpty(t) })
//	}
package batchtest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/batchworks/batch"
)

// TestStore runs the conformance suite against stores made by newStore,
// which returns a fresh, empty store and arranges its Close at cleanup.
// Subtests run in parallel.
func TestStore(t *testing.T, newStore func(t *testing.T) batch.Store) {
	t.Helper()
	t.Run("PutGetDelete", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if v := get(t, s, "b", "k"); v != nil {
			t.Fatalf("missing bucket reads %q, want nil", v)
		}
		put(t, s, "b", "k", "v1")
		wantValue(t, s, "b", "k", "v1")
		put(t, s, "b", "k", "v2")
		wantValue(t, s, "b", "k", "v2")
		update(t, s, func(tx batch.Tx) error { return tx.Delete("b", []byte("k")) })
		wantValue(t, s, "b", "k", "")
		update(t, s, func(tx batch.Tx) error { return tx.Delete("b", []byte("absent")) })
		update(t, s, func(tx batch.Tx) error { return tx.Delete("nobucket", []byte("x")) })
	})

	t.Run("EmptyValue", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		put(t, s, "b", "k", "")
		if v := get(t, s, "b", "k"); v == nil || len(v) != 0 {
			t.Fatalf("empty value reads %#v, want an empty non-nil slice", v)
		}
	})

	t.Run("UpdateRollsBackOnError", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		put(t, s, "b", "keep", "1")
		boom := errors.New("boom")
		err := s.Update(func(tx batch.Tx) error {
			for _, err := range []error{
				tx.Put("b", []byte("keep"), []byte("changed")),
				tx.Put("b", []byte("new"), []byte("x")),
				tx.Put("other", []byte("k"), []byte("x")),
				tx.Delete("b", []byte("keep")),
			} {
				if err != nil {
					return err
				}
			}
			if _, err := tx.NextSequence("b"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update returned %v, want boom", err)
		}
		wantValue(t, s, "b", "keep", "1")
		wantValue(t, s, "b", "new", "")
		wantValue(t, s, "other", "k", "")
		var n uint64
		update(t, s, func(tx batch.Tx) error {
			var err error
			n, err = tx.NextSequence("b")
			return err
		})
		if n != 1 {
			t.Fatalf("sequence after rollback = %d, want 1: a rolled-back sequence is given back", n)
		}
	})

	t.Run("ReadsSeeOwnWrites", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		put(t, s, "b", "a", "old")
		update(t, s, func(tx batch.Tx) error {
			if err := tx.Put("b", []byte("a"), []byte("new")); err != nil {
				return err
			}
			if err := tx.Put("b", []byte("b"), []byte("x")); err != nil {
				return err
			}
			if v := tx.Get("b", []byte("a")); string(v) != "new" {
				t.Errorf("Get in the writing tx = %q, want new", v)
			}
			if err := tx.Delete("b", []byte("b")); err != nil {
				return err
			}
			var keys []string
			err := tx.Scan("b", nil, func(k, _ []byte) bool { keys = append(keys, string(k)); return true })
			if !slices.Equal(keys, []string{"a"}) {
				t.Errorf("Scan in the writing tx = %v, want [a]", keys)
			}
			return err
		})
	})

	t.Run("ViewIsReadOnly", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if err := s.View(func(tx batch.Tx) error { return tx.Put("b", []byte("k"), []byte("v")) }); err == nil {
			t.Fatal("Put in a View succeeded")
		}
		wantValue(t, s, "b", "k", "")
	})

	t.Run("ScanOrderAndBounds", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		update(t, s, func(tx batch.Tx) error {
			for _, k := range []string{"d", "a", "c", "e", "b", "\xff", "\x00"} {
				if err := tx.Put("b", []byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			return nil
		})
		wantKeys(t, scan(t, s, "b", nil, false), "\x00", "a", "b", "c", "d", "e", "\xff")
		wantKeys(t, scan(t, s, "b", []byte("c"), false), "c", "d", "e", "\xff")
		wantKeys(t, scan(t, s, "b", []byte("bb"), false), "c", "d", "e", "\xff")
		wantKeys(t, scan(t, s, "b", nil, true), "\xff", "e", "d", "c", "b", "a", "\x00")
		wantKeys(t, scan(t, s, "b", []byte("c"), true), "c", "b", "a", "\x00")
		wantKeys(t, scan(t, s, "b", []byte("bb"), true), "b", "a", "\x00")
		wantKeys(t, scan(t, s, "b", []byte("z"), true), "e", "d", "c", "b", "a", "\x00")
		wantKeys(t, scan(t, s, "missing", nil, false))

		var stopped []string
		view(t, s, func(tx batch.Tx) error {
			return tx.Scan("b", nil, func(k, _ []byte) bool { stopped = append(stopped, string(k)); return len(stopped) < 2 })
		})
		wantKeys(t, stopped, "\x00", "a")
	})

	t.Run("LongScan", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		const n = 3000
		update(t, s, func(tx batch.Tx) error {
			for i := range n {
				if err := tx.Put("b", fmt.Appendf(nil, "%06d", i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		})
		for _, reverse := range []bool{false, true} {
			keys := scan(t, s, "b", nil, reverse)
			if len(keys) != n {
				t.Fatalf("reverse=%v: %d keys, want %d", reverse, len(keys), n)
			}
			sorted := slices.IsSorted(keys)
			if reverse {
				slices.Reverse(keys)
			}
			if !slices.IsSorted(keys) || (reverse && sorted) {
				t.Fatalf("reverse=%v: keys out of order", reverse)
			}
		}
		// A Scan's callback may use the transaction.
		var seen int
		view(t, s, func(tx batch.Tx) error {
			return tx.Scan("b", nil, func(k, v []byte) bool {
				if !bytes.Equal(tx.Get("b", k), v) {
					t.Errorf("Get(%s) inside Scan differs", k)
					return false
				}
				seen++
				return true
			})
		})
		if seen != n {
			t.Fatalf("scan with reads saw %d keys, want %d", seen, n)
		}
	})

	t.Run("NestedBuckets", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		put(t, s, "items/job1", "k", "1")
		put(t, s, "items/job2", "k", "2")
		put(t, s, "items", "plain", "p")
		put(t, s, "items0", "k", "sibling")
		wantValue(t, s, "items/job1", "k", "1")
		wantKeys(t, scan(t, s, "items", nil, false), "plain")
		update(t, s, func(tx batch.Tx) error { return tx.DeleteBucket("items/job1") })
		wantValue(t, s, "items/job1", "k", "")
		wantValue(t, s, "items/job2", "k", "2")
		update(t, s, func(tx batch.Tx) error { return tx.DeleteBucket("items/none") })
		update(t, s, func(tx batch.Tx) error { return tx.DeleteBucket("nothing") })
		update(t, s, func(tx batch.Tx) error { return tx.DeleteBucket("items") })
		wantValue(t, s, "items/job2", "k", "")
		wantValue(t, s, "items", "plain", "")
		wantValue(t, s, "items0", "k", "sibling")
	})

	t.Run("Sequences", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var got []uint64
		for range 3 {
			update(t, s, func(tx batch.Tx) error {
				n, err := tx.NextSequence("jobs")
				got = append(got, n)
				return err
			})
		}
		if !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Fatalf("sequences %v, want [1 2 3]", got)
		}
	})

	t.Run("ConcurrentWritersAndReaders", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 50 {
					err := s.Update(func(tx batch.Tx) error {
						return tx.Put("b", fmt.Appendf(nil, "%d-%03d", w, i), []byte("v"))
					})
					if err != nil {
						t.Error(err)
					}
				}
			})
			wg.Go(func() {
				for range 50 {
					_ = s.View(func(tx batch.Tx) error { return tx.Scan("b", nil, func(_, _ []byte) bool { return true }) })
				}
			})
		}
		wg.Wait()
		if n := len(scan(t, s, "b", nil, false)); n != 200 {
			t.Fatalf("%d keys after concurrent writes, want 200", n)
		}
	})

	t.Run("UpdatesAreSerial", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		// Read-modify-write of one counter from many goroutines loses no
		// increment only if updates run one at a time.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					err := s.Update(func(tx batch.Tx) error {
						v := tx.Get("c", []byte("n"))
						return tx.Put("c", []byte("n"), fmt.Appendf(nil, "%d", atoi(v)+1))
					})
					if err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		wantValue(t, s, "c", "n", "80")
	})

	t.Run("ValuesOutliveNothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		v := []byte("original")
		update(t, s, func(tx batch.Tx) error { return tx.Put("b", []byte("k"), v) })
		copy(v, "mutated!")
		wantValue(t, s, "b", "k", "original")
	})
}

func atoi(b []byte) int {
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return n
}

func update(t *testing.T, s batch.Store, fn func(batch.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s batch.Store, fn func(batch.Tx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func put(t *testing.T, s batch.Store, bucket, k, v string) {
	t.Helper()
	update(t, s, func(tx batch.Tx) error { return tx.Put(bucket, []byte(k), []byte(v)) })
}

func get(t *testing.T, s batch.Store, bucket, k string) []byte {
	t.Helper()
	var out []byte
	view(t, s, func(tx batch.Tx) error { out = bytes.Clone(tx.Get(bucket, []byte(k))); return nil })
	return out
}

// wantValue checks the value under k; "" means absent.
func wantValue(t *testing.T, s batch.Store, bucket, k, want string) {
	t.Helper()
	got := get(t, s, bucket, k)
	if want == "" && got != nil {
		t.Fatalf("%s/%s = %q, want absent", bucket, k, got)
	}
	if want != "" && string(got) != want {
		t.Fatalf("%s/%s = %q, want %q", bucket, k, got, want)
	}
}

func scan(t *testing.T, s batch.Store, bucket string, from []byte, reverse bool) []string {
	t.Helper()
	var keys []string
	view(t, s, func(tx batch.Tx) error {
		fn := func(k, _ []byte) bool { keys = append(keys, string(k)); return true }
		if reverse {
			return tx.ScanReverse(bucket, from, fn)
		}
		return tx.Scan(bucket, from, fn)
	})
	return keys
}

func wantKeys(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
}

package batchtest_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/batchtest"
)

// brokenEnv names, in a child test process, the fault of the store the
// suite is run against.
const brokenEnv = "BATCHTEST_BROKEN_STORE"

// backwardTx scans backwards in ScanReverse's stead: a reverse scan that
// ignores its direction.
type backwardTx struct{ batch.Tx }

func (t backwardTx) ScanReverse(bucket string, from []byte, fn func(k, v []byte) bool) error {
	return t.Tx.Scan(bucket, from, fn)
}

// brokenStore is a memory store with one fault.
type brokenStore struct {
	batch.Store
	fault string
}

func (s brokenStore) View(fn func(batch.Tx) error) error {
	if s.fault == "reverse" {
		return s.Store.View(func(tx batch.Tx) error { return fn(backwardTx{tx}) })
	}
	return s.Store.View(fn)
}

func (s brokenStore) Update(fn func(batch.Tx) error) error {
	if s.fault != "commit-on-error" {
		return s.Store.Update(fn)
	}
	var ferr error
	if err := s.Store.Update(func(tx batch.Tx) error { ferr = fn(tx); return nil }); err != nil {
		return err
	}
	return ferr
}

// The suite fails a store that breaks the contract, in the subtest for
// the broken rule. Each broken store runs the suite in a child process,
// whose failure is the expected outcome.
func TestStore_FailsBrokenStores(t *testing.T) {
	if fault := os.Getenv(brokenEnv); fault != "" {
		batchtest.TestStore(t, func(t *testing.T) batch.Store {
			s := brokenStore{Store: batch.NewMemoryStore(), fault: fault}
			t.Cleanup(func() { s.Close() })
			return s
		})
		return
	}
	t.Parallel()
	for fault, subtest := range map[string]string{"reverse": "ScanOrderAndBounds", "commit-on-error": "UpdateRollsBackOnError"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStore_FailsBrokenStores$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+fault)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the suite passes a broken store:\n%s", out)
			require.Contains(t, string(out), "--- FAIL: TestStore_FailsBrokenStores/"+subtest)
			require.Contains(t, string(out), "--- PASS: TestStore_FailsBrokenStores/PutGetDelete", "the rest still pass")
		})
	}
}

package batch_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// undoSeeded is how many fields the undo crash test starts with.
const undoSeeded = 4000

// undoCrashBatch creates 2,000 records, updates the 2,000 active ones and
// deletes 400 inactive ones.
func undoCrashBatch() *batch.Batch {
	return createThenCheck("undo_crash_test", 2000,
		batch.OperationSpec{Type: "delete", Resource: "fields", Where: `record.status == "inactive" && record.id < "field000800"`})
}

// killedHalfWay says whether a child's job is half done, as far as it
// knows its total: a revert knows it only once it listed its records.
func killedHalfWay(done, total int64) bool { return done >= total/2 }

// TestRevert_CrashRecovery kills a child process with SIGKILL in the
// middle of a data job and, after it finished on restart, in the middle of
// its revert: after the second restart an export of the collection is the
// pre-job export byte for byte.
func TestRevert_CrashRecovery(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "undo.db")
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, undoSeeded)
	before := tb.exportFields(t)
	require.NoError(t, tb.e.Close(t.Context()))
	require.NoError(t, os.Rename(tb.path, path))

	id := killChild(t, "undo", path, "", killedHalfWay).jobID
	tb, job := reopen(t, path, id)
	require.Zero(t, job.Progress.Failed, "errors: %+v", job.Errors)
	require.Equal(t, int64(2000+undoSeeded/2+400), job.Progress.Completed)
	require.NotEqual(t, string(before), string(tb.exportFields(t)))
	require.NoError(t, tb.e.Close(t.Context()))

	rid := killChild(t, "revert", path, id, killedHalfWay).jobID
	tb, rv := reopen(t, path, rid)
	require.Zero(t, rv.Progress.Failed, "errors: %+v", rv.Errors)
	require.Equal(t, id, rv.Reverts)
	require.Equal(t, &batch.RevertStats{Restored: job.Progress.Completed}, rv.Revert)
	require.Equal(t, string(before), string(tb.exportFields(t)))
}

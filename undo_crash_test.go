package batch_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// undoChildEnv, when set, makes the test binary run as the undo crash
// child on that store: undoModeEnv "job" submits undoCrashBatch, "revert"
// reverts job undoJobEnv; either reports progress until it is killed.
const (
	undoChildEnv = "BATCH_UNDO_CHILD_DB"
	undoModeEnv  = "BATCH_UNDO_CHILD_MODE"
	undoJobEnv   = "BATCH_UNDO_CHILD_JOB"
	undoSeeded   = 4000
)

// undoCrashBatch creates 2,000 records, updates the 2,000 active ones and
// deletes 400 inactive ones.
func undoCrashBatch() *batch.Batch {
	recs := make([]map[string]any, 2000)
	for i := range recs {
		recs[i] = map[string]any{"id": fmt.Sprintf("new%06d", i), "n": i}
	}
	return &batch.Batch{
		Type: "undo_crash_test",
		Operations: []batch.OperationSpec{
			{Type: "create", Resource: "fields", Records: recs},
			{Type: "update", Resource: "fields", Where: `record.status == "active"`, Update: map[string]any{"checked": true}},
			{Type: "delete", Resource: "fields", Where: `record.status == "inactive" && record.id < "field000800"`},
		},
		Options: batch.BatchOptions{MaxConcurrent: 4},
	}
}

func runUndoChild() {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(2)
	}
	// Small commits make the job long enough to be killed in the middle.
	e, err := batch.Open(os.Getenv(undoChildEnv), &batch.Options{CommitBatchSize: 8, CommitDelay: -1})
	if err != nil {
		fail(err)
	}
	var job *batch.Job
	if os.Getenv(undoModeEnv) == "revert" {
		job, err = e.Revert(ctx, os.Getenv(undoJobEnv), nil)
	} else {
		job, err = e.Submit(ctx, undoCrashBatch(), nil)
	}
	if err != nil {
		fail(err)
	}
	fmt.Println("job", job.ID, job.Progress.TotalOperations)
	for {
		j, err := e.Job(ctx, job.ID)
		if err != nil {
			fail(err)
		}
		fmt.Println("progress", j.Progress.Completed+j.Progress.Failed, j.Status)
		time.Sleep(2 * time.Millisecond)
	}
}

// killUndoChild runs the child in mode and SIGKILLs it once half its items
// are done; it returns the child's job id.
func killUndoChild(t *testing.T, path, mode, jobID string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), undoChildEnv+"="+path, undoModeEnv+"="+mode, undoJobEnv+"="+jobID)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	var id string
	var total, atKill int64
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(60 * time.Second)
	for atKill == 0 && sc.Scan() && time.Now().Before(deadline) {
		f := strings.Fields(sc.Text())
		require.NotEqual(t, "error", f[0], sc.Text())
		switch f[0] {
		case "job":
			id = f[1]
			total, _ = strconv.ParseInt(f[2], 10, 64)
		case "progress":
			if done, _ := strconv.ParseInt(f[1], 10, 64); done >= total/2 {
				atKill = done
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			}
		}
	}
	_ = cmd.Wait()
	require.NotEmpty(t, id, "the child reported its job")
	require.Positive(t, atKill, "the child was killed")
	require.Less(t, atKill, total, "the child was killed in the middle of its job")
	t.Logf("%s: killed job %s at %d of %d items", mode, id, atKill, total)
	return id
}

// reopen opens the store again and finishes the killed job.
func reopen(t *testing.T, path, id string) (*testBundle, *batch.Job) {
	e, err := batch.Open(path, nil)
	require.NoError(t, err)
	tb := &testBundle{e: e, path: path}
	tb.fields, err = e.Collection("fields")
	require.NoError(t, err)
	job := tb.wait(t, id)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Zero(t, job.Progress.Failed, "errors: %+v", job.Errors)
	return tb, job
}

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

	id := killUndoChild(t, path, "job", "")
	tb, job := reopen(t, path, id)
	require.Equal(t, int64(2000+undoSeeded/2+400), job.Progress.Completed)
	require.NotEqual(t, string(before), string(tb.exportFields(t)))
	require.NoError(t, tb.e.Close(t.Context()))

	rid := killUndoChild(t, path, "revert", id)
	tb, rv := reopen(t, path, rid)
	defer func() { require.NoError(t, tb.e.Close(context.Background())) }()
	require.Equal(t, id, rv.Reverts)
	require.Equal(t, &batch.RevertStats{Restored: job.Progress.Completed}, rv.Revert)
	require.Equal(t, string(before), string(tb.exportFields(t)))
}

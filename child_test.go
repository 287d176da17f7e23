package batch_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// Crash tests re-execute the test binary as a child process that runs a
// job on a store, kill it with SIGKILL in the middle of the job, reopen the
// store and check what the job did (the helper-process pattern of os/exec's
// tests).

// childEnv, when set, makes the test binary run as a child process: it
// runs the childScenarios entry of that name on the store at childDBEnv,
// passing it childArgEnv, and reports on stdout until it is killed.
const (
	childEnv    = "BATCH_TEST_CHILD"
	childDBEnv  = "BATCH_TEST_CHILD_DB"
	childArgEnv = "BATCH_TEST_CHILD_ARG"
)

// childScenario starts a child's job on e; arg is what the parent passed.
type childScenario func(ctx context.Context, e *batch.Engine, arg string) (*batch.Job, error)

// childScenarios are the jobs a child can run, by name.
var childScenarios = map[string]childScenario{
	"crash": func(ctx context.Context, e *batch.Engine, _ string) (*batch.Job, error) {
		return e.Submit(ctx, crashBatch(), nil)
	},
	"undo": func(ctx context.Context, e *batch.Engine, _ string) (*batch.Job, error) {
		return e.Submit(ctx, undoCrashBatch(), nil)
	},
	"revert": func(ctx context.Context, e *batch.Engine, jobID string) (*batch.Job, error) {
		return e.Revert(ctx, jobID, nil)
	},
	"index": startIndexChild,
}

// runChild runs scenario name as the child process. Its engine commits in
// small batches, so that its job lasts long enough to be killed in the
// middle. It prints
//
//	job <id> <total>
//	progress <done> <total> <status>
//
// the first line once the job is submitted, then a progress line every
// 2ms until it is killed; a failure prints "error <message>". How often it
// reports only sets how close to its mark the parent kills it.
func runChild(name string) {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(2)
	}
	start, ok := childScenarios[name]
	if !ok {
		fail(fmt.Errorf("no child scenario %q", name))
	}
	e, err := batch.Open(os.Getenv(childDBEnv), &batch.Options{CommitBatchSize: 8, CommitDelay: -1})
	if err != nil {
		fail(err)
	}
	job, err := start(ctx, e, os.Getenv(childArgEnv))
	if err != nil {
		fail(err)
	}
	fmt.Println("job", job.ID, job.Progress.TotalOperations)
	report := time.NewTicker(2 * time.Millisecond)
	for range report.C {
		j, err := e.Job(ctx, job.ID)
		if err != nil {
			fail(err)
		}
		fmt.Println("progress", j.Progress.Completed+j.Progress.Failed, j.Progress.TotalOperations, j.Status)
	}
}

// killedChild is what a killed child reported.
type killedChild struct {
	jobID string
	// atKill is how many items were done at the kill, of total as the
	// child knew it then (it becomes exact as each operation selects).
	atKill, total int64
}

// killChild runs scenario name as a child process on the store at path,
// passing it arg, and SIGKILLs it at the first progress report for which
// kill(done, total) holds. The test fails unless the child reported its
// job and was killed in the middle of it, within a minute.
func killChild(t *testing.T, name, path, arg string, kill func(done, total int64) bool) killedChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+name, childDBEnv+"="+path, childArgEnv+"="+arg)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	// A child that never gets there is killed all the same.
	timer := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var c killedChild
	var failure string
	sc := bufio.NewScanner(stdout)
	for c.atKill == 0 && failure == "" && sc.Scan() {
		var kind string
		var done int64
		switch fmt.Sscan(sc.Text(), &kind); kind {
		case "error":
			failure = sc.Text()
			_ = cmd.Process.Kill()
		case "job":
			fmt.Sscan(sc.Text(), &kind, &c.jobID, &c.total)
		case "progress":
			fmt.Sscan(sc.Text(), &kind, &done, &c.total)
			if done > 0 && kill(done, c.total) {
				c.atKill = done
				require.NoError(t, cmd.Process.Kill()) // SIGKILL
			}
		}
	}
	_ = cmd.Wait()
	require.Empty(t, failure, "the child failed")
	require.NotEmpty(t, c.jobID, "the child reported its job")
	require.Positive(t, c.atKill, "the child was killed")
	require.Less(t, c.atKill, c.total, "the child was killed in the middle of its job")
	t.Logf("%s: killed job %s at %d of %d items", name, c.jobID, c.atKill, c.total)
	return c
}

// reopen opens the store a killed child left at path, as the restarted
// program would, and waits for job id to complete there. The engine is
// closed at cleanup, if not before.
func reopen(t *testing.T, path, id string) (*testBundle, *batch.Job) {
	t.Helper()
	e, err := batch.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	tb := &testBundle{e: e, path: path}
	tb.fields, err = e.Collection("fields")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	job, err := e.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status, "%+v", job.Error)
	return tb, job
}

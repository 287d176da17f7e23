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

// crashChildEnv, when set, makes the test binary run as the crash child:
// it opens the store at that path, submits crashBatch and reports progress
// on stdout until it is killed.
const crashChildEnv = "BATCH_CRASH_CHILD_DB"

const (
	crashCreates = 12000
	crashSeeded  = 12000 // half of them active: 6000 updates
)

// crashBatch creates crashCreates records and updates every active field.
func crashBatch() *batch.Batch {
	recs := make([]map[string]any, crashCreates)
	for i := range recs {
		recs[i] = map[string]any{"id": fmt.Sprintf("new%06d", i), "n": i}
	}
	return &batch.Batch{
		Type: "crash_test",
		Operations: []batch.OperationSpec{
			{Type: "create", Resource: "fields", Records: recs},
			{Type: "update", Resource: "fields", Where: `record.status == "active"`, Update: map[string]any{"checked": true}},
		},
		Options: batch.BatchOptions{MaxConcurrent: 4},
	}
}

func runCrashChild() {
	ctx := context.Background()
	// Small commits make the job long enough to be killed in the middle.
	e, err := batch.Open(os.Getenv(crashChildEnv), &batch.Options{CommitBatchSize: 8, CommitDelay: -1})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	job, err := e.Submit(ctx, crashBatch(), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("job", job.ID, job.Progress.TotalOperations)
	for {
		j, err := e.Job(ctx, job.ID)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("progress", j.Progress.Completed+j.Progress.Failed, j.Status)
		time.Sleep(2 * time.Millisecond)
	}
}

// TestEngine_CrashRecovery kills a child process with SIGKILL in the middle
// of a job, reopens the file and checks that every item is accounted for
// exactly once and the records hold exactly the expected data.
func TestEngine_CrashRecovery(t *testing.T) {
	t.Parallel()
	// Killed in the first operation (the creates), and in the second (the
	// update, whose records are selected after the creates committed).
	for _, at := range []struct {
		name     string
		num, den int64
	}{{"create", 1, 3}, {"update", 7, 8}} {
		t.Run(at.name, func(t *testing.T) {
			t.Parallel()
			crashRecovery(t, at.num, at.den)
		})
	}
}

func crashRecovery(t *testing.T, num, den int64) {
	path := filepath.Join(t.TempDir(), "crash.db")
	{
		e, err := batch.Open(path, nil)
		require.NoError(t, err)
		fields, err := e.Collection("fields")
		require.NoError(t, err)
		recs := make([]batch.Record, crashSeeded)
		for i := range recs {
			recs[i] = batch.Record{"id": fmt.Sprintf("field%06d", i), "status": []string{"active", "inactive"}[i%2]}
		}
		require.NoError(t, fields.PutMany(t.Context(), recs))
		require.NoError(t, e.Close(t.Context()))
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())

	var jobID string
	var atKill int64
	// The total the job ends with. At submission it counts only the
	// creates: the update's where expression is not counted without
	// reading the records; its selection makes the total exact.
	total := int64(crashCreates + crashSeeded/2)
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		f := strings.Fields(sc.Text())
		require.NotEqual(t, "error", f[0], sc.Text())
		switch f[0] {
		case "job":
			jobID = f[1]
		case "progress":
			done, _ := strconv.ParseInt(f[1], 10, 64)
			if done >= total*num/den {
				atKill = done
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			}
		}
		if atKill > 0 {
			break
		}
	}
	_ = cmd.Wait()
	require.NotEmpty(t, jobID, "the child reported its job")
	require.Positive(t, atKill, "the child was killed")
	require.Less(t, atKill, total, "the child was killed in the middle of the job")
	t.Logf("killed job %s at %d of %d items", jobID, atKill, total)

	e, err := batch.Open(path, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	job, err := e.Wait(ctx, jobID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, total, job.Progress.TotalOperations)
	// A create run twice would fail with "already exists"; one never run
	// would leave a record missing. Both show here.
	require.Zero(t, job.Progress.Failed, "errors: %+v", job.Errors)
	require.Equal(t, total, job.Progress.Completed)

	fields, err := e.Collection("fields")
	require.NoError(t, err)
	var created, checked, all int64
	require.NoError(t, fields.Scan(ctx, nil, func(r batch.Record) error {
		all++
		id := r.ID()
		switch {
		case strings.HasPrefix(id, "new"):
			created++
			n, _ := strconv.Atoi(strings.TrimPrefix(id, "new"))
			require.Equal(t, float64(n), r["n"])
			require.NotContains(t, r, "checked")
		case r["status"] == "active":
			require.Equal(t, true, r["checked"], id)
			checked++
		default:
			require.NotContains(t, r, "checked", id)
		}
		return nil
	}))
	require.Equal(t, int64(crashCreates+crashSeeded), all)
	require.Equal(t, int64(crashCreates), created)
	require.Equal(t, int64(crashSeeded/2), checked)
}

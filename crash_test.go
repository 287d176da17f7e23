package batch_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

const (
	crashCreates = 12000
	crashSeeded  = 12000 // half of them active: 6000 updates
)

// crashBatch creates crashCreates records and updates every active field.
func crashBatch() *batch.Batch { return createThenCheck("crash_test", crashCreates) }

// createThenCheck is a batch of type typ that creates n records new000000,
// new000001 ... (with "n": their number), then sets checked on every active
// field, then runs more.
func createThenCheck(typ string, n int, more ...batch.OperationSpec) *batch.Batch {
	recs := make([]map[string]any, n)
	for i := range recs {
		recs[i] = map[string]any{"id": fmt.Sprintf("new%06d", i), "n": i}
	}
	return &batch.Batch{
		Type: typ,
		Operations: append([]batch.OperationSpec{
			{Type: "create", Resource: "fields", Records: recs},
			{Type: "update", Resource: "fields", Where: `record.status == "active"`, Update: map[string]any{"checked": true}},
		}, more...),
		Options: batch.BatchOptions{MaxConcurrent: 4},
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

	// The total the job ends with. At submission it counts only the
	// creates: the update's where expression is not counted without
	// reading the records; its selection makes the total exact.
	total := int64(crashCreates + crashSeeded/2)
	c := killChild(t, "crash", path, "", func(done, _ int64) bool { return done >= total*num/den })

	tb, job := reopen(t, path, c.jobID)
	require.Equal(t, total, job.Progress.TotalOperations)
	// A create run twice would fail with "already exists"; one never run
	// would leave a record missing. Both show here.
	require.Zero(t, job.Progress.Failed, "errors: %+v", job.Errors)
	require.Equal(t, total, job.Progress.Completed)

	var created, checked, all int64
	require.NoError(t, tb.fields.Scan(t.Context(), nil, func(r batch.Record) error {
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

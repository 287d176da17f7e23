package batch_test

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/batchworks/batch"
)

func TestRetention_SweepsOldFinishedJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		retention time.Duration
		advance   time.Duration
		deleted   bool
	}{
		{"default keeps 29 days", 0, 29 * 24 * time.Hour, false},
		{"default drops after 30 days", 0, 31 * 24 * time.Hour, true},
		{"custom", 2 * time.Hour, 3 * time.Hour, true},
		{"disabled", -1, 365 * 24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newOpsClock()
			path := filepath.Join(t.TempDir(), "batch.db")
			// Retention is off in the first engine (openOps turns 0 into -1).
			b := reopenOps(t, path, &batch.Options{Now: clock.Now, MaxRunningJobs: 1})
			// ancient is gone in every sweep: seeing it go proves one ran.
			ancient := runJob(t, b.e, ops(batch.OperationSpec{Type: "export", Resource: "fields"}))
			clock.Add(400 * 24 * time.Hour)
			job := runJob(t, b.e, ops(batch.OperationSpec{Type: "export", Resource: "fields"}))
			release := make(chan struct{})
			blocker, paused := holdAndPause(t, b.e, release)
			close(release)
			_, err := b.e.Wait(t.Context(), blocker.ID)
			require.NoError(t, err)
			require.NoError(t, b.e.Close(context.Background()))

			// Reopen later, in a bubble: the first sweep runs at once, and
			// synctest.Wait returns only when every goroutine of the engine
			// is idle again, so a sweep that started is done by then. That
			// makes the disabled case exact too: had it swept, the ancient
			// job would be gone at that point.
			clock.Add(tt.advance)
			synctest.Test(t, func(t *testing.T) {
				store, err := batch.OpenBoltStore(path, nil)
				require.NoError(t, err)
				e, err := batch.New(store, &batch.Options{Now: clock.Now, Retention: tt.retention})
				require.NoError(t, err)
				t.Cleanup(func() { e.Close(context.Background()) })
				synctest.Wait()
				_, err = e.Job(t.Context(), ancient.ID)
				if tt.retention < 0 {
					require.NoError(t, err, "retention is disabled")
				} else {
					require.ErrorIs(t, err, batch.ErrNotFound, "the sweep ran")
				}
				for _, id := range []string{job.ID, blocker.ID} {
					_, err := e.Job(t.Context(), id)
					if tt.deleted {
						require.ErrorIs(t, err, batch.ErrNotFound)
					} else {
						require.NoError(t, err)
					}
				}
				if tt.deleted {
					// The swept job's trail goes with it, and no job_deleted
					// entry is added for it.
					_, err := e.JobEvents(t.Context(), job.ID, nil)
					require.ErrorIs(t, err, batch.ErrNotFound)
					all, err := e.AuditEvents(t.Context(), &batch.PageOptions{Limit: 1000})
					require.NoError(t, err)
					for _, ev := range all.Items {
						require.NotEqual(t, batch.EventJobDeleted, ev.Type, "retention leaves no job_deleted entry")
					}
				}
				p, err := e.Job(t.Context(), paused.ID)
				require.NoError(t, err, "a paused job is never swept")
				require.Equal(t, batch.StatePaused, p.Status)
			})
		})
	}
}

func TestCleanup_DropsOldAuditTrails(t *testing.T) {
	t.Parallel()
	clock := newOpsClock()
	b := openOps(t, &batch.Options{Now: clock.Now})
	job := runJob(t, b.e, ops(batch.OperationSpec{Type: "export", Resource: "fields"}))
	waitEvent(t, b.e, job.ID, batch.EventJobCompleted)
	clock.Add(2 * time.Hour)
	st, err := b.e.Cleanup(t.Context(), clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Jobs)
	require.Equal(t, int64(6), st.AuditEvents, "the job's trail of three and the log's three events, all from before the cutoff")
	_, err = b.e.JobEvents(t.Context(), job.ID, nil)
	require.ErrorIs(t, err, batch.ErrNotFound, "the trail went with the job, without a job_deleted entry")
	all, err := b.e.AuditEvents(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, all.Items)

	clock.Add(2 * time.Hour)
	st, err = b.e.Cleanup(t.Context(), clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, batch.CleanupStats{}, *st)
}

// Not parallel: goleak needs the other tests' goroutines out of the way,
// and parallel tests wait until the serial ones are done.
func TestRetention_LoopStopsWithClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e, err := batch.Open(filepath.Join(t.TempDir(), "batch.db"), &batch.Options{Retention: time.Hour})
	require.NoError(t, err)
	runJob(t, e, ops(batch.OperationSpec{Type: "export", Resource: "fields"}))
	require.NoError(t, e.Close(context.Background()))
}

package batch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// TestTenancy_Roles: maintenance needs an administrator, a scheduled backup
// of an administrator runs as one, a plain principal's never does, and
// Options.Authorize decides per principal, operation and resource.
func TestTenancy_Roles(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: utc("2026-01-01T00:00:00Z")}
	e, err := batch.Open(t.TempDir()+"/roles.db", &batch.Options{
		Now: clock.Now, SchedulerPoll: 2 * time.Millisecond,
		Authorize: func(_ context.Context, a batch.Access) error {
			if a.Principal == "bob" && a.Resource == "fields" && a.Operation != batch.OpExport {
				return errors.New("bob may only export fields")
			}
			return nil
		},
	})
	require.NoError(t, err)
	defer e.Close(context.Background())
	alice := batch.WithPrincipal(t.Context(), "alice")
	admin := batch.WithAdmin(batch.WithPrincipal(t.Context(), "root"))
	backup := batch.Batch{Operations: []batch.OperationSpec{{Type: batch.OpBackup}}}

	_, err = e.Submit(alice, &backup, nil)
	require.ErrorIs(t, err, &batch.Error{Code: batch.CodeForbidden})
	_, err = e.Submit(admin, &backup, nil)
	require.NoError(t, err)
	bob := batch.WithPrincipal(t.Context(), "bob")
	_, err = e.Submit(bob, &batch.Batch{Operations: []batch.OperationSpec{{Type: "delete", Resource: "fields", Where: "true"}}}, nil)
	require.ErrorIs(t, err, &batch.Error{Code: batch.CodeForbidden})
	require.ErrorContains(t, err, "bob may only export fields")
	_, err = e.Submit(bob, &batch.Batch{Operations: []batch.OperationSpec{{Type: "export", Resource: "fields", Where: "true"}}}, nil)
	require.NoError(t, err)

	_, err = e.CreateSchedule(alice, &batch.Schedule{Name: "a", Batch: backup, RunsAsAdmin: true, Timing: batch.Timing{Frequency: "hourly"}})
	require.ErrorIs(t, err, &batch.Error{Code: batch.CodeForbidden}, "a plain principal cannot schedule a backup, whatever it claims")
	s, err := e.CreateSchedule(admin, &batch.Schedule{Name: "nightly", Batch: backup, Timing: batch.Timing{Frequency: "hourly"}})
	require.NoError(t, err)
	require.True(t, s.RunsAsAdmin)
	clock.set(s.NextRunAt.Add(time.Second))
	require.Eventually(t, func() bool {
		jobs := jobsOf(t, e, s.ID)
		return len(jobs) == 1 && jobs[0].Status == batch.StateCompleted
	}, 20*time.Second, 5*time.Millisecond, "the administrator's scheduled backup runs")
}

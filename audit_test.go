package batch_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func eventTypes(evs []batch.AuditEvent) []batch.EventType {
	out := make([]batch.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// waitEvent waits until the job's trail holds an event of type typ. Job
// events are emitted (and so recorded) just after the change is visible,
// so a caller returning from Wait may be a moment ahead of the log.
func waitEvent(t *testing.T, e *batch.Engine, jobID string, typ batch.EventType) {
	t.Helper()
	require.Eventually(t, func() bool {
		page, err := e.JobEvents(t.Context(), jobID, nil)
		return err == nil && slices.Contains(eventTypes(page.Items), typ)
	}, 10*time.Second, time.Millisecond)
}

func TestAudit_JobTrailWhoWhatWhen(t *testing.T) {
	t.Parallel()
	clock := newOpsClock()
	b := openOps(t, &batch.Options{Now: clock.Now, MaxRunningJobs: 1})
	alice := batch.WithPrincipal(t.Context(), "alice")
	bob := batch.WithPrincipal(t.Context(), "bob")

	release := make(chan struct{})
	require.NoError(t, b.e.RegisterOperation("hold", holdOp(release)))
	blocker, err := b.e.Submit(alice, ops(batch.OperationSpec{Type: "hold"}), nil)
	require.NoError(t, err)
	job, err := b.e.Submit(alice, ops(batch.OperationSpec{Type: "create", Resource: "fields", Records: []map[string]any{{"id": "a"}, {"x": 1}}}), nil)
	require.NoError(t, err)
	_, err = b.e.Pause(bob, job.ID)
	require.NoError(t, err)
	clock.Add(1)
	_, err = b.e.Resume(alice, job.ID)
	require.NoError(t, err)
	close(release)
	_, err = b.e.Wait(t.Context(), blocker.ID)
	require.NoError(t, err)
	done, err := b.e.Wait(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, done.Status)
	waitEvent(t, b.e, job.ID, batch.EventJobCompleted)
	waitEvent(t, b.e, blocker.ID, batch.EventJobCompleted)
	require.NoError(t, b.e.Delete(bob, job.ID))

	page, err := b.e.JobEvents(t.Context(), job.ID, nil)
	require.NoError(t, err)
	require.Equal(t, []batch.EventType{
		batch.EventJobCreated, batch.EventJobPaused, batch.EventJobResumed,
		batch.EventJobStarted, batch.EventJobCompleted, batch.EventJobDeleted,
	}, eventTypes(page.Items))
	principals := []string{"alice", "bob", "alice", "", "", "bob"}
	for i, ev := range page.Items {
		require.Equal(t, job.ID, ev.JobID)
		require.Equal(t, principals[i], ev.Principal, "event %d (%s)", i, ev.Type)
		require.False(t, ev.At.IsZero())
		require.Equal(t, "alice", ev.Details["owner"])
	}
	require.Equal(t, clock.Now(), page.Items[2].At)
	completed := page.Items[4]
	require.Equal(t, "completed", completed.Details["status"])
	require.Equal(t, 2.0, completed.Details["completed"])
	require.Equal(t, 2.0, completed.Details["total_operations"])

	// The whole log has both jobs, in order.
	all, err := b.e.AuditEvents(t.Context(), &batch.PageOptions{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, all.Items, 6+3)
	require.Equal(t, blocker.ID, all.Items[0].JobID)
	require.Equal(t, batch.EventJobCreated, all.Items[0].Type)
}

func TestAudit_PagesAndSurvivesReopen(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	job := runJob(t, b.e, ops(batch.OperationSpec{Type: "create", Resource: "fields", Records: []map[string]any{{"id": "a"}}}))
	waitEvent(t, b.e, job.ID, batch.EventJobCompleted)
	var got []batch.EventType
	cursor := ""
	for {
		page, err := b.e.JobEvents(t.Context(), job.ID, &batch.PageOptions{Limit: 1, Cursor: cursor})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Items), 1)
		got = append(got, eventTypes(page.Items)...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	want := []batch.EventType{batch.EventJobCreated, batch.EventJobStarted, batch.EventJobCompleted}
	require.Equal(t, want, got)

	require.NoError(t, b.e.Close(context.Background()))
	b2 := reopenOps(t, b.path, nil)
	page, err := b2.e.JobEvents(t.Context(), job.ID, nil)
	require.NoError(t, err)
	require.Equal(t, want, eventTypes(page.Items))
}

func TestAudit_Errors(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	job := runJob(t, b.e, ops(batch.OperationSpec{Type: "create", Resource: "fields", Records: []map[string]any{{"id": "a"}}}))
	tests := []struct {
		name string
		id   string
		opts *batch.PageOptions
		want error
	}{
		{"unknown job", "batch999", nil, batch.ErrNotFound},
		{"malformed id", "x", nil, batch.ErrNotFound},
		{"bad cursor", job.ID, &batch.PageOptions{Cursor: "abc"}, batch.ErrInvalidBatch},
		{"bad limit", job.ID, &batch.PageOptions{Limit: 5000}, batch.ErrInvalidBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.e.JobEvents(t.Context(), tt.id, tt.opts)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

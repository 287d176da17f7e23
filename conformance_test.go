package batch_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// TestConformance_BareFieldNames: expressions name a record's fields
// directly ("area_ha * 4.2"), a field a record lacks is nil, and
// record.x keeps working.
func TestConformance_BareFieldNames(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	require.NoError(t, tb.fields.PutMany(t.Context(), []batch.Record{
		{"id": "f1", "status": "active", "area_ha": 3.0, "crop_type": "rice"},
		{"id": "f2", "status": "active", "area_ha": 1.0},
		{"id": "f3", "status": "inactive", "area_ha": 5.0, "crop_type": "corn"},
	}))
	run := func(b *batch.Batch) *batch.Job {
		t.Helper()
		job := tb.wait(t, tb.submit(t, b).ID)
		require.Equal(t, batch.StateCompleted, job.Status, "%+v", job.Errors)
		return job
	}

	job := run(&batch.Batch{Operations: []batch.OperationSpec{{
		Type: batch.OpCalculate, Resource: "fields",
		Where: "status == 'active' && area_ha > 2",
		Set:   map[string]string{"water_need": "area_ha * 4.2", "same": "record.area_ha * 4.2"},
	}}})
	require.Equal(t, int64(1), job.Progress.Completed, "only f1 is active with more than 2 ha")
	f1, err := tb.fields.Get(t.Context(), "f1")
	require.NoError(t, err)
	require.InDelta(t, 12.6, f1["water_need"], 1e-9)
	require.Equal(t, f1["water_need"], f1["same"])

	job = run(&batch.Batch{Operations: []batch.OperationSpec{{
		Type: batch.OpValidate, Resource: "fields", Where: "true",
		Rules: map[string]string{"has crop": "crop_type != nil"},
	}}})
	require.Equal(t, int64(2), job.Progress.Completed)
	require.Equal(t, int64(1), job.Progress.Failed, "f2 has no crop_type: nil")
	require.Equal(t, "f2", job.Errors[0].ResourceID)

	// A bare name reaches the record only: HOME is a field f1 lacks, not
	// the process environment.
	job = run(&batch.Batch{Operations: []batch.OperationSpec{{
		Type: batch.OpExport, Resource: "fields", Where: "HOME == nil && record.id == 'f3'",
	}}})
	require.Equal(t, 1.0, job.Results[0].Summary.(map[string]any)["records"])
}

// TestConformance_ErrorNamesItemAndOperation: an item error keeps the
// document's operation_index (the item's number) and says which operation
// of the batch the item belongs to.
func TestConformance_ErrorNamesItemAndOperation(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: batch.OpCreate, Resource: "fields", Records: []map[string]any{{"id": "a"}, {"id": "b"}}},
		{Type: batch.OpCreate, Resource: "fields", Records: []map[string]any{{"id": "c"}, {"id": "a"}}},
	}}).ID)
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Len(t, job.Errors, 1)
	e := job.Errors[0]
	require.Equal(t, int64(3), e.ItemIndex, "the fourth item of the job")
	require.Equal(t, 1, e.BatchOperation, "the second operation of the batch")
	b, err := json.Marshal(e)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, 3.0, m["operation_index"])
	require.Equal(t, 1.0, m["batch_operation"])
	page, err := tb.e.JobErrors(t.Context(), job.ID, nil)
	require.NoError(t, err)
	require.Equal(t, []batch.ItemError{e}, page.Items)

	job = tb.wait(t, tb.submit(t, &batch.Batch{
		Operations: []batch.OperationSpec{
			{Type: batch.OpCreate, Resource: "fields", Records: []map[string]any{{"id": "d"}}},
			{Type: batch.OpCreate, Resource: "fields", Records: []map[string]any{{"id": "b"}}},
		},
		Options: batch.BatchOptions{Validation: batch.ValidationOptions{OnError: batch.OnErrorAbort}},
	}).ID)
	require.Equal(t, batch.StateFailed, job.Status)
	require.Equal(t, int64(1), *job.Error.Details[0].ItemIndex)
	require.Equal(t, 1, *job.Error.Details[0].BatchOperation)
}

// TestConformance_ScheduleConflictIsSameWork: schedules conflict only when
// they would run the same work at the same time, and the error reads whole.
func TestConformance_ScheduleConflictIsSameWork(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: utc("2025-01-18T12:00:00Z")}
	tb := setup(t, "memory", &batch.Options{Now: clock.Now})
	sched := func(customer string, area float64) *batch.Schedule {
		return &batch.Schedule{Name: "nightly " + customer,
			Batch: batch.Batch{Description: "for " + customer, Operations: []batch.OperationSpec{{
				Type: batch.OpUpdate, Resource: "fields",
				Filter: map[string]any{"customer": customer}, Update: map[string]any{"area": area},
			}}},
			Timing: batch.Timing{Cron: "0 6 * * *"}}
	}
	acme, err := tb.e.CreateSchedule(t.Context(), sched("acme", 1))
	require.NoError(t, err)
	_, err = tb.e.CreateSchedule(t.Context(), sched("globex", 1))
	require.NoError(t, err, "another customer's records are other work")
	_, err = tb.e.CreateSchedule(t.Context(), sched("acme", 2))
	require.NoError(t, err, "another change is other work")

	same := sched("acme", 1)
	same.Batch.Description = "the same work, described differently"
	same.Batch.Options.MaxConcurrent = 2
	_, err = tb.e.CreateSchedule(t.Context(), same)
	require.Equal(t, batch.CodeScheduleConflict, batch.CodeOf(err))
	require.Equal(t, "SCHEDULE_CONFLICT: Schedule conflict detected; conflicts with "+acme.ID+" at 2025-01-19T06:00:00Z", err.Error())
}

// TestConformance_CallbackReadsSeeTheEvent: a read from an event callback
// sees the state the event reports.
func TestConformance_CallbackReadsSeeTheEvent(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 20)
	var mu sync.Mutex
	seen := map[batch.EventType]batch.State{}
	unsubscribe := tb.e.Subscribe(func(ev batch.Event) {
		if ev.JobID == "" || ev.Type == batch.EventJobDeleted {
			return
		}
		job, err := tb.e.Job(context.Background(), ev.JobID)
		if err != nil {
			return
		}
		mu.Lock()
		seen[ev.Type] = job.Status
		mu.Unlock()
	})
	defer unsubscribe()
	job := tb.wait(t, tb.submit(t, docBatch(t)).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, batch.StateCompleted, seen[batch.EventJobCompleted], "Job in a job_completed callback")
	require.Equal(t, batch.StateRunning, seen[batch.EventJobStarted])
}

// TestConformance_ReopenedJobWaitsForItsOperation: a stored job whose
// operation type is not registered yet when the store is reopened waits,
// and runs once the program registers it.
func TestConformance_ReopenedJobWaitsForItsOperation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "wait.db")
	block := make(chan struct{})
	op := countingOp(heldFrom(3, block))
	job := closeWhileHeld(t, path, map[string]batch.Operation{"stepped": op}, 10, 3)
	close(block)

	// Open decides, before it returns, that the job waits: it says so in
	// the log instead of starting it (and failing it).
	logs := &logRecords{}
	e, err := batch.Open(path, &batch.Options{Logger: slog.New(logs)})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()
	require.Len(t, logs.find("job waits for its operation type to be registered", job.ID), 1)
	j, err := e.Job(t.Context(), job.ID)
	require.NoError(t, err)
	require.False(t, j.Status.Final(), "the job waits for its operation type, it does not fail: %+v", j.Error)
	require.Equal(t, int64(3), j.Progress.Completed)

	require.NoError(t, e.RegisterOperation("stepped", op))
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	j, err = e.Wait(wctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, j.Status, "%+v", j.Error)
	require.Equal(t, int64(10), j.Progress.Completed)
}

package batch_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// exportFields exports the whole fields collection as ndjson with an export
// job and returns the artifact's bytes.
func (tb *testBundle) exportFields(t *testing.T) []byte {
	t.Helper()
	job := tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "export", Resource: "fields", Destination: &batch.Destination{Format: "ndjson"}}}})
	job = tb.wait(t, job.ID)
	require.Equal(t, batch.StateCompleted, job.Status, "%+v", job.Error)
	_, rc, err := tb.e.OpenArtifact(t.Context(), job.ID, job.Results[0].Artifact.Name)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// mixedBatch changes the seeded fields every way a data job can: it
// creates, updates, deletes, imports over existing and new records, and
// calculates, with two operations touching the same records.
func mixedBatch() *batch.Batch {
	recs := make([]map[string]any, 20)
	for i := range recs {
		recs[i] = map[string]any{"id": fmt.Sprintf("new%03d", i), "status": "active", "area": float64(i)}
	}
	return &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "create", Resource: "fields", Records: recs},
		{Type: "update", Resource: "fields", Filter: map[string]any{"status": "active"}, Update: map[string]any{"checked": true, "area": nil}},
		{Type: "delete", Resource: "fields", Where: `record.status == "inactive" && record.area > 40`},
		{Type: "import", Resource: "fields", Source: &batch.Source{Format: "ndjson", Data: "{\"id\":\"field000001\",\"imported\":1}\n{\"id\":\"imp1\",\"imported\":2}\n"}},
		{Type: "calculate", Resource: "fields", Where: `record.status == "inactive"`, Set: map[string]string{"double": "record.area * 2"}},
	}}
}

// TestRevert_ExactExport runs a job that changes records every way, reverts
// it, and checks that an export of the collection is the pre-job export
// byte for byte: deleted records are back, created ones gone.
func TestRevert_ExactExport(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			tb := setup(t, kind, nil)
			tb.seedFields(t, 200)
			before := tb.exportFields(t)

			job := tb.wait(t, tb.submit(t, mixedBatch()).ID)
			require.Equal(t, batch.StateCompleted, job.Status)
			require.Zero(t, job.Progress.Failed, "%+v", job.Errors)
			changed := tb.exportFields(t)
			require.NotEqual(t, before, changed)

			rv, err := tb.e.Revert(t.Context(), job.ID, nil)
			require.NoError(t, err)
			require.Equal(t, job.ID, rv.Reverts)
			rv = tb.wait(t, rv.ID)
			require.Equal(t, batch.StateCompleted, rv.Status, "%+v", rv.Errors)
			require.Zero(t, rv.Progress.Failed, "%+v", rv.Errors)
			require.Equal(t, &batch.RevertStats{Restored: rv.Progress.Completed}, rv.Revert)
			require.Equal(t, string(before), string(tb.exportFields(t)))

			orig, err := tb.e.Job(t.Context(), job.ID)
			require.NoError(t, err)
			require.Equal(t, rv.ID, orig.RevertedBy, "linked both ways")

			// Reverted completely: a second revert is refused, as is
			// reverting the revert.
			_, err = tb.e.Revert(t.Context(), job.ID, nil)
			require.ErrorIs(t, err, batch.ErrInvalidState)
			require.Contains(t, err.Error(), "reverted it already")
			_, err = tb.e.Revert(t.Context(), rv.ID, nil)
			require.ErrorIs(t, err, batch.ErrInvalidState)
		})
	}
}

// TestRevert_Conflict: job A updates records, job B updates some of them
// again; reverting A skips exactly B's records with CONFLICT naming B, and
// a forced revert then restores them.
func TestRevert_Conflict(t *testing.T) {
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 100)
	before := tb.exportFields(t)
	a := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "update", Resource: "fields", Filter: map[string]any{"status": "active"}, Update: map[string]any{"v": "a"}},
	}}).ID)
	require.Equal(t, int64(50), a.Progress.Completed)
	bIDs := []string{"field000002", "field000010", "field000044"}
	b := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "update", Resource: "fields", Where: `record.id in ["field000002", "field000010", "field000044", "field000001"]`, Update: map[string]any{"v": "b"}},
	}}).ID)
	require.Equal(t, int64(4), b.Progress.Completed)
	// And one change outside any job.
	require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "field000020", "v": "direct"}))

	dr, err := tb.e.DryRunRevert(t.Context(), a.ID, nil)
	require.NoError(t, err)
	require.Len(t, dr.Operations, 1)
	require.Equal(t, int64(50), dr.Operations[0].Items)
	require.Equal(t, int64(4), dr.Operations[0].ValidationFailures, "the dry run finds the conflicts")
	require.Equal(t, batch.CodeConflict, dr.Operations[0].Errors[0].Error.Code)
	s := dr.Operations[0].Samples[0]
	require.Equal(t, "a", s.Before["v"])
	require.NotContains(t, s.After, "v")
	forcedDry, err := tb.e.DryRunRevert(t.Context(), a.ID, &batch.RevertOptions{Force: true})
	require.NoError(t, err)
	require.Zero(t, forcedDry.Operations[0].ValidationFailures)

	rv, err := tb.e.Revert(t.Context(), a.ID, nil)
	require.NoError(t, err)
	rv = tb.wait(t, rv.ID)
	require.Equal(t, batch.StateCompleted, rv.Status)
	require.Equal(t, &batch.RevertStats{Restored: 46, Skipped: 4}, rv.Revert)
	page, err := tb.e.JobErrors(t.Context(), rv.ID, nil)
	require.NoError(t, err)
	var skipped []string
	for _, ie := range page.Items {
		require.Equal(t, batch.CodeConflict, ie.Error.Code)
		if ie.ResourceID == "fields/field000020" {
			require.Contains(t, ie.Error.Message, "outside the jobs that keep before-images")
			continue
		}
		require.Contains(t, ie.Error.Message, "by job "+b.ID, "names the later change")
		skipped = append(skipped, strings.TrimPrefix(ie.ResourceID, "fields/"))
	}
	require.ElementsMatch(t, bIDs, skipped, "exactly B's records")
	rec, err := tb.fields.Get(t.Context(), "field000010")
	require.NoError(t, err)
	require.Equal(t, "b", rec["v"], "a conflict is not overwritten")

	forced, err := tb.e.Revert(t.Context(), a.ID, &batch.RevertOptions{Force: true})
	require.NoError(t, err)
	forced = tb.wait(t, forced.ID)
	require.Equal(t, &batch.RevertStats{Restored: 50, Forced: 4}, forced.Revert)
	// B's record field000001 (inactive: A never touched it) keeps B's change.
	rec, err = tb.fields.Get(t.Context(), "field000001")
	require.NoError(t, err)
	require.Equal(t, "b", rec["v"])
	// Undo B's last change to compare with the start.
	require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "field000001", "status": "inactive", "irrigation_enabled": true, "area": float64(2)}))
	require.Equal(t, string(before), string(tb.exportFields(t)))
}

// TestRevert_Refused: what cannot be reverted says why, with INVALID_STATE.
func TestRevert_Refused(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock = func() time.Time { return now }
	tb := setup(t, "bolt", &batch.Options{Now: func() time.Time { return clock() }})
	tb.seedFields(t, 10)
	upd := func(opts batch.BatchOptions) *batch.Job {
		return tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
			{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"x": 1}},
		}, Options: opts}).ID)
	}
	off := upd(batch.BatchOptions{UndoRetention: ptr(batch.Duration(0))})
	_, err := tb.e.Revert(t.Context(), off.ID, nil)
	require.ErrorIs(t, err, batch.ErrInvalidState)
	require.Contains(t, err.Error(), "kept no before-images")

	kept := upd(batch.BatchOptions{})
	noop := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "export", Resource: "fields"}}}).ID)
	_, err = tb.e.Revert(t.Context(), noop.ID, nil)
	require.ErrorIs(t, err, batch.ErrInvalidState)
	require.Contains(t, err.Error(), "changed no built-in collection records")

	_, err = tb.e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "revert", Source: &batch.Source{JobID: kept.ID}, Params: map[string]any{"operation": 0}},
	}}, nil)
	require.ErrorIs(t, err, batch.ErrInvalidBatch)

	// Past the default window of 7 days: refused, and cleanup removes them.
	now = now.Add(batch.DefaultUndoRetention + time.Minute)
	_, err = tb.e.Revert(t.Context(), kept.ID, nil)
	require.ErrorIs(t, err, batch.ErrInvalidState)
	require.Contains(t, err.Error(), "are gone")
	st, err := tb.e.Cleanup(t.Context(), now.Add(-24*time.Hour*365))
	require.NoError(t, err)
	require.Equal(t, int64(1), st.BeforeImages)
	_, err = tb.e.Revert(t.Context(), kept.ID, nil)
	require.ErrorIs(t, err, batch.ErrInvalidState)

	_, err = tb.e.Revert(context.Background(), "batch999", nil)
	require.ErrorIs(t, err, batch.ErrNotFound)
}

// TestRevert_Restore: a restore replaces whole collections; reverting it
// brings back every record it replaced, removed or added, in each
// collection, including one the backup did not have.
func TestRevert_Restore(t *testing.T) {
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 50)
	require.NoError(t, tb.e.DefineCollection("crops", nil))
	crops, err := tb.e.Collection("crops")
	require.NoError(t, err)
	require.NoError(t, crops.Put(t.Context(), batch.Record{"id": "rice", "v": 1}))
	backup := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "backup"}}}).ID)
	require.Equal(t, batch.StateCompleted, backup.Status)

	// After the backup: changes the restore will undo.
	require.NoError(t, tb.fields.Delete(t.Context(), "field000003"))
	require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "field000004", "changed": true}))
	require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "zzz", "after_backup": true}))
	require.NoError(t, crops.Put(t.Context(), batch.Record{"id": "corn", "v": 2}))
	require.NoError(t, tb.e.DefineCollection("soils", nil))
	soils, err := tb.e.Collection("soils")
	require.NoError(t, err)
	require.NoError(t, soils.Put(t.Context(), batch.Record{"id": "clay"}))
	before := tb.exportFields(t)

	restore := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "restore", Source: &batch.Source{JobID: backup.ID}}}}).ID)
	require.Equal(t, batch.StateCompleted, restore.Status, "%+v", restore.Errors)
	_, err = soils.Get(t.Context(), "clay")
	require.ErrorIs(t, err, batch.ErrNotFound, "the restore emptied a collection the backup lacks")

	rv, err := tb.e.Revert(t.Context(), restore.ID, nil)
	require.NoError(t, err)
	rv = tb.wait(t, rv.ID)
	require.Equal(t, batch.StateCompleted, rv.Status, "%+v", rv.Errors)
	require.Zero(t, rv.Progress.Failed)
	require.Equal(t, string(before), string(tb.exportFields(t)))
	got, err := crops.Get(t.Context(), "corn")
	require.NoError(t, err)
	require.Equal(t, float64(2), got["v"])
	_, err = soils.Get(t.Context(), "clay")
	require.NoError(t, err)
}

// TestRevert_Cancelled: a job cancelled half way can be reverted; exactly
// the records it changed are put back.
func TestRevert_Cancelled(t *testing.T) {
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 300)
	before := tb.exportFields(t)
	// A validating collection that holds the 31st record it sees until
	// its item is cancelled: the job is cancelled with exactly 30 done.
	var mu sync.Mutex
	seen := map[string]bool{}
	require.NoError(t, tb.e.DefineCollection("fields", &batch.CollectionOptions{Validate: func(ctx context.Context, r batch.Record) error {
		mu.Lock()
		seen[r.ID()] = true
		n := len(seen)
		mu.Unlock()
		if n == 31 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}))
	job := tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"x": 1}},
	}, Options: batch.BatchOptions{MaxConcurrent: 1, Validation: batch.ValidationOptions{Mode: batch.ModeLenient}}})
	require.Eventually(t, func() bool {
		j, err := tb.e.Job(t.Context(), job.ID)
		require.NoError(t, err)
		return j.Progress.Completed == 30
	}, 20*time.Second, time.Millisecond)
	_, err := tb.e.Cancel(t.Context(), job.ID)
	require.NoError(t, err)
	job = tb.wait(t, job.ID)
	require.Equal(t, batch.StateCancelled, job.Status)
	require.Equal(t, int64(30), job.Progress.Completed)

	rv, err := tb.e.Revert(t.Context(), job.ID, nil)
	require.NoError(t, err)
	rv = tb.wait(t, rv.ID)
	require.Equal(t, batch.StateCompleted, rv.Status, "%+v", rv.Errors)
	require.Equal(t, job.Progress.Completed, rv.Revert.Restored)
	require.Equal(t, string(before), string(tb.exportFields(t)))
}

// TestRevert_RestoreNeedsAdmin: undoing a restore acts on the whole store,
// so only an administrator may revert it.
func TestRevert_RestoreNeedsAdmin(t *testing.T) {
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 5)
	admin := batch.WithAdmin(batch.WithPrincipal(t.Context(), "alice"))
	backup, err := tb.e.Submit(admin, &batch.Batch{Operations: []batch.OperationSpec{{Type: "backup"}}}, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, tb.wait(t, backup.ID).Status)
	restore, err := tb.e.Submit(admin, &batch.Batch{Operations: []batch.OperationSpec{{Type: "restore", Source: &batch.Source{JobID: backup.ID}}}}, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, tb.wait(t, restore.ID).Status)

	_, err = tb.e.Revert(batch.WithPrincipal(t.Context(), "alice"), restore.ID, nil)
	require.Equal(t, batch.CodeForbidden, batch.CodeOf(err), "%v", err)
	_, err = tb.e.DryRunRevert(batch.WithPrincipal(t.Context(), "alice"), restore.ID, nil)
	require.Equal(t, batch.CodeForbidden, batch.CodeOf(err), "%v", err)
	rv, err := tb.e.Revert(admin, restore.ID, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, tb.wait(t, rv.ID).Status)
}

package batch_test

import (
	"testing"

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

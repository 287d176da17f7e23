package batch_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// TestDryRun_DocumentUpdate: a dry run of the document's update reports
// exactly the records the real job then changes, shows them as they are and
// as they become, and leaves the store file byte for byte as it was.
func TestDryRun_DocumentUpdate(t *testing.T) {
	// The document's 100,000 records run in BenchmarkUndo; a fifth of
	// them here keeps the race-detected suite quick.
	n := 20_000
	if testing.Short() {
		n = 4_000
	}
	tb := setup(t, "bolt", &batch.Options{Retention: -1})
	tb.seedFields(t, n)
	file, err := os.ReadFile(tb.path)
	require.NoError(t, err)

	dr, err := tb.e.DryRun(t.Context(), docBatch(t))
	require.NoError(t, err)
	after, err := os.ReadFile(tb.path)
	require.NoError(t, err)
	require.True(t, string(file) == string(after), "the store file is byte-identical after a dry run")

	require.Len(t, dr.Operations, 1)
	op := dr.Operations[0]
	require.Equal(t, int64(n/4), op.Items)
	require.Len(t, op.Samples, batch.DryRunSamples)
	require.Zero(t, op.ValidationFailures)

	job := tb.wait(t, tb.submit(t, docBatch(t)).ID)
	require.Equal(t, op.Items, job.Progress.Completed, "the dry run counted what the job changed")
	for _, s := range op.Samples {
		require.Nil(t, s.Before["irrigation_schedule"])
		rec, err := tb.fields.Get(t.Context(), s.ResourceID)
		require.NoError(t, err)
		require.Equal(t, s.After, rec, "the sample is the record the job wrote")
	}
}

// TestDryRun_Kinds: delete shows the record that would go, create the new
// record, strict validation failures are listed, and a bad batch is the
// INVALID_BATCH Submit gives.
func TestDryRun_Kinds(t *testing.T) {
	tb := setup(t, "memory", nil)
	tb.seedFields(t, 40)
	require.NoError(t, tb.e.DefineCollection("plots", &batch.CollectionOptions{Validate: func(_ context.Context, r batch.Record) error {
		if _, ok := r["name"].(string); !ok {
			return errors.New("name is required")
		}
		return nil
	}}))
	dr, err := tb.e.DryRun(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "delete", Resource: "fields", Where: `record.area > 35`},
		{Type: "create", Resource: "plots", Records: []map[string]any{{"id": "p1", "name": "a"}, {"id": "p2"}, {"id": "p3"}}},
	}})
	require.NoError(t, err)
	del := dr.Operations[0]
	require.Equal(t, int64(5), del.Items)
	for _, s := range del.Samples {
		require.NotNil(t, s.Before)
		require.Nil(t, s.After)
	}
	cr := dr.Operations[1]
	require.Equal(t, int64(3), cr.Items)
	require.Nil(t, cr.Samples[0].Before)
	require.Equal(t, batch.Record{"id": "p1", "name": "a"}, cr.Samples[0].After)
	require.Equal(t, int64(2), cr.ValidationFailures)
	require.Equal(t, "p2", cr.Errors[0].ResourceID)
	require.Equal(t, batch.CodeValidation, cr.Errors[0].Error.Code)
	require.Equal(t, int64(6), cr.Errors[0].ItemIndex, "item indexes follow the job's")
	n, err := tb.fields.Count(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, int64(40), n, "nothing deleted")

	_, err = tb.e.DryRun(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "nope"}}})
	require.ErrorIs(t, err, batch.ErrInvalidBatch)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = tb.e.DryRun(ctx, &batch.Batch{Operations: []batch.OperationSpec{{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"x": 1}}}})
	require.ErrorIs(t, err, context.Canceled, "bounded by its context")
}

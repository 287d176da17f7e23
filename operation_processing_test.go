package batch_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// cropFields are three fields: two with an area, one without.
func cropFields(t *testing.T, e *batch.Engine) {
	t.Helper()
	c, err := e.Collection("fields")
	require.NoError(t, err)
	require.NoError(t, c.PutMany(t.Context(), []batch.Record{
		{"id": "f1", "area": 10.0, "crop": "rice", "status": "active"},
		{"id": "f2", "area": 4.0, "crop": "corn", "status": "active"},
		{"id": "f3", "crop": "rice", "status": "active"},
		{"id": "f4", "area": 7.0, "crop": "corn", "status": "fallow"},
	}))
}

func TestCalculate_SetsFieldsAndFailsBadRecords(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{batch.ModeStrict, batch.ModeLenient} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := openOps(t, nil)
			cropFields(t, b.e)
			job := runJob(t, b.e, &batch.Batch{
				Operations: []batch.OperationSpec{{
					Type: "calculate", Resource: "fields", Filter: map[string]any{"status": "active"},
					Set: map[string]string{
						"water_need": `record.area * (record.crop == "rice" ? 1.5 : 0.8)`,
						"label":      `upper(record.crop) + "-" + record.id`,
						"area":       `record.area * 2`, // every expression sees the record as it was
					},
				}},
				Options: batch.BatchOptions{Validation: batch.ValidationOptions{Mode: mode}},
			})
			require.Equal(t, batch.StateCompleted, job.Status)
			require.Equal(t, int64(3), job.Progress.TotalOperations)
			require.Equal(t, int64(2), job.Progress.Completed)
			require.Equal(t, int64(1), job.Progress.Failed)
			require.Len(t, job.Errors, 1)
			require.Equal(t, "f3", job.Errors[0].ResourceID)
			require.Equal(t, batch.CodeValidation, job.Errors[0].Error.Code)
			require.Contains(t, job.Errors[0].Error.Message, "set.area")
			require.Equal(t, 1, job.Errors[0].Attempts)

			got := allFields(t, b.e)
			require.Equal(t, batch.Record{"id": "f1", "area": 20.0, "crop": "rice", "status": "active", "water_need": 15.0, "label": "RICE-f1"}, got["f1"])
			require.Equal(t, batch.Record{"id": "f2", "area": 8.0, "crop": "corn", "status": "active", "water_need": 3.2, "label": "CORN-f2"}, got["f2"])
			require.Equal(t, batch.Record{"id": "f3", "crop": "rice", "status": "active"}, got["f3"])
			require.Equal(t, batch.Record{"id": "f4", "area": 7.0, "crop": "corn", "status": "fallow"}, got["f4"])
		})
	}
}

func TestCalculate_NonJSONResultFailsItem(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	cropFields(t, b.e)
	job := runJob(t, b.e, ops(batch.OperationSpec{Type: "calculate", Resource: "fields", Filter: map[string]any{"id": "f1"},
		Set: map[string]string{"ratio": "record.area / 0"}}))
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Equal(t, batch.CodeValidation, job.Errors[0].Error.Code)
	require.Contains(t, job.Errors[0].Error.Message, "not a JSON number")
	require.NotContains(t, allFields(t, b.e)["f1"], "ratio")
}

func TestCalculate_OnProgramResource(t *testing.T) {
	t.Parallel()
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Retention: -1})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close(context.Background()) })
	res := &mapResource{recs: map[string]batch.Record{"a": {"id": "a", "n": 2.0}, "b": {"id": "b", "n": 3.0}}}
	require.NoError(t, e.RegisterResource("nums", res))
	job := runJob(t, e, ops(batch.OperationSpec{Type: "calculate", Resource: "nums", Where: "true", Set: map[string]string{"sq": "record.n ** 2"}}))
	require.Equal(t, int64(2), job.Progress.Completed, "errors: %+v", job.Errors)
	a, _ := res.Get(t.Context(), "a")
	require.Equal(t, 4.0, a["sq"])
}

func TestProcessing_InvalidBatches(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	tests := []struct {
		name   string
		spec   batch.OperationSpec
		fields []string
	}{
		{"calculate without set", batch.OperationSpec{Type: "calculate", Resource: "fields", Where: "true"}, []string{"operations[0].set"}},
		{"calculate bad expression", batch.OperationSpec{Type: "calculate", Resource: "fields", Where: "true", Set: map[string]string{"x": "record.a +", "y": "1"}}, []string{"operations[0].set.x"}},
		{"calculate bad expression", batch.OperationSpec{Type: "calculate", Resource: "fields", Where: "true", Set: map[string]string{"x": "a +"}}, []string{"operations[0].set.x"}},
		{"calculate id", batch.OperationSpec{Type: "calculate", Resource: "fields", Where: "true", Set: map[string]string{"id": "'x'"}}, []string{"operations[0].set.id"}},
		{"calculate without filter", batch.OperationSpec{Type: "calculate", Resource: "fields", Set: map[string]string{"x": "1"}}, []string{"operations[0].filter"}},
		{"calculate unknown resource and field", batch.OperationSpec{Type: "calculate", Resource: "nope", Where: "true", Set: map[string]string{"x": "1"}, Update: map[string]any{"a": 1}}, []string{"operations[0].resource", "operations[0].update"}},
		{"validate without rules", batch.OperationSpec{Type: "validate", Resource: "fields", Where: "true"}, []string{"operations[0].rules"}},
		{"validate non-boolean rule", batch.OperationSpec{Type: "validate", Resource: "fields", Where: "true", Rules: map[string]string{"r": "1 + 1"}}, []string{"operations[0].rules.r"}},
		{"analyze without aggregates", batch.OperationSpec{Type: "analyze", Resource: "fields"}, []string{"operations[0].aggregates"}},
		{"analyze bad aggregates", batch.OperationSpec{Type: "analyze", Resource: "fields", GroupBy: "crop", Aggregates: map[string]batch.Aggregate{
			"a": {Fn: "median", Field: "x"}, "b": {Fn: "sum"}, "c": {}, "key": {Fn: "count"}, "ok": {Fn: "count"},
		}}, []string{"operations[0].aggregates.a.fn", "operations[0].aggregates.b.field", "operations[0].aggregates.c.fn", "operations[0].aggregates.key"}},
		{"analyze bad where", batch.OperationSpec{Type: "analyze", Resource: "fields", Where: "record.x >", Aggregates: map[string]batch.Aggregate{"n": {Fn: "count"}}}, []string{"operations[0].where"}},
		{"generate bad format", batch.OperationSpec{Type: "generate", Resource: "fields", Aggregates: map[string]batch.Aggregate{"n": {Fn: "count"}}, Report: &batch.Destination{Format: "pdf"}}, []string{"operations[0].report.format"}},
		{"generate takes no destination", batch.OperationSpec{Type: "generate", Resource: "fields", Aggregates: map[string]batch.Aggregate{"n": {Fn: "count"}}, Destination: &batch.Destination{Format: "csv"}}, []string{"operations[0].destination"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.e.Submit(t.Context(), ops(tt.spec), nil)
			requireInvalid(t, b.e, err, tt.fields...)
		})
	}
}

func TestValidate_FailedRecordsNameTheirRules(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	cropFields(t, b.e)
	before := allFields(t, b.e)
	job := runJob(t, b.e, ops(batch.OperationSpec{Type: "validate", Resource: "fields", Where: "true", Rules: map[string]string{
		"has_area":    "record.area != nil",
		"large":       "(record.area ?? 0) > 5",
		"known_crop":  `record.crop in ["rice", "corn"]`,
		"area_number": "record.area > 0",
	}}))
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(4), job.Progress.TotalOperations)
	require.Equal(t, int64(2), job.Progress.Completed) // f1 and f4
	require.Equal(t, int64(2), job.Progress.Failed)
	page, err := b.e.JobErrors(t.Context(), job.ID, nil)
	require.NoError(t, err)
	require.Len(t, page.Items, 2)
	byID := map[string]string{}
	for _, e := range page.Items {
		require.Equal(t, batch.CodeValidation, e.Error.Code)
		byID[e.ResourceID] = e.Error.Message
	}
	require.Equal(t, "failed rules: large", byID["f2"])
	require.Contains(t, byID["f3"], "failed rules: area_number (")
	require.Contains(t, byID["f3"], "), has_area, large")
	require.Equal(t, before, allFields(t, b.e), "validate changed records")
}

func TestAnalyze_Aggregates(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	cropFields(t, b.e)
	aggs := map[string]batch.Aggregate{
		"n":         {Fn: "count"},
		"with_area": {Fn: "count", Field: "area"},
		"total":     {Fn: "sum", Field: "area"},
		"mean":      {Fn: "avg", Field: "area"},
		"smallest":  {Fn: "min", Field: "area"},
		"largest":   {Fn: "max", Field: "area"},
	}
	tests := []struct {
		name string
		spec batch.OperationSpec
		want any
	}{
		{"all", batch.OperationSpec{Type: "analyze", Resource: "fields", Aggregates: aggs},
			map[string]any{"n": 4.0, "with_area": 3.0, "total": 21.0, "mean": 7.0, "smallest": 4.0, "largest": 10.0}},
		{"filtered to nothing", batch.OperationSpec{Type: "analyze", Resource: "fields", Filter: map[string]any{"crop": "wheat"}, Aggregates: aggs},
			map[string]any{"n": 0.0, "with_area": 0.0, "total": 0.0, "mean": nil, "smallest": nil, "largest": nil}},
		{"grouped", batch.OperationSpec{Type: "analyze", Resource: "fields", Where: `record.status == "active"`, GroupBy: "crop", Aggregates: aggs},
			map[string]any{"groups": []any{
				map[string]any{"key": "corn", "n": 1.0, "with_area": 1.0, "total": 4.0, "mean": 4.0, "smallest": 4.0, "largest": 4.0},
				map[string]any{"key": "rice", "n": 2.0, "with_area": 1.0, "total": 10.0, "mean": 10.0, "smallest": 10.0, "largest": 10.0},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := runJob(t, b.e, ops(tt.spec))
			require.Equal(t, int64(1), job.Progress.Completed, "errors: %+v", job.Errors)
			require.Len(t, job.Results, 1)
			require.Equal(t, "analyze", job.Results[0].Type)
			require.Equal(t, tt.want, job.Results[0].Summary)
		})
	}
}

func TestGenerate_Reports(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	cropFields(t, b.e)
	aggs := map[string]batch.Aggregate{"fields": {Fn: "count"}, "area": {Fn: "sum", Field: "area"}}
	tests := []struct {
		name, format, groupBy, want string
	}{
		{"csv grouped", "csv", "status", "key,area,fields\nactive,14,3\nfallow,7,1\n"},
		{"csv whole", "csv", "", "key,area,fields\n,21,4\n"},
		{"json grouped", "json", "crop", `{"groups":[{"key":"corn","fields":2,"area":11},{"key":"rice","fields":2,"area":10}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := runJob(t, b.e, ops(batch.OperationSpec{Type: "generate", Resource: "fields", GroupBy: tt.groupBy, Aggregates: aggs, Report: &batch.Destination{Format: tt.format}}))
			require.Equal(t, int64(1), job.Progress.Completed, "errors: %+v", job.Errors)
			art := job.Results[0].Artifact
			require.NotNil(t, art)
			require.Equal(t, "report-0."+tt.format, art.Name)
			got := string(readArtifact(t, b.e, job.ID, art.Name))
			if tt.format == "json" {
				require.JSONEq(t, tt.want, got)
				require.Equal(t, "application/json", art.ContentType)
			} else {
				require.Equal(t, tt.want, got)
				require.Equal(t, "text/csv", art.ContentType)
			}
		})
	}
}

// benchRecords is the collection size the item benchmarks run over.
func benchRecords() int {
	if testing.Short() {
		return 10_000
	}
	return 100_000
}

// benchItemJob runs op over every record of a fresh engine per iteration
// and reports items per second.
func benchItemJob(b *testing.B, op batch.OperationSpec) {
	n := benchRecords()
	e, err := batch.Open(filepath.Join(b.TempDir(), "bench.db"), &batch.Options{Retention: -1})
	require.NoError(b, err)
	defer e.Close(context.Background())
	putFields(b, e, n, func(i int) batch.Record {
		crops := []string{"rice", "corn", "wheat"}
		return batch.Record{"area": float64(i%500) + 0.5, "crop": crops[i%3], "status": "active"}
	})
	opts := batch.BatchOptions{MaxConcurrent: 16}
	var items int64
	start := time.Now()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		job, err := e.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{op}, Options: opts}, nil)
		require.NoError(b, err)
		job, err = e.Wait(ctx, job.ID)
		cancel()
		require.NoError(b, err)
		require.Equal(b, int64(n), job.Progress.Completed, "errors: %+v", job.Errors)
		items += job.Progress.Completed
	}
	b.ReportMetric(float64(items)/time.Since(start).Seconds(), "items/s")
}

// BenchmarkCalculate and BenchmarkCalculate_Update run the same engine
// over the same records, so their items/s compare within one run:
//
//	go test -run '^$' -bench 'BenchmarkCalculate' -benchtime 3x .
func BenchmarkCalculate(b *testing.B) {
	b.Run("calculate", func(b *testing.B) {
		benchItemJob(b, batch.OperationSpec{Type: "calculate", Resource: "fields", Where: "true", Set: map[string]string{
			"water_need": `record.area * (record.crop == "rice" ? 1.5 : 0.8)`,
		}})
	})
	b.Run("update", func(b *testing.B) {
		benchItemJob(b, batch.OperationSpec{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"water_need": 1.0}})
	})
}

// TestPlanPrologues_DetailsInOrder pins the details that the shared plan
// prologues report, in order and word for word: named expressions
// (calculate, validate), output formats (export, generate) and store
// abilities (backup, optimize).
func TestPlanPrologues_DetailsInOrder(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	mem, err := batch.New(batch.NewMemoryStore(), &batch.Options{Retention: -1})
	require.NoError(t, err)
	t.Cleanup(func() { mem.Close(context.Background()) })
	detail := func(field, code, msg string) batch.Detail {
		return batch.Detail{Field: "operations[0]." + field, Code: code, Message: msg}
	}
	tests := []struct {
		name string
		e    *batch.Engine
		spec batch.OperationSpec
		want []batch.Detail
	}{
		{"calculate", b.e, batch.OperationSpec{Type: "calculate", Resource: "fields", Where: "true", Set: map[string]string{" ": "1", "a": "1 +", "id": "'x'", "ok": "1"}}, []batch.Detail{
			detail("set. ", batch.DetailInvalidValue, "a field name must not be empty"),
			detail("set.a", batch.DetailInvalidExpr, "invalid expression: unexpected token EOF (1:3)\n | 1 +\n | ..^"),
			detail("set.id", batch.DetailInvalidValue, "calculate cannot change a record's id"),
		}},
		{"calculate without set", b.e, batch.OperationSpec{Type: "calculate", Resource: "nope", Rules: map[string]string{"r": "true"}}, []batch.Detail{
			detail("rules", batch.DetailUnknownField, `calculate does not take "rules" (it takes resource, filter, where, set)`),
			detail("resource", batch.DetailUnknownResource, "Unknown resource: nope"),
			detail("filter", batch.DetailRequired, `calculate needs a filter or a where expression (use "where": "true" to select every record)`),
			detail("set", batch.DetailRequired, `calculate needs set: {"field": "expression over record"}`),
		}},
		{"validate", b.e, batch.OperationSpec{Type: "validate", Resource: "fields", Where: "true", Rules: map[string]string{"": "true", "id": "true", "r": "1 +"}}, []batch.Detail{
			detail("rules.", batch.DetailInvalidValue, "a rule name must not be empty"),
			detail("rules.r", batch.DetailInvalidExpr, "invalid rule: unexpected token EOF (1:3)\n | 1 +\n | ..^"),
		}},
		{"validate without rules", b.e, batch.OperationSpec{Type: "validate", Resource: "fields", Where: "true"}, []batch.Detail{
			detail("rules", batch.DetailRequired, `validate needs rules: {"rule name": "boolean expression over record"}`),
		}},
		{"export", b.e, batch.OperationSpec{Type: "export", Resource: "fields", Destination: &batch.Destination{Format: "pdf"}}, []batch.Detail{
			detail("destination.format", batch.DetailInvalidValue, `unknown format "pdf": use json, ndjson or csv`),
		}},
		{"generate", b.e, batch.OperationSpec{Type: "generate", Resource: "fields", Aggregates: map[string]batch.Aggregate{"n": {Fn: "count"}}, Report: &batch.Destination{Format: "pdf"}}, []batch.Detail{
			detail("report.format", batch.DetailInvalidValue, `unknown report format "pdf": use csv or json`),
		}},
		{"backup", mem, batch.OperationSpec{Type: "backup", Resource: "fields"}, []batch.Detail{
			detail("resource", batch.DetailUnknownField, `backup takes no "resource" field`),
			detail("type", batch.DetailInvalidOperation, "backup needs a store that can take snapshots (the bbolt store); this engine's store cannot"),
		}},
		{"optimize", mem, batch.OperationSpec{Type: "optimize"}, []batch.Detail{
			detail("type", batch.DetailInvalidOperation, "optimize needs a store that can compact (the bbolt store); this engine's store cannot"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.e.Submit(t.Context(), ops(tt.spec), nil)
			var be *batch.Error
			require.ErrorAs(t, err, &be)
			require.Equal(t, tt.want, be.Details)
		})
	}
}

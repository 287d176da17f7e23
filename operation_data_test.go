package batch_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestOperation_Create(t *testing.T) {
	t.Parallel()
	onEachStore(t, nil, func(t *testing.T, tb *testBundle) {
		tb.seedFields(t, 2)
		job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{
			Type: "create", Resource: "fields",
			Records: []map[string]any{{"id": "north", "crop": "rice"}, {"crop": "corn"}, {"id": "field000001"}},
		}}}).ID)
		require.Equal(t, batch.StateCompleted, job.Status)
		require.Equal(t, int64(2), job.Progress.Completed)
		require.Equal(t, int64(1), job.Progress.Failed)
		require.Equal(t, batch.CodeResource, job.Errors[0].Error.Code)
		require.Equal(t, "Resource already exists: field000001", job.Errors[0].Error.Message)
		require.Equal(t, 1, job.Errors[0].Attempts, "a conflict is not retried")

		north, err := tb.fields.Get(t.Context(), "north")
		require.NoError(t, err)
		require.Equal(t, batch.Record{"id": "north", "crop": "rice"}, north)
		generated, err := tb.fields.Get(t.Context(), job.ID+"-0-1")
		require.NoError(t, err, "a record without id gets <job>-<op>-<index>")
		require.Equal(t, "corn", generated["crop"])
	})
}

func TestOperation_Import(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		source batch.Source
	}{
		{"json array", batch.Source{Format: "json", Data: []any{map[string]any{"id": "a", "crop": "rice"}, map[string]any{"id": "b", "crop": "corn"}}}},
		{"json string", batch.Source{Format: "json", Data: `[{"id": "a", "crop": "rice"}, {"id": "b", "crop": "corn"}]`}},
		{"ndjson", batch.Source{Format: "ndjson", Data: "{\"id\": \"a\", \"crop\": \"rice\"}\n\n{\"id\": \"b\", \"crop\": \"corn\"}\n"}},
		{"csv", batch.Source{Format: "csv", Data: "id,crop\na,rice\nb,corn\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, "bolt", nil)
			require.NoError(t, tb.fields.Put(t.Context(), batch.Record{"id": "a", "crop": "wheat", "old": true}))
			job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "import", Resource: "fields", Source: &tt.source}}}).ID)
			require.Equal(t, int64(2), job.Progress.Completed, "%+v", job.Errors)
			a, err := tb.fields.Get(t.Context(), "a")
			require.NoError(t, err)
			require.Equal(t, batch.Record{"id": "a", "crop": "rice"}, a, "import replaces the record with the same id")
			b, err := tb.fields.Get(t.Context(), "b")
			require.NoError(t, err)
			require.Equal(t, "corn", b["crop"])
		})
	}
}

func TestOperation_Delete(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 100)
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "delete", Resource: "fields", Filter: map[string]any{"status": "inactive"}, Where: "record.area <= 10",
	}}}).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	left, err := tb.fields.Count(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, int64(100)-job.Progress.Completed, left)
	require.Positive(t, job.Progress.Completed)
	require.NoError(t, tb.fields.Scan(t.Context(), nil, func(r batch.Record) error {
		require.False(t, r["status"] == "inactive" && r["area"].(float64) <= 10, r.ID())
		return nil
	}))
}

func TestOperation_Export(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 10000)
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "export", Resource: "fields", Filter: map[string]any{"status": "active"}},
		{Type: "export", Resource: "fields", Where: "record.area == 7", Destination: &batch.Destination{Format: "csv"}},
		{Type: "export", Resource: "fields", Where: "record.area == 7", Destination: &batch.Destination{Format: "ndjson"}},
	}}).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Len(t, job.Results, 3)

	read := func(name string) (*batch.Artifact, []byte) {
		art, rc, err := tb.e.OpenArtifact(t.Context(), job.ID, name)
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.Equal(t, art.Size, int64(len(b)))
		return art, b
	}
	art, body := read("export-0.json")
	require.Equal(t, "application/json", art.ContentType)
	var recs []batch.Record
	require.NoError(t, json.Unmarshal(body, &recs))
	require.Len(t, recs, 5000)
	for _, r := range recs {
		require.Equal(t, "active", r["status"])
		require.NotEmpty(t, r.ID())
	}
	require.Greater(t, len(body), 256<<10, "large enough to span chunks")

	_, body = read("export-1.csv")
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"id", "area", "irrigation_enabled", "status"}, rows[0])
	require.Len(t, rows, 201)
	require.Equal(t, "7", rows[1][1])

	_, body = read("export-2.ndjson")
	require.Equal(t, 200, strings.Count(string(body), "\n"))

	var summaries []any
	for _, r := range job.Results {
		require.NotNil(t, r.Artifact)
		summaries = append(summaries, r.Summary)
	}
	require.Contains(t, summaries, map[string]any{"records": float64(5000), "format": "json"})

	arts, err := tb.e.Artifacts(t.Context(), job.ID)
	require.NoError(t, err)
	require.Len(t, arts, 3)
	_, _, err = tb.e.OpenArtifact(t.Context(), job.ID, "nope.json")
	require.ErrorIs(t, err, batch.ErrNotFound)
}

// mapResource is a program's own resource: records in a map.
type mapResource struct {
	mu   sync.Mutex
	recs map[string]batch.Record
	puts int
}

func (m *mapResource) Scan(ctx context.Context, q *batch.Query, fn func(batch.Record) error) error {
	m.mu.Lock()
	recs := make([]batch.Record, 0, len(m.recs))
	for _, r := range m.recs {
		if q.Match(r) {
			recs = append(recs, maps.Clone(r))
		}
	}
	m.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *mapResource) Get(ctx context.Context, id string) (batch.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return nil, batch.ErrNotFound
	}
	return maps.Clone(r), nil
}

func (m *mapResource) Put(ctx context.Context, rec batch.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	m.recs[rec.ID()] = rec
	return nil
}

func (m *mapResource) Delete(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[id]; !ok {
		return batch.ErrNotFound
	}
	delete(m.recs, id)
	return nil
}

func (m *mapResource) ValidateRecord(ctx context.Context, rec batch.Record) error {
	if d, ok := rec["duration_minutes"].(float64); ok && d <= 0 {
		return batch.ValidationError("Invalid irrigation duration")
	}
	return nil
}

func TestOperation_CustomResource(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	res := &mapResource{recs: map[string]batch.Record{
		"f1": {"id": "f1", "status": "active"},
		"f2": {"id": "f2", "status": "active"},
		"f3": {"id": "f3", "status": "inactive"},
	}}
	require.NoError(t, tb.e.RegisterResource("farms", res))
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "update", Resource: "farms", Filter: map[string]any{"status": "active"}, Update: map[string]any{"duration_minutes": 30}},
		{Type: "update", Resource: "farms", Filter: map[string]any{"status": "inactive"}, Update: map[string]any{"duration_minutes": -5}},
		{Type: "create", Resource: "farms", Records: []map[string]any{{"id": "f4", "status": "new"}}},
	}}).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(3), job.Progress.Completed)
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Equal(t, "f3", job.Errors[0].ResourceID)
	require.Equal(t, "Invalid irrigation duration", job.Errors[0].Error.Message)
	require.Equal(t, batch.CodeValidation, job.Errors[0].Error.Code)
	require.Equal(t, float64(30), res.recs["f1"]["duration_minutes"])
	require.NotContains(t, res.recs["f3"], "duration_minutes")
	require.Equal(t, "new", res.recs["f4"]["status"])
}

package batch_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/apidoc"
)

func docTemplate(t *testing.T) *batch.Template {
	tpl, err := batch.DecodeTemplate([]byte(apidoc.Template()))
	require.NoError(t, err)
	return tpl
}

func TestTemplate_DocumentExample(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 40)
	ctx := batch.WithPrincipal(t.Context(), "alice")
	tpl, err := tb.e.CreateTemplate(ctx, docTemplate(t))
	require.NoError(t, err)
	require.Regexp(t, `^template\d+$`, tpl.ID)
	require.Equal(t, "alice", tpl.Owner)

	got, err := tb.e.Template(t.Context(), tpl.ID)
	require.NoError(t, err)
	require.Equal(t, "bulk_field_update", got.Name)
	require.Len(t, got.Parameters, 2)

	job, err := tb.e.Submit(ctx, &batch.Batch{TemplateID: tpl.ID, Parameters: map[string]any{"status": "inactive", "crop_type": "rice"}}, nil)
	require.NoError(t, err)
	require.Equal(t, tpl.ID, job.TemplateID)
	require.Equal(t, "bulk_field_update", job.Type)
	job = tb.wait(t, job.ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(40), job.Progress.Completed)
	require.NoError(t, tb.fields.Scan(t.Context(), nil, func(r batch.Record) error {
		require.Equal(t, "inactive", r["status"])
		require.Equal(t, "rice", r["crop_type"])
		return nil
	}))

	// An optional parameter left out removes its key: crop_type stays.
	job, err = tb.e.Submit(ctx, &batch.Batch{TemplateID: tpl.ID, Parameters: map[string]any{"status": "active"}}, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, tb.wait(t, job.ID).Status)
	rec, err := tb.fields.Get(t.Context(), "field000003")
	require.NoError(t, err)
	require.Equal(t, "active", rec["status"])
	require.Equal(t, "rice", rec["crop_type"], "a missing optional parameter does not write null")
}

func TestTemplate_ParameterErrors(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	tpl, err := tb.e.CreateTemplate(t.Context(), docTemplate(t))
	require.NoError(t, err)
	tests := []struct {
		name   string
		params map[string]any
		fields map[string]string
	}{
		{"missing required", map[string]any{"crop_type": "rice"}, map[string]string{"parameters.status": batch.DetailRequired}},
		{"wrong type", map[string]any{"status": 3}, map[string]string{"parameters.status": batch.DetailInvalidValue}},
		{"outside enum", map[string]any{"status": "archived"}, map[string]string{"parameters.status": batch.DetailInvalidValue}},
		{"unknown parameter", map[string]any{"status": "active", "colour": "red"}, map[string]string{"parameters.colour": batch.DetailUnknownField}},
		{"every problem", map[string]any{"crop_type": 5, "x": 1}, map[string]string{"parameters.status": batch.DetailRequired, "parameters.crop_type": batch.DetailInvalidValue, "parameters.x": batch.DetailUnknownField}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tb.e.Submit(t.Context(), &batch.Batch{TemplateID: tpl.ID, Parameters: tt.params}, nil)
			fields := detailFields(t, err)
			for f, code := range tt.fields {
				require.Equal(t, code, fields[f], "%s in %v", f, err)
			}
		})
	}
	_, err = tb.e.Submit(t.Context(), &batch.Batch{TemplateID: "template999", Parameters: map[string]any{}}, nil)
	require.Contains(t, detailFields(t, err), "template_id")
	page, err := tb.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items)
}

func TestTemplate_RefusedOnSave(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	tests := []struct {
		name  string
		json  string
		field string
	}{
		{"bad expression", `{"name": "x", "operations": [{"type": "update", "resource": "fields", "template": {"a": "${status +}"}}], "parameters": [{"name": "status", "type": "string"}]}`, "operations[0].template.a"},
		{"unknown parameter name", `{"name": "x", "operations": [{"type": "update", "resource": "fields", "template": {"a": "${colour}"}}]}`, "operations[0].template.a"},
		{"reaches outside the sandbox", `{"name": "x", "operations": [{"type": "update", "resource": "fields", "template": {"a": "${env}"}}]}`, "operations[0].template.a"},
		{"unterminated placeholder", `{"name": "x", "operations": [{"type": "update", "resource": "fields", "template": {"a": "${status"}}], "parameters": [{"name": "status", "type": "string"}]}`, "operations[0].template.a"},
		{"unknown operation", `{"name": "x", "operations": [{"type": "process"}]}`, "operations[0].type"},
		{"unknown resource", `{"name": "x", "operations": [{"type": "update", "resource": "farms"}]}`, "operations[0].resource"},
		{"no name", `{"operations": [{"type": "update", "resource": "fields"}]}`, "name"},
		{"bad parameter type", `{"name": "x", "parameters": [{"name": "a", "type": "float"}], "operations": [{"type": "update", "resource": "fields"}]}`, "parameters[0].type"},
		{"default outside enum", `{"name": "x", "parameters": [{"name": "a", "type": "string", "enum": ["b"], "default": "c"}], "operations": [{"type": "update", "resource": "fields"}]}`, "parameters[0].default"},
		{"duplicate parameter", `{"name": "x", "parameters": [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}], "operations": [{"type": "update", "resource": "fields"}]}`, "parameters[1].name"},
		{"unknown field", `{"name": "x", "operations": [], "colour": 1}`, "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := batch.DecodeTemplate([]byte(tt.json))
			if err == nil {
				_, err = tb.e.CreateTemplate(t.Context(), tpl)
			}
			require.Contains(t, detailFields(t, err), tt.field, "%v", err)
		})
	}
	page, err := tb.e.Templates(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "nothing stored for a refused template")
}

func TestTemplate_Rendering(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 19, 0, 52, 3, 0, time.UTC)
	tb := setup(t, "memory", &batch.Options{Now: func() time.Time { return now }})
	tpl, err := batch.DecodeTemplate([]byte(`{
		"name": "tagging",
		"parameters": [
			{"name": "days", "type": "integer", "default": 30},
			{"name": "tags", "type": "array"},
			{"name": "crop", "type": "string", "required": true},
			{"name": "since", "type": "date"}
		],
		"operations": [{"type": "create", "resource": "fields", "template": {
			"id": "f-${lower(crop)}",
			"days": "${days}",
			"tags": "${tags}",
			"note": "older than ${days} days, ${upper(crop)}",
			"cutoff": "${days_ago(days)}",
			"since": "${since}",
			"made": "${today()}",
			"doubled": "${days * 2}"
		}}]
	}`))
	require.NoError(t, err)
	tpl, err = tb.e.CreateTemplate(t.Context(), tpl)
	require.NoError(t, err)
	job, err := tb.e.Submit(t.Context(), &batch.Batch{TemplateID: tpl.ID, Parameters: map[string]any{"crop": "Rice", "tags": []any{"a", "b"}}}, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, tb.wait(t, job.ID).Status)
	rec, err := tb.fields.Get(t.Context(), "f-rice")
	require.NoError(t, err)
	require.Equal(t, batch.Record{
		"id":      "f-rice",
		"days":    30.0,
		"tags":    []any{"a", "b"},
		"note":    "older than 30 days, RICE",
		"cutoff":  "2024-12-20",
		"made":    "2025-01-19",
		"doubled": 60.0,
	}, rec, "typed values stay typed, text interpolates, a missing optional parameter drops its key")
}

func TestTemplate_UpdateListDelete(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	alice := batch.WithPrincipal(t.Context(), "alice")
	bob := batch.WithPrincipal(t.Context(), "bob")
	a, err := tb.e.CreateTemplate(alice, docTemplate(t))
	require.NoError(t, err)
	_, err = tb.e.CreateTemplate(bob, docTemplate(t))
	require.NoError(t, err)

	page, err := tb.e.Templates(t.Context(), &batch.ListOptions{Owner: "alice"})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	require.Equal(t, a.ID, page.Items[0].ID)

	changed := docTemplate(t)
	changed.Description = "changed"
	up, err := tb.e.UpdateTemplate(alice, a.ID, changed)
	require.NoError(t, err)
	require.Equal(t, "changed", up.Description)
	require.Equal(t, a.CreatedAt, up.CreatedAt)
	bad := docTemplate(t)
	bad.Operations[0].Template = map[string]any{"x": "${nope}"}
	_, err = tb.e.UpdateTemplate(alice, a.ID, bad)
	require.ErrorIs(t, err, batch.ErrInvalidBatch)
	got, err := tb.e.Template(t.Context(), a.ID)
	require.NoError(t, err)
	require.Equal(t, "changed", got.Description, "a refused update changes nothing")

	_, err = tb.e.Submit(bob, &batch.Batch{TemplateID: a.ID, Parameters: map[string]any{"status": "active"}}, nil)
	require.ErrorIs(t, err, batch.ErrInvalidBatch, "another principal's template cannot be used")

	require.NoError(t, tb.e.DeleteTemplate(alice, a.ID))
	_, err = tb.e.Template(t.Context(), a.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)
	require.ErrorIs(t, tb.e.DeleteTemplate(alice, a.ID), batch.ErrNotFound)
}

// FuzzTemplate feeds template bodies and parameters through decoding,
// saving and instantiation: no panic; every refusal is an INVALID_BATCH
// *Error with details.
func FuzzTemplate(f *testing.F) {
	f.Add(apidoc.Template(), `{"status": "active", "crop_type": "rice"}`)
	f.Add(`{"name": "t", "parameters": [{"name": "d", "type": "integer", "default": 3}], "operations": [{"type": "create", "resource": "fields", "template": {"id": "x${d}", "n": "${d * 2}", "s": "${'}'}"}}]}`, `{}`)
	f.Add(`{"name": "t", "operations": [{"type": "update", "resource": "fields", "template": {"a": "${"}}]}`, `{"a": 1}`)
	f.Add(`{"name": "t", "parameters": [{"name": "day", "type": "date"}], "operations": [{"type": "delete", "resource": "fields", "where": "true", "template": {"filter": {"d": "${add_days(day, -1)}"}}}]}`, `{"day": "2025-01-19"}`)
	e, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, tplJSON, paramsJSON string) {
		tpl, err := batch.DecodeTemplate([]byte(tplJSON))
		if err != nil {
			detailFields(t, err)
			return
		}
		saved, err := e.CreateTemplate(t.Context(), tpl)
		if err != nil {
			detailFields(t, err)
			return
		}
		var params map[string]any
		if json.Unmarshal([]byte(paramsJSON), &params) != nil {
			return
		}
		if err := e.Validate(t.Context(), &batch.Batch{TemplateID: saved.ID, Parameters: params}); err != nil {
			detailFields(t, err)
		}
	})
}

package batch_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// detailFields returns the fields of an INVALID_BATCH error's details.
func detailFields(t *testing.T, err error) map[string]string {
	t.Helper()
	var e *batch.Error
	require.True(t, errors.As(err, &e), "want *batch.Error, got %T: %v", err, err)
	require.Equal(t, batch.CodeInvalidBatch, e.Code)
	out := map[string]string{}
	for _, d := range e.Details {
		require.NotEmpty(t, d.Message, "every detail says what is wrong")
		out[d.Field] = d.Code
	}
	return out
}

func TestDecodeBatch_Rejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		field string
		code  string
	}{
		{"not an object", `[1,2]`, "", batch.DetailInvalidValue},
		{"empty body", ``, "", batch.DetailInvalidValue},
		{"malformed JSON", `{"operations": [`, "", batch.DetailInvalidValue},
		{"trailing data", `{} {}`, "", batch.DetailInvalidValue},
		{"unknown top-level field", `{"operationz": []}`, "operationz", batch.DetailInvalidValue},
		{"unknown operation field", `{"operations": [{"type": "update", "filtre": {}}]}`, "operations[0].filtre", batch.DetailInvalidValue},
		{"operation not an object", `{"operations": [{"type": "update"}, 7]}`, "operations[1]", batch.DetailInvalidValue},
		{"non-object record", `{"operations": [{"type": "create", "records": [{}, "x"]}]}`, "operations[0].records[1]", batch.DetailInvalidValue},
		{"wrong option type", `{"operations": [], "options": {"max_concurrent": "five"}}`, "options.max_concurrent", batch.DetailInvalidValue},
		{"unknown option", `{"operations": [], "options": {"retry": {"tries": 3}}}`, "options.retry.tries", batch.DetailInvalidValue},
		{"filter not an object", `{"operations": [{"type": "update", "filter": "status=active"}]}`, "operations[0].filter", batch.DetailInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := batch.DecodeBatch([]byte(tt.body))
			fields := detailFields(t, err)
			require.Contains(t, fields, tt.field, "details: %v", err)
			require.Equal(t, tt.code, fields[tt.field])
		})
	}
}

func TestEngine_SubmitRejectsBadBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		batch  string
		fields map[string]string
	}{
		{"no operations", `{"operations": []}`, map[string]string{"operations": batch.DetailRequired}},
		{"unknown type", `{"operations": [{"type": "process"}]}`, map[string]string{"operations[0].type": batch.DetailInvalidOperation}},
		{"missing type", `{"operations": [{"resource": "fields"}]}`, map[string]string{"operations[0].type": batch.DetailRequired}},
		{"unknown resource", `{"operations": [{"type": "delete", "resource": "farms", "filter": {"a": 1}}]}`, map[string]string{"operations[0].resource": batch.DetailUnknownResource}},
		{"missing resource", `{"operations": [{"type": "update", "filter": {"a": 1}, "update": {"b": 2}}]}`, map[string]string{"operations[0].resource": batch.DetailRequired}},
		{"delete without filter", `{"operations": [{"type": "delete", "resource": "fields"}]}`, map[string]string{"operations[0].filter": batch.DetailRequired}},
		{"update without update", `{"operations": [{"type": "update", "resource": "fields", "filter": {"a": 1}}]}`, map[string]string{"operations[0].update": batch.DetailRequired}},
		{"update changes id", `{"operations": [{"type": "update", "resource": "fields", "filter": {"a": 1}, "update": {"id": "x"}}]}`, map[string]string{"operations[0].update.id": batch.DetailInvalidValue}},
		{"bad where", `{"operations": [{"type": "update", "resource": "fields", "where": "record.a >", "update": {"b": 1}}]}`, map[string]string{"operations[0].where": batch.DetailInvalidExpr}},
		{"where not boolean", `{"operations": [{"type": "delete", "resource": "fields", "where": "1 + 2"}]}`, map[string]string{"operations[0].where": batch.DetailInvalidExpr}},
		{"where does not parse", `{"operations": [{"type": "delete", "resource": "fields", "where": "status == "}]}`, map[string]string{"operations[0].where": batch.DetailInvalidExpr}},
		{"field of another type", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}, "records": [{}]}]}`, map[string]string{"operations[0].records": batch.DetailUnknownField}},
		{"empty create", `{"operations": [{"type": "create", "resource": "fields"}]}`, map[string]string{"operations[0].records": batch.DetailRequired}},
		{"bad record id", `{"operations": [{"type": "create", "resource": "fields", "records": [{"id": 5}]}]}`, map[string]string{"operations[0].records[0].id": batch.DetailInvalidValue}},
		{"duplicate record id", `{"operations": [{"type": "create", "resource": "fields", "records": [{"id": "a"}, {"id": "a"}]}]}`, map[string]string{"operations[0].records[1].id": batch.DetailInvalidValue}},
		{"import without source", `{"operations": [{"type": "import", "resource": "fields"}]}`, map[string]string{"operations[0].source": batch.DetailRequired}},
		{"import bad format", `{"operations": [{"type": "import", "resource": "fields", "source": {"format": "xml", "data": "<a/>"}}]}`, map[string]string{"operations[0].source.format": batch.DetailInvalidValue}},
		{"import non-object row", `{"operations": [{"type": "import", "resource": "fields", "source": {"format": "json", "data": [{"id": "a"}, 3]}}]}`, map[string]string{"operations[0].source.data[1]": batch.DetailInvalidValue}},
		{"export bad format", `{"operations": [{"type": "export", "resource": "fields", "destination": {"format": "pdf"}}]}`, map[string]string{"operations[0].destination.format": batch.DetailInvalidValue}},
		{"backup takes no resource", `{"operations": [{"type": "backup", "resource": "fields"}]}`, map[string]string{"operations[0].resource": batch.DetailUnknownField}},
		{"negative max_concurrent", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"max_concurrent": -1}}`, map[string]string{"options.max_concurrent": batch.DetailInvalidValue}},
		{"unknown backoff", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"retry": {"backoff": "fibonacci"}}}`, map[string]string{"options.retry.backoff": batch.DetailInvalidValue}},
		{"custom backoff not registered", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"retry": {"backoff": "custom", "function": "nope"}}}`, map[string]string{"options.retry.function": batch.DetailInvalidValue}},
		{"bad validation mode", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"validation": {"mode": "loose", "on_error": "ignore"}}}`, map[string]string{"options.validation.mode": batch.DetailInvalidValue, "options.validation.on_error": batch.DetailInvalidValue}},
		{"too many attempts", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"retry": {"attempts": 1000}}}`, map[string]string{"options.retry.attempts": batch.DetailInvalidValue}},
		{"failure rate out of range", `{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"max_failure_rate": 150}}`, map[string]string{"options.max_failure_rate": batch.DetailInvalidValue}},
		{"every problem reported", `{"operations": [{"type": "process"}, {"type": "delete", "resource": "fields"}], "options": {"max_concurrent": -3}}`, map[string]string{
			"operations[0].type": batch.DetailInvalidOperation, "operations[1].filter": batch.DetailRequired, "options.max_concurrent": batch.DetailInvalidValue,
		}},
	}
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 3)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := batch.DecodeBatch([]byte(tt.batch))
			require.NoError(t, err)
			_, err = tb.e.Submit(t.Context(), b, nil)
			fields := detailFields(t, err)
			for f, code := range tt.fields {
				require.Contains(t, fields, f, "details: %v", err)
				require.Equal(t, code, fields[f], f)
			}
		})
	}
	page, err := tb.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "a rejected batch stores nothing")
}

// FuzzDecodeBatch feeds request bodies through DecodeBatch and the engine's
// validation: no panic; a rejection is an INVALID_BATCH *Error with
// details; an accepted batch survives a JSON round trip.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(docBatchJSON))
	f.Add([]byte(`{"operations": [{"type": "create", "resource": "fields", "records": [{"id": "a"}, {"b": 1}]}]}`))
	f.Add([]byte(`{"operations": [{"type": "import", "resource": "fields", "source": {"format": "csv", "data": "id,a\nx,1\n"}}]}`))
	f.Add([]byte(`{"operations": [{"type": "export", "resource": "fields", "where": "record.a > 1", "destination": {"format": "csv"}}]}`))
	f.Add([]byte(`{"operations": [{"type": "delete", "resource": "fields", "filter": {"a": [1, {"b": null}]}}], "options": {"retry": {"attempts": 3, "backoff": "linear", "delay": "1s"}}}`))
	f.Add([]byte(`{"operations": [{"type": "process"}], "options": {"max_concurrent": -1, "item_timeout": "x"}}`))
	e, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close(f.Context()) })
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := batch.DecodeBatch(body)
		if err != nil {
			detailFields(t, err)
			return
		}
		if err := e.Validate(t.Context(), b); err != nil {
			detailFields(t, err)
			return
		}
		out, err := json.Marshal(b)
		require.NoError(t, err)
		again, err := batch.DecodeBatch(out)
		require.NoError(t, err, "an accepted batch decodes again: %s", out)
		require.NoError(t, e.Validate(t.Context(), again))
	})
}

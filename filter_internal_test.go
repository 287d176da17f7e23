package batch

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCompileQuery(t *testing.T) {
	t.Parallel()
	rec := Record{"id": "f1", "status": "active", "area": 12.0, "tags": []any{"a"}}
	for _, tt := range []struct {
		name     string
		spec     OperationSpec
		required bool
		detail   Detail // the one detail wanted; zero for none
		match    bool
	}{
		{name: "filter matches a JSON number given as int", spec: OperationSpec{Filter: map[string]any{"area": 12}}, match: true},
		{name: "filter on a missing field", spec: OperationSpec{Filter: map[string]any{"crop": nil}}, match: false},
		{name: "filter and where both hold", spec: OperationSpec{Filter: map[string]any{"status": "active"}, Where: "area > 10"}, match: true},
		{name: "where fails", spec: OperationSpec{Filter: map[string]any{"status": "active"}, Where: "area > 20"}, match: false},
		{name: "where through record[]", spec: OperationSpec{Where: `record["status"] == "active" && "a" in tags`}, match: true},
		{name: "undefined field is nil, not an error", spec: OperationSpec{Where: "crop == nil"}, match: true},
		{name: "everything", spec: OperationSpec{Where: "true"}, required: true, match: true},
		{name: "required without filter or where", spec: OperationSpec{Type: "update"}, required: true,
			detail: Detail{Field: "filter", Code: DetailRequired}, match: true},
		{name: "optional without filter or where", spec: OperationSpec{Type: "export"}, match: true},
		{name: "bad where", spec: OperationSpec{Where: "area >"}, detail: Detail{Field: "where", Code: DetailInvalidExpr}},
		{name: "where not a condition", spec: OperationSpec{Where: "'active'"}, detail: Detail{Field: "where", Code: DetailInvalidExpr}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d details
			q := compileQuery(&tt.spec, tt.required, &d)
			if tt.detail.Field == "" {
				require.Empty(t, d.list)
			} else {
				require.Len(t, d.list, 1)
				require.Equal(t, tt.detail.Field, d.list[0].Field)
				require.Equal(t, tt.detail.Code, d.list[0].Code)
				require.NotEmpty(t, d.list[0].Message)
				return
			}
			ok, err := q.match(context.Background(), rec)
			require.NoError(t, err)
			require.Equal(t, tt.match, ok)
		})
	}
}

// A record expression sees the record's fields by name and as record;
// its evaluation is bounded in time.
func TestRecordExpr(t *testing.T) {
	t.Parallel()
	prog, err := compileRecordExpr(`area * 2 + record["area"]`, false)
	require.NoError(t, err)
	out, err := evalRecordExpr(context.Background(), prog, Record{"area": 3.0})
	require.NoError(t, err)
	require.Equal(t, 9.0, out)

	p := &predicate{prog: mustCompileRecordExpr(t, "status == 'active'")}
	for rec, want := range map[string]bool{"active": true, "inactive": false} {
		ok, err := p.eval(context.Background(), Record{"status": rec})
		require.NoError(t, err)
		require.Equal(t, want, ok)
	}

	loop := mustCompileRecordExpr(t, "len(filter(1..1000, # > 0)) == 1000")
	out, err = evalRecordExpr(context.Background(), loop, Record{})
	require.NoError(t, err)
	require.Equal(t, true, out)
	_, err = evalRecordExprWithin(context.Background(), loop, Record{}, -time.Second)
	require.ErrorIs(t, err, ErrExpressionLimit)
	require.ErrorContains(t, err, "out of time")
}

func mustCompileRecordExpr(t *testing.T, src string) *exprProgram {
	t.Helper()
	prog, err := compileRecordExpr(src, true)
	require.NoError(t, err)
	return prog
}

package batch

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// whereEqualities finds the equalities on record fields that every match
// must satisfy; anything it cannot prove is left out.
func TestWhereEqualities(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		src  string
		want map[string]any
	}{
		{`record["status"] == "active"`, map[string]any{"status": "active"}},
		{`"active" == record["status"]`, map[string]any{"status": "active"}},
		{`record.status == "active"`, map[string]any{"status": "active"}},
		{`record["area"] == 12`, map[string]any{"area": 12.0}},
		{`record["area"] == 1.5 and record["on"] == true`, map[string]any{"area": 1.5, "on": true}},
		{`record["a"] == "x" && (record["b"] == "y" && record["c"] == false)`, map[string]any{"a": "x", "b": "y", "c": false}},
		{`record["a"] == "x" || record["b"] == "y"`, map[string]any{}},
		{`record["a"] == "x" && (record["b"] == "y" || true)`, map[string]any{"a": "x"}},
		{`record["a"] == "x" && record["a"] == "x"`, map[string]any{"a": "x"}},
		// A contradiction keeps the first; the where itself then rejects
		// every record the index finds.
		{`record["a"] == "x" && record["a"] == "y"`, map[string]any{"a": "x"}},
		{`!(record["a"] == "x")`, map[string]any{}},
		{`record["a"] != "x"`, map[string]any{}},
		{`record?.a == "x"`, map[string]any{}},
		{`status == "active"`, map[string]any{}},
		{`other["a"] == "x"`, map[string]any{}},
		{`record["a"] == record["b"]`, map[string]any{}},
		{`record["a"] == nil`, map[string]any{}},
		{`record["a"] == [1]`, map[string]any{}},
		{`record[key] == "x"`, map[string]any{}},
		{`true`, map[string]any{}},
		{`record["a"] ==`, nil},
	} {
		require.Equal(t, tt.want, whereEqualities(tt.src), tt.src)
	}
}

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStrictJSON is observation 7: an over-long record id, a number out of
// float64 range and a duplicate key each get 400 INVALID_BATCH with a
// message that names the real problem and the JSON path where it is, and
// nothing is stored.
func TestStrictJSON(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	longID := strings.Repeat("i", 33<<10)
	for _, tc := range []struct {
		name, body, field, says string
	}{
		{"long id", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "` + longID + `"}]}]}}`,
			"operations[0].records[0].id", "at most 1024 bytes"},
		{"huge number", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "x", "n": 1e400}]}]}}`,
			"operations[0].records[0].n", "out of range"},
		{"duplicate key", `{"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active", "status": "inactive"}, "update": {"x": 1}}]}}`,
			"operations[0].filter.status", `duplicate key "status"`},
		{"duplicate escaped key", `{"batch": {"operations": [{"type": "update", "resource": "fields", "where": "true", "where": "false", "update": {"x": 1}}]}}`,
			"operations[0].where", "duplicate key"},
		{"duplicate wrapper", `{"batch": {"operations": []}, "batch": {"operations": []}}`, "batch", "duplicate key"},
		{"too deep", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "x", "v": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}]}}`,
			"", "nest deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tb.must(t, http.StatusBadRequest, "POST", "/jobs", tc.body)
			require.Equal(t, "INVALID_BATCH", res.err["code"])
			details := fmt.Sprint(res.err["details"])
			require.Contains(t, details, tc.says)
			if tc.field != "" {
				require.Contains(t, details, "field:"+tc.field+" ")
			}
		})
	}
	tpl := tb.do(t, "POST", "/templates", `{"template": {"name": "a", "name": "b", "operations": [{"type": "update", "resource": "fields", "where": "true", "update": {"x": 1}}]}}`)
	require.Equal(t, http.StatusBadRequest, tpl.status)
	require.Contains(t, fmt.Sprint(tpl.err["details"]), "duplicate key")
	list := tb.do(t, "GET", "/jobs", "")
	require.Empty(t, list.data["jobs"], "nothing was stored")
}

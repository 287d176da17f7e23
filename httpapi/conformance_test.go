package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConformance_DocumentShapes checks the shapes a client of the API
// document relies on: a job always lists errors, a template parameter
// always says whether it is required, and every 400 for a batch says
// "Invalid batch job configuration".
func TestConformance_DocumentShapes(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)

	res := tb.do(t, "POST", "/jobs?wait=10s", docRequest)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	require.Equal(t, "completed", res.data["status"])
	require.Contains(t, res.data, "errors", "a job without failures has an empty errors list")
	require.Equal(t, []any{}, res.data["errors"])
	got := tb.do(t, "GET", "/jobs/"+res.data["job_id"].(string), "")
	require.Equal(t, []any{}, got.data["errors"])
	list := tb.do(t, "GET", "/jobs", "")
	require.Equal(t, []any{}, list.data["jobs"].([]any)[0].(map[string]any)["errors"])

	require.Equal(t, http.StatusCreated, tb.do(t, "POST", "/templates", docTemplateRequest).status)
	tpls := tb.do(t, "GET", "/templates", "")
	var params []map[string]any
	b, _ := json.Marshal(tpls.data["templates"].([]any)[0].(map[string]any)["parameters"])
	require.NoError(t, json.Unmarshal(b, &params))
	require.Equal(t, false, params[1]["required"], "required: false is written, as the document does")

	for _, body := range []string{
		`{"batch": {"operations": [{"type": "update"}]}, "extra": 1}`,
		`{"nobatch": {}}`,
		`{}`,
		`[1]`,
		`{"batch": {"operations": [{"type": "process"}]}}`,
	} {
		bad := tb.do(t, "POST", "/jobs", body)
		require.Equal(t, http.StatusBadRequest, bad.status, body)
		require.Equal(t, "INVALID_BATCH", bad.err["code"], body)
		require.Equal(t, "Invalid batch job configuration", bad.err["message"], body)
	}
}

package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/httpapi"
)

func TestTemplates(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys("a", "b")}, nil)
	alice := []string{"Authorization", "Bearer a"}
	bob := []string{"Authorization", "Bearer b"}

	res := tb.do(t, "POST", "/templates", docTemplateRequest, alice...)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	require.Equal(t, "100", res.header.Get("X-RateLimit-Limit"), "template management: 100 per hour")
	id := res.data["id"].(string)
	require.Equal(t, "bulk_field_update", res.data["name"])
	require.Len(t, res.data["parameters"], 2)
	ops := res.data["operations"].([]any)
	require.Equal(t, map[string]any{"status": "${status}", "crop_type": "${crop_type}"}, ops[0].(map[string]any)["template"])

	list := tb.do(t, "GET", "/templates", "", alice...)
	require.Equal(t, http.StatusOK, list.status)
	require.Len(t, list.data["templates"], 1)
	require.Empty(t, tb.do(t, "GET", "/templates", "", bob...).data["templates"])
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/templates/"+id, "", bob...).status)
	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/templates/"+id, "", alice...).status)

	// A job from the template, as the document's schedule example submits it.
	job := tb.do(t, "POST", "/jobs?wait=10s", `{"batch": {"template_id": "`+id+`", "parameters": {"status": "active", "crop_type": "rice"}}}`, alice...)
	require.Equal(t, http.StatusCreated, job.status, string(job.body))
	require.Equal(t, "completed", job.data["status"])
	require.Equal(t, id, job.data["template_id"])
	require.Equal(t, 200.0, job.data["progress"].(map[string]any)["completed"])
	bad := tb.do(t, "POST", "/jobs", `{"batch": {"template_id": "`+id+`", "parameters": {"status": "archived"}}}`, alice...)
	require.Equal(t, http.StatusBadRequest, bad.status)
	require.Equal(t, "parameters.status", bad.err["details"].([]any)[0].(map[string]any)["field"])
	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/jobs", `{"batch": {"template_id": "`+id+`", "parameters": {"status": "active"}}}`, bob...).status)

	refused := tb.do(t, "PUT", "/templates/"+id, `{"template": {"name": "x", "operations": [{"type": "update", "resource": "fields", "template": {"a": "${nope}"}}]}}`, alice...)
	require.Equal(t, http.StatusBadRequest, refused.status)
	require.Equal(t, "INVALID_BATCH", refused.err["code"])
	up := tb.do(t, "PUT", "/templates/"+id, `{"template": {"name": "renamed", "operations": [{"type": "update", "resource": "fields", "where": "true", "update": {"x": 1}}]}}`, alice...)
	require.Equal(t, http.StatusOK, up.status, string(up.body))
	require.Equal(t, "renamed", up.data["name"])
	require.Equal(t, http.StatusBadRequest, tb.do(t, "POST", "/templates", `{"template": {"name": "x"}, "extra": 1}`, alice...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "DELETE", "/templates/"+id, "", bob...).status)
	require.Equal(t, http.StatusNoContent, tb.do(t, "DELETE", "/templates/"+id, "", alice...).status)
	require.Equal(t, http.StatusNotFound, tb.do(t, "GET", "/templates/"+id, "", alice...).status)
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

func TestCreateJob_BadRequests(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, MaxBodyBytes: 4096}, nil)
	tests := []struct {
		name        string
		body        string
		contentType string
		status      int
		code        string
		field       string
	}{
		{name: "malformed JSON", body: `{"batch": {`, status: 400, code: "INVALID_BATCH"},
		{name: "not an object", body: `[]`, status: 400, code: "INVALID_BATCH"},
		{name: "unknown top-level field", body: `{"batch": {"operations": []}, "extra": 1}`, status: 400, code: "INVALID_BATCH", field: "extra"},
		{name: "missing batch", body: `{}`, status: 400, code: "INVALID_BATCH", field: "batch"},
		{name: "unknown batch field", body: `{"batch": {"operationz": []}}`, status: 400, code: "INVALID_BATCH", field: "operationz"},
		{name: "unknown operation type", body: `{"batch": {"operations": [{"type": "process"}]}}`, status: 400, code: "INVALID_BATCH", field: "operations[0].type"},
		{name: "invalid value", body: `{"batch": {"operations": [{"type": "delete", "resource": "fields", "filter": {"a": 1}}], "options": {"max_concurrent": -1}}}`, status: 400, code: "INVALID_BATCH", field: "options.max_concurrent"},
		{name: "wrong type", body: `{"batch": {"operations": [{"type": 7}]}}`, status: 400, code: "INVALID_BATCH", field: "operations[0].type"},
		{name: "not JSON content", body: `{"batch": {}}`, contentType: "text/plain", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "no content type", body: `{"batch": {}}`, contentType: "-", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "too large", body: `{"batch": {"description": "` + strings.Repeat("x", 5000) + `"}}`, status: 413, code: "PAYLOAD_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest("POST", tb.srv.URL+httpapi.Prefix+"/jobs", strings.NewReader(tt.body))
			require.NoError(t, err)
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, tt.status, res.StatusCode)
			var body struct {
				Error struct {
					Code    string         `json:"code"`
					Message string         `json:"message"`
					Details []batch.Detail `json:"details"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
			require.Equal(t, tt.code, body.Error.Code)
			require.NotEmpty(t, body.Error.Message)
			if tt.field != "" {
				var fields []string
				for _, d := range body.Error.Details {
					fields = append(fields, d.Field)
				}
				require.Contains(t, fields, tt.field)
			}
		})
	}
	page, err := tb.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "nothing is stored for a rejected request")
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	first := tb.must(t, http.StatusCreated, "POST", "/jobs", docRequest, "Idempotency-Key", "abc-123")
	again := tb.must(t, http.StatusOK, "POST", "/jobs", docRequest, "Idempotency-Key", "abc-123")
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.data["job_id"], again.data["job_id"])
	other := tb.must(t, http.StatusCreated, "POST", "/jobs", docRequest, "Idempotency-Key", "abc-124")
	require.NotEqual(t, first.data["job_id"], other.data["job_id"])
	for _, bad := range []string{strings.Repeat("k", 300), "caf\u00e9", "tab\there"} {
		res := tb.must(t, http.StatusBadRequest, "POST", "/jobs", docRequest, "Idempotency-Key", bad)
		require.Equal(t, "Idempotency-Key", res.err["details"].([]any)[0].(map[string]any)["field"])
	}
}

// TestRequests_Edges: a body is one JSON object wrapping a non-null
// object; a page holds 1 to 1000; dry_run is a boolean.
func TestRequests_Edges(t *testing.T) {
	t.Parallel()
	tb := setup(t, nil, nil)
	for _, c := range []struct{ name, method, path, body, field string }{
		{"null batch", "POST", "/jobs", `{"batch": null}`, "batch"},
		{"two objects", "POST", "/jobs", docRequest + ` {"batch": {}}`, ""},
		{"limit too large", "GET", "/jobs?limit=1001", "", "limit"},
		{"limit not a number", "GET", "/jobs?limit=ten", "", "limit"},
		{"dry_run not a boolean", "POST", "/jobs?dry_run=perhaps", docRequest, "dry_run"},
	} {
		res := tb.must(t, http.StatusBadRequest, c.method, c.path, c.body)
		require.Equal(t, "INVALID_BATCH", res.err["code"], c.name)
		if c.field != "" {
			require.Equal(t, c.field, res.err["details"].([]any)[0].(map[string]any)["field"], c.name)
		}
	}
	require.Empty(t, tb.must(t, http.StatusOK, "GET", "/jobs?limit=1000", "").data["jobs"])
}

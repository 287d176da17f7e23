package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/batchworks/batch/httpapi"
)

// FuzzHandler feeds mutated request bodies and paths to the handler: no
// answer is a 5xx, nothing panics, and every answer matches the OpenAPI
// document.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "/jobs", docRequest)
	f.Add("POST", "/jobs", `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "a"}, 1]}]}}`)
	f.Add("POST", "/jobs", `{"batch": {"operations": [{"type": "import", "resource": "fields", "source": {"format": "csv", "data": "id\nx\n"}}]}}`)
	f.Add("POST", "/jobs", `{"batch": {"template_id": "template1", "parameters": {"status": "active"}}}`)
	f.Add("POST", "/jobs", `{"batch": null}`)
	f.Add("GET", "/jobs?state=running&limit=2&cursor=batch9", "")
	f.Add("GET", "/jobs/batch1/errors?cursor=x", "")
	f.Add("POST", "/jobs/batch1/pause", "")
	f.Add("DELETE", "/jobs/%2e%2e", "")
	h := httpapi.New(newEngine(f, nil), &httpapi.Options{DisableRateLimits: true, MaxBodyBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || strings.Contains(path, "wait=") {
			return
		}
		switch method {
		case "GET", "POST", "PUT", "DELETE", "PATCH":
		default:
			return
		}
		if _, err := url.ParseRequestURI(httpapi.Prefix + path); err != nil {
			return // not a request a client can send
		}
		req := httptest.NewRequestWithContext(t.Context(), method, "http://api.test"+httpapi.Prefix+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		checkOpenAPI(t, h).ServeHTTP(rec, req) // every answer as the OpenAPI document says
		if rec.Code >= http.StatusInternalServerError && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body.String())
		}
	})
}

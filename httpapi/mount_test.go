package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// mountBases are the paths at which mountEverywhere serves the API.
var mountBases = []string{"/internal" + httpapi.Prefix, "/admin/batch", "/tenants/acme/batch", "/svc/v2/batch", httpapi.Prefix}

// mountEverywhere serves the API over e at each of mountBases: behind
// http.StripPrefix, at a ServeMux subtree, at one with a wildcard, at a
// BasePath behind StripPrefix, and at its own Prefix.
func mountEverywhere(t *testing.T, e *batch.Engine, opts *httpapi.Options) *httptest.Server {
	at := *opts
	at.BasePath = "/v2/batch"
	mux := http.NewServeMux()
	mux.Handle("/internal/", http.StripPrefix("/internal", httpapi.New(e, opts)))
	mux.Handle("/admin/batch/", httpapi.New(e, opts))
	mux.Handle("/tenants/{tenant}/batch/", httpapi.New(e, opts))
	mux.Handle("/svc/", http.StripPrefix("/svc", httpapi.New(e, &at)))
	mux.Handle(httpapi.Prefix+"/", httpapi.New(e, opts))
	return serve(t, mux)
}

// TestMount: the API works wherever it is mounted, and the URLs it writes
// (Location, artifact downloads) work from where the client stands.
func TestMount(t *testing.T) {
	t.Parallel()
	e := newEngine(t, nil)
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	require.NoError(t, fields.PutMany(t.Context(), []batch.Record{{"id": "f1"}, {"id": "f2"}}))
	srv := mountEverywhere(t, e, &httpapi.Options{DisableRateLimits: true})

	for _, base := range mountBases {
		res, err := http.Post(srv.URL+base+"/jobs?wait=10s", "application/json",
			strings.NewReader(`{"batch": {"operations": [{"type": "export", "resource": "fields", "where": "true"}]}}`))
		require.NoError(t, err)
		var body struct {
			Data struct {
				JobID   string `json:"job_id"`
				Results []struct {
					Artifact struct {
						URL string `json:"url"`
					} `json:"artifact"`
				} `json:"results"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		res.Body.Close()
		require.Equal(t, http.StatusCreated, res.StatusCode, base)
		require.Equal(t, base+"/jobs/"+body.Data.JobID, res.Header.Get("Location"), base)

		got, err := http.Get(srv.URL + res.Header.Get("Location"))
		require.NoError(t, err)
		got.Body.Close()
		require.Equal(t, http.StatusOK, got.StatusCode, base)
		stream, err := http.Get(srv.URL + res.Header.Get("Location") + "/stream")
		require.NoError(t, err)
		events, _ := io.ReadAll(stream.Body)
		stream.Body.Close()
		require.Contains(t, string(events), "event: end", "the progress stream follows the mount too: %s", base)
		require.Contains(t, string(events), base+"/jobs/"+body.Data.JobID+"/artifacts/", "and its URLs")

		url := body.Data.Results[0].Artifact.URL
		require.True(t, strings.HasPrefix(url, base+"/jobs/"), "%s: %s", base, url)
		dl, err := http.Get(srv.URL + url)
		require.NoError(t, err)
		var recs []map[string]any
		require.NoError(t, json.NewDecoder(dl.Body).Decode(&recs), base)
		dl.Body.Close()
		require.Len(t, recs, 2, base)
	}
}

// TestMount_OutsideBasePath: with a BasePath, other paths are JSON 404s
// that name the path asked for.
func TestMount_OutsideBasePath(t *testing.T) {
	t.Parallel()
	srv := serve(t, httpapi.New(newEngine(t, nil), &httpapi.Options{BasePath: "/svc/", DisableRateLimits: true}))
	for path, want := range map[string]int{"/svc/jobs": http.StatusOK, "/jobs": http.StatusNotFound, "/svcjobs": http.StatusNotFound} {
		res, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		var body map[string]map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		res.Body.Close()
		require.Equal(t, want, res.StatusCode, path)
		if want == http.StatusNotFound {
			require.Equal(t, "no such endpoint: "+path, body["error"]["message"])
		}
	}
}

// TestMount_OpenAPIServers: the served OpenAPI document names, in its
// servers entry, the mount it is served at, wherever that is.
func TestMount_OpenAPIServers(t *testing.T) {
	t.Parallel()
	e := newEngine(t, nil)
	srv := mountEverywhere(t, e, &httpapi.Options{DisableRateLimits: true, Authenticator: httpapi.APIKeys("k")})
	root := serve(t, httpapi.New(e, &httpapi.Options{DisableRateLimits: true, BasePath: "/"}))
	mounts := map[string]string{root.URL: "/"}
	for _, base := range mountBases {
		mounts[srv.URL+base] = base
	}
	for url, want := range mounts {
		res, err := http.Get(url + "/openapi.json")
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&doc), url)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, url)
		require.Equal(t, []any{map[string]any{"url": want, "description": "Where the API is mounted (relative to this document's server)."}}, doc["servers"], url)
		delete(doc, "servers")
		var embedded map[string]any
		require.NoError(t, json.Unmarshal(httpapi.OpenAPI(), &embedded))
		delete(embedded, "servers")
		require.Equal(t, embedded, doc, "only the servers entry differs: %s", url)

		// The dashboard's redirect stays under the mount too.
		res, err = noRedirect.Get(url + "/ui")
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusMovedPermanently, res.StatusCode, url)
		require.Equal(t, strings.TrimSuffix(want, "/")+"/ui/", res.Header.Get("Location"), url)
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// TestMount: the API works wherever it is mounted, and the URLs it writes
// (Location, artifact downloads) work from where the client stands.
func TestMount(t *testing.T) {
	t.Parallel()
	e, err := batch.Open(t.TempDir()+"/mount.db", nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Close(ctx))
	})
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	require.NoError(t, fields.PutMany(t.Context(), []batch.Record{{"id": "f1"}, {"id": "f2"}}))
	opts := &httpapi.Options{DisableRateLimits: true}

	mux := http.NewServeMux()
	mux.Handle("/internal/", http.StripPrefix("/internal", httpapi.New(e, opts)))
	mux.Handle("/admin/batch/", httpapi.New(e, opts))
	mux.Handle("/tenants/{tenant}/batch/", httpapi.New(e, opts))
	mux.Handle("/svc/", http.StripPrefix("/svc", httpapi.New(e, &httpapi.Options{DisableRateLimits: true, BasePath: "/v2/batch"})))
	mux.Handle(httpapi.Prefix+"/", httpapi.New(e, opts))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, base := range []string{"/internal" + httpapi.Prefix, "/admin/batch", "/tenants/acme/batch", "/svc/v2/batch", httpapi.Prefix} {
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
	e, err := batch.New(batch.NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(t.Context())
	srv := httptest.NewServer(httpapi.New(e, &httpapi.Options{BasePath: "/svc/", DisableRateLimits: true}))
	defer srv.Close()
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

package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestNewClient(t *testing.T) {
	// --server as given, and the URL of a job with a query.
	for server, want := range map[string]string{
		"http://127.0.0.1:8080":                   "http://127.0.0.1:8080/api/v1/batch/jobs/batch7?state=running",
		"127.0.0.1:8080":                          "http://127.0.0.1:8080/api/v1/batch/jobs/batch7?state=running",
		"https://batch.example.com/api/v1/batch/": "https://batch.example.com/api/v1/batch/jobs/batch7?state=running",
		"http://host/admin/?x=1#top":              "http://host/admin/api/v1/batch/jobs/batch7?state=running",
	} {
		c, err := newClient(server, "", time.Second)
		require.NoError(t, err, server)
		require.Equal(t, want, c.url(jobPath("batch7", ""), url.Values{"state": {"running"}}), server)
	}
	// An id with reserved characters is escaped once, not twice.
	c, err := newClient("http://host/my%20api", "", time.Second)
	require.NoError(t, err)
	require.Equal(t, "http://host/my%20api/api/v1/batch/templates/a%2Fb%20c%25", c.url(templateKind.path("a/b c%"), nil))
	for _, bad := range []string{"", "ftp://host", "http://"} {
		_, err := newClient(bad, "", time.Second)
		require.Equal(t, exitInvalid, exitCode(err), "%q: %v", bad, err)
	}
}

// TestClient_MountedServer: a server whose API is mounted under a path is
// reached by naming that path.
func TestClient_MountedServer(t *testing.T) {
	tb, id := setupWithJob(t)
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", tb.srv.Config.Handler))
	mounted := httptest.NewServer(mux)
	t.Cleanup(mounted.Close)
	r := runCLI(t, runOptions{}, map[string]string{envServer: mounted.URL + "/admin", envAPIKey: testKey}, "status", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, id, decode[batch.Job](t, r.stdout).ID)
}

// TestClient_Requests checks what the client sends: the key as a Bearer
// token, JSON in and out, and its name.
func TestClient_Requests(t *testing.T) {
	var got http.Header
	tb := setup(t, &serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				got = r.Header.Clone()
			}
			next.ServeHTTP(w, r)
		})
	}})
	submitJob(t, tb, docRequest)
	require.Equal(t, "Bearer "+testKey, got.Get("Authorization"))
	require.Equal(t, "application/json", got.Get("Content-Type"))
	require.Equal(t, "application/json", got.Get("Accept"))
	require.Equal(t, "batchctl", got.Get("User-Agent"))
}

// TestClient_AnswersThatAreNotTheAPIs: a proxy's error page still gives
// its status and an excerpt, and a success body that is not {"data": ...}
// is an error, not an empty result.
func TestClient_AnswersThatAreNotTheAPIs(t *testing.T) {
	tb := setup(t, &serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/jobs/proxied"):
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = w.Write([]byte("<html><body>upstream down</body></html>"))
			case strings.HasSuffix(r.URL.Path, "/jobs/odd"):
				_, _ = w.Write([]byte(`{"job": {}}`))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}})
	r := tb.cli(t, "status", "proxied")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "Error: Bad Gateway: <html><body>upstream down</body></html> (HTTP 502)")
	r = tb.cli(t, "status", "odd")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, `the server answered 200 with a body that is not {"data": ...}: {"job": {}}`)
	require.Empty(t, r.stdout)
}

// TestClient_Timeout: --timeout bounds each request.
func TestClient_Timeout(t *testing.T) {
	release := make(chan struct{})
	tb := setup(t, &serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
	}})
	defer close(release)
	r := tb.cli(t, "list", "--timeout", "50ms")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "context deadline exceeded")
}

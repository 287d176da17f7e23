package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/httpapi"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestUI_Files: the dashboard's files are served under ui/ without
// credentials, with headers that keep the page from being framed or
// loading anything from elsewhere; ui redirects to ui/ relative to the
// mount; an unknown file is a JSON 404.
func TestUI_Files(t *testing.T) {
	t.Parallel()
	// Not through checkOpenAPI: the redirect is not an API answer.
	srv := serve(t, httpapi.New(newEngine(t, nil), &httpapi.Options{Authenticator: httpapi.APIKeys("k"), DisableRateLimits: true}))
	tb := &testBundle{srv: srv}
	base := srv.URL + httpapi.Prefix

	res, err := noRedirect.Get(base + "/ui")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusMovedPermanently, res.StatusCode)
	require.Equal(t, httpapi.Prefix+"/ui/", res.Header.Get("Location"), "under the mount")

	for file, contentType := range map[string]string{"": "text/html", "index.html": "text/html", "app.js": "javascript", "app.css": "text/css"} {
		res, err := http.Get(base + "/ui/" + file)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, file)
		require.NotEmpty(t, body, file)
		require.Contains(t, res.Header.Get("Content-Type"), contentType, file)
		require.Equal(t, "no-cache", res.Header.Get("Cache-Control"), file)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), file)
		require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"), file)
		require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"), file)
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'none'", file)
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", file)
		if file == "" {
			require.True(t, strings.HasPrefix(strings.ToLower(strings.TrimSpace(string(body))), "<!doctype html"), "the page itself")
		}
		// The files are served with their time, so a browser can revalidate.
		req, err := http.NewRequest("GET", base+"/ui/"+file, nil)
		require.NoError(t, err)
		req.Header.Set("If-Modified-Since", res.Header.Get("Last-Modified"))
		again, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		again.Body.Close()
		require.Equal(t, http.StatusNotModified, again.StatusCode, file)
	}

	missing := tb.must(t, http.StatusNotFound, "GET", "/ui/nope.js", "")
	require.Equal(t, "NOT_FOUND", missing.err["code"])
	require.Equal(t, "no such dashboard file: nope.js", missing.err["message"])
	tb.must(t, http.StatusUnauthorized, "GET", "/jobs", "")
}

// TestUI_Disabled: DisableUI removes the dashboard; the OpenAPI document
// stays public.
func TestUI_Disabled(t *testing.T) {
	t.Parallel()
	tb := &testBundle{srv: serve(t, httpapi.New(newEngine(t, nil), &httpapi.Options{Authenticator: httpapi.APIKeys("k"), DisableRateLimits: true, DisableUI: true}))}
	tb.must(t, http.StatusUnauthorized, "GET", "/ui/", "")
	tb.must(t, http.StatusNotFound, "GET", "/ui/", "", bearer("k")...)
	tb.must(t, http.StatusOK, "GET", "/openapi.json", "")
}

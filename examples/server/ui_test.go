package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServer_Dashboard: the dashboard and the OpenAPI document are served
// by default, without a key; -ui=false turns the dashboard off.
func TestServer_Dashboard(t *testing.T) {
	bin, dir := serverTest(t)
	get := func(url string) (int, string) {
		res, b := request(t, "GET", url, "", "")
		return res.StatusCode, string(b)
	}
	for i, tc := range []struct {
		args []string
		ui   int
	}{{[]string{"-api-key", "k1", "-demo=false"}, http.StatusOK}, {[]string{"-api-key", "k1", "-demo=false", "-ui=false"}, http.StatusUnauthorized}} {
		srv := startServer(t, bin, filepath.Join(dir, fmt.Sprintf("ui%d.db", i)), freeAddr(t), tc.args...)
		status, body := get(srv.base + "/ui/")
		require.Equal(t, tc.ui, status, tc.args)
		if tc.ui == http.StatusOK {
			require.Contains(t, body, "<title>Batch dashboard</title>")
		}
		status, body = get(srv.base + "/openapi.json")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `"openapi": "3.1.0"`)
		srv.shutDown(t)
	}
}

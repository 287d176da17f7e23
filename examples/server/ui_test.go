package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServer_Dashboard: the dashboard and the OpenAPI document are served
// by default, without a key; -ui=false turns the dashboard off.
func TestServer_Dashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := buildServer(t, dir)
	get := func(url string) (int, string) {
		res, err := http.Get(url)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
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
		srv.cmd.Process.Signal(syscall.SIGTERM)
		require.NoError(t, <-srv.done)
	}
}

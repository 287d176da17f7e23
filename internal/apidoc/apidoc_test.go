package apidoc

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRequests: each request is the document's, and its inner object is
// what the request wraps.
func TestRequests(t *testing.T) {
	for _, tc := range []struct {
		body, inner, wrapper, key, want string
	}{
		{CreateBatchJob(), Batch(), "batch", "type", "field_update"},
		{CreateTemplate(), Template(), "template", "name", "bulk_field_update"},
	} {
		var req map[string]map[string]any
		require.NoError(t, json.Unmarshal([]byte(tc.body), &req))
		require.Equal(t, tc.want, req[tc.wrapper][tc.key])
		var inner map[string]any
		require.NoError(t, json.Unmarshal([]byte(tc.inner), &inner))
		require.Equal(t, req[tc.wrapper], inner)
	}
	require.Panics(t, func() { wrapped([]byte(CreateTemplate()), "batch") })
}

// TestReadModuleFile: module files are found from any directory inside
// the module, and from none outside it.
func TestReadModuleFile(t *testing.T) {
	t.Chdir("../../cmd/batchctl")
	b, err := readModuleFile("go.mod")
	require.NoError(t, err)
	require.Contains(t, string(b), "module github.com/batchworks/batch\n")
	t.Chdir(t.TempDir())
	_, err = readModuleFile("go.mod")
	require.Error(t, err)
}

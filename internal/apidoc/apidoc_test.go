package apidoc

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCreateBatchJob: the request is the document's and Batch is its
// "batch" object.
func TestCreateBatchJob(t *testing.T) {
	var req map[string]map[string]any
	require.NoError(t, json.Unmarshal([]byte(CreateBatchJob()), &req))
	require.Equal(t, "field_update", req["batch"]["type"])
	var b map[string]any
	require.NoError(t, json.Unmarshal([]byte(Batch()), &b))
	require.Equal(t, req["batch"], b)
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

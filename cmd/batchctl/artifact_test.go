package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestArtifact_ListGetAndComplete(t *testing.T) {
	tb := setup(t, nil)
	job := runOK[batch.Job](t, tb, `{"batch": {"operations": [
		{"type": "export", "resource": "fields", "filter": {"crop_type": "rice"}, "destination": {"format": "json"}}]}}`,
		"submit", "-", "--wait")

	// Listed, then downloaded byte for byte.
	r := tb.cli(t, "artifact", "list", job.ID)
	require.Equal(t, 0, r.code, r.stderr)
	arts := decode[struct{ Artifacts []batch.Artifact }](t, r.stdout).Artifacts
	require.Len(t, arts, 1)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "artifact", "list", job.ID)
	require.Regexp(t, `(?m)^NAME\s+CONTENT TYPE\s+SIZE\s+URL\n`+arts[0].Name+`\s+application/json\s+\d+\s+/api/v1/batch/jobs/`, r.stdout)
	_, rc, err := tb.engine.OpenArtifact(t.Context(), job.ID, arts[0].Name)
	require.NoError(t, err)
	want, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())

	out := filepath.Join(t.TempDir(), "fields.json")
	r = tb.cli(t, "artifact", "get", job.ID, arts[0].Name, "-o", out)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "wrote "+out)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Len(t, decode[[]map[string]any](t, string(got)), 15, "the export holds the rice fields")

	r = tb.cli(t, "artifact", "get", job.ID, arts[0].Name)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, string(want), r.stdout, "without -o the artifact goes to stdout")

	missing := filepath.Join(t.TempDir(), "missing.json")
	r = tb.cli(t, "artifact", "get", job.ID, "nope.json", "-o", missing)
	require.Equal(t, exitNotFound, r.code)
	require.NoFileExists(t, missing, "a failed download leaves no file")

	// The shell completes a job id, then its artifacts' names.
	r = tb.cli(t, "__complete", "artifact", "get", job.ID, "")
	require.Equal(t, arts[0].Name+"\tapplication/json\n:4\n", r.stdout)
	r = tb.cli(t, "__complete", "artifact", "get", "")
	require.Contains(t, r.stdout, job.ID+"\t")
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	n, err := writeFileAtomic(path, strings.NewReader("hello"))
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))

	// A download that breaks off leaves the old file and no temporary one.
	_, err = writeFileAtomic(path, io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("connection reset"))))
	require.ErrorContains(t, err, "writing "+path)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	_, err = writeFileAtomic(filepath.Join(dir, "no-such-dir", "x"), strings.NewReader("x"))
	require.Error(t, err)
}

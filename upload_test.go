package batch_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// Issue 18, observation 2: an import reads an uploaded source as a stream
// in every format, past the records a stream cursor keeps (4,096), and the
// batch stored with the job does not hold the data.
func TestImport_FromUpload(t *testing.T) {
	t.Parallel()
	const n = 5000
	var nd, cs, js strings.Builder
	cs.WriteString("id,name\n")
	js.WriteString("[")
	for i := range n {
		fmt.Fprintf(&nd, "{\"id\":\"n%05d\",\"name\":\"x%d\"}\n\n", i, i)
		fmt.Fprintf(&cs, "c%05d,x%d\n", i, i)
		if i > 0 {
			js.WriteString(",")
		}
		fmt.Fprintf(&js, `{"id":"j%05d","name":"x%d"}`, i, i)
	}
	js.WriteString("]")
	b := openOps(t, nil)
	var specs []batch.OperationSpec
	for format, data := range map[string]string{"ndjson": nd.String(), "csv": cs.String(), "json": js.String()} {
		up, err := b.e.Upload(t.Context(), strings.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), up.Size)
		specs = append(specs, batch.OperationSpec{Type: "import", Resource: "fields", Source: &batch.Source{Format: format, Upload: up.ID}})
	}
	job := runJob(t, b.e, ops(specs...))
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(3*n), job.Progress.Completed)
	all := allFields(t, b.e)
	require.Len(t, all, 3*n)
	for _, p := range []string{"n", "c", "j"} {
		require.Equal(t, "x4999", all[p+"04999"]["name"])
		require.Equal(t, "x0", all[p+"00000"]["name"])
	}
}

func TestImport_FromUploadRefusesBadSources(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	up := func(s string) string {
		u, err := b.e.Upload(t.Context(), strings.NewReader(s))
		require.NoError(t, err)
		return u.ID
	}
	tests := []struct {
		name string
		src  batch.Source
		want string
	}{
		{"bad line", batch.Source{Format: "ndjson", Upload: up("{\"id\":\"a\"}\n{\"id\":\"b\"}\nnope\n")}, "line 3"},
		{"unknown upload", batch.Source{Format: "ndjson", Upload: "upload999"}, "no upload"},
		{"empty", batch.Source{Format: "ndjson", Upload: up("\n\n")}, "no records"},
		{"not an array", batch.Source{Format: "json", Upload: up(`{"id":"a"}`)}, "not a JSON array"},
		{"bad id", batch.Source{Format: "json", Upload: up(`[{"id":7}]`)}, "id must be"},
		{"data and upload", batch.Source{Format: "ndjson", Upload: up(`{"id":"a"}`), Data: "{}"}, "either data or upload"},
		{"no format", batch.Source{Upload: up(`{"id":"a"}`)}, "format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "import", Resource: "fields", Source: &tt.src}), nil)
			require.ErrorIs(t, err, batch.ErrInvalidBatch)
			require.ErrorContains(t, err, tt.want)
		})
	}
	page, err := b.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "nothing stored")
	require.Empty(t, allFields(t, b.e))
}

func TestUpload_Delete(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	u, err := b.e.Upload(t.Context(), io.LimitReader(strings.NewReader(strings.Repeat("{\"a\":1}\n", 200_000)), 1<<20))
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), u.Size)
	require.NoError(t, b.e.DeleteUpload(t.Context(), u.ID))
	require.ErrorIs(t, b.e.DeleteUpload(t.Context(), u.ID), batch.ErrNotFound)
	_, err = b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "import", Resource: "fields", Source: &batch.Source{Format: "ndjson", Upload: u.ID}}), nil)
	require.ErrorIs(t, err, batch.ErrInvalidBatch)
}

// Cleanup deletes old uploads, but not one an unfinished job imports.
func TestCleanup_OldUploads(t *testing.T) {
	t.Parallel()
	clock := newOpsClock()
	b := openOps(t, &batch.Options{Now: clock.Now, MaxRunningJobs: 1})
	release := make(chan struct{})
	defer close(release)
	require.NoError(t, b.e.RegisterOperation("hold", holdOp(release)))
	_, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "hold"}), nil)
	require.NoError(t, err)
	used, err := b.e.Upload(t.Context(), strings.NewReader(`{"id":"a"}`))
	require.NoError(t, err)
	unused, err := b.e.Upload(t.Context(), strings.NewReader(`{"id":"b"}`))
	require.NoError(t, err)
	queued, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "import", Resource: "fields", Source: &batch.Source{Format: "ndjson", Upload: used.ID}}), nil)
	require.NoError(t, err)
	require.Equal(t, batch.StateQueued, queued.Status)
	clock.Add(2 * time.Hour)
	fresh, err := b.e.Upload(t.Context(), strings.NewReader(`{"id":"c"}`))
	require.NoError(t, err)

	st, err := b.e.Cleanup(t.Context(), clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Uploads)
	_, err = b.e.UploadInfo(t.Context(), unused.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)
	for _, id := range []string{used.ID, fresh.ID} {
		_, err = b.e.UploadInfo(t.Context(), id)
		require.NoError(t, err, id)
	}
}

// Inline text is read as a stream too, with the same checks as before.
func TestImport_InlineTextChecks(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	tests := []struct {
		name string
		src  batch.Source
		want string
	}{
		{"bad line", batch.Source{Format: "ndjson", Data: "{\"id\":\"a\"}\n[1]\n"}, "line 2"},
		{"id twice", batch.Source{Format: "ndjson", Data: "{\"id\":\"a\"}\n{\"id\":\"a\"}\n"}, "also given at data[0]"},
		{"bad csv", batch.Source{Format: "csv", Data: "id,a\nx,1,2\n"}, "invalid CSV"},
		{"empty", batch.Source{Format: "csv", Data: "id,a\n"}, "no records"},
		{"json string not an array", batch.Source{Format: "json", Data: `{"id":"a"}`}, "not a JSON array"},
		{"ndjson not text", batch.Source{Format: "ndjson", Data: []any{map[string]any{"id": "a"}}}, "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "import", Resource: "fields", Source: &tt.src}), nil)
			require.ErrorIs(t, err, batch.ErrInvalidBatch)
			require.ErrorContains(t, err, tt.want)
		})
	}
	job := runJob(t, b.e, ops(batch.OperationSpec{Type: "import", Resource: "fields", Source: &batch.Source{Format: "json", Data: `[{"id":"a","v":1},{"v":2}]`}}))
	require.Equal(t, int64(2), job.Progress.Completed)
	require.Len(t, allFields(t, b.e), 2)
}

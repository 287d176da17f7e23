package batch_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// smallDisk mounts a tmpfs of size bytes on a fresh directory, or skips the
// test where that is not allowed (it needs root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small file system here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes to dir until its file system is full and returns the file.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

// TestStorageFull is observation 6: on a real full disk a job fails with
// STORAGE_FULL, not a bare system error; a submission is refused with
// STORAGE_FULL; once there is space again the job can be resumed and
// continues where it stopped, creating every record exactly once.
func TestStorageFull(t *testing.T) {
	dir := smallDisk(t, "12m")
	e, err := batch.Open(filepath.Join(dir, "batch.db"), &batch.Options{Bolt: &batch.BoltOptions{Timeout: time.Second}})
	require.NoError(t, err)
	defer e.Close(context.Background())
	const n = 4000
	recs := make([]map[string]any, n)
	for i := range recs {
		recs[i] = map[string]any{"id": fmt.Sprintf("r%05d", i), "pad": strings.Repeat("x", 2000)}
	}
	job, err := e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "create", Resource: "fields", Records: recs}}}, nil)
	require.NoError(t, err)
	job = waitJob(t, e, job.ID)
	require.Equal(t, batch.StateFailed, job.Status)
	require.NotNil(t, job.Error)
	require.Equal(t, string(batch.CodeStorageFull), job.Error.Details[0].Code, "the job says the disk is full: %v", job.Error.Details)
	done := job.Progress.Completed
	require.Less(t, done, int64(n))

	filler := fill(t, dir)
	// The whole batch again: bigger than the free pages left inside the
	// file (a big batch is stored in chunks, which free pages can hold).
	_, err = e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "create", Resource: "fields", Records: recs}}}, nil)
	require.ErrorIs(t, err, batch.ErrStorageFull, "a submission on a full disk says so")
	srv := httptest.NewServer(httpapi.New(e, &httpapi.Options{DisableRateLimits: true}))
	defer srv.Close()
	res, err := http.Post(srv.URL+httpapi.Prefix+"/jobs", "application/json", strings.NewReader(`{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"id": "x", "pad": "`+strings.Repeat("z", 8<<20)+`"}]}]}}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusInsufficientStorage, res.StatusCode, string(body))
	require.Contains(t, string(body), `"STORAGE_FULL"`)

	// Space again: the job resumes where it stopped.
	require.NoError(t, os.Remove(filler))
	out, err := exec.Command("mount", "-o", "remount,size=128m", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	_, err = e.Resume(t.Context(), job.ID)
	require.NoError(t, err)
	ctx2, cancel2 := context.WithTimeout(t.Context(), 3*time.Minute) // a fresh budget for the resumed run
	defer cancel2()
	job, err = e.Wait(ctx2, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status, "%v", job.Error)
	require.Equal(t, int64(n), job.Progress.Completed+job.Progress.Failed)
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	count, err := fields.Count(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, int64(n), count)
	require.Equal(t, int64(0), job.Progress.Failed, "no item ran twice (a second create would fail)")
}

// TestStoreFileFaults is observation 5: a truncated or foreign file is a
// clear error naming the file, which is left untouched; a file held by
// another engine says it is locked.
func TestStoreFileFaults(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	e, err := batch.Open(good, nil)
	require.NoError(t, err)
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	recs := make([]batch.Record, 3000)
	for i := range recs {
		recs[i] = batch.Record{"id": fmt.Sprintf("r%05d", i), "pad": strings.Repeat("y", 500)}
	}
	require.NoError(t, fields.PutMany(t.Context(), recs))

	_, err = batch.Open(good, &batch.Options{Bolt: &batch.BoltOptions{Timeout: 100 * time.Millisecond}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "locked by another process")
	require.NoError(t, e.Close(context.Background()))

	whole, err := os.ReadFile(good)
	require.NoError(t, err)
	// The first meta page says how far the data reaches (its page count at
	// byte 56, pages of 4 KiB at byte 24): cut the file in the middle of it.
	dataEnd := binary.LittleEndian.Uint64(whole[56:]) * uint64(binary.LittleEndian.Uint32(whole[24:]))
	require.Greater(t, dataEnd, uint64(64<<10))
	for name, content := range map[string][]byte{
		"truncated": whole[:dataEnd/2],
		"tiny":      whole[:20],
		"foreign":   []byte(strings.Repeat("this is not a database\n", 1000)),
	} {
		path := filepath.Join(dir, name+".db")
		require.NoError(t, os.WriteFile(path, content, 0o600))
		_, err := batch.Open(path, nil)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), path, "the error names the file")
		after, rerr := os.ReadFile(path)
		require.NoError(t, rerr)
		require.Equal(t, content, after, "%s: the file is untouched", name)
		t.Logf("%s: %v", name, err)
	}
	var be *batch.Error
	require.False(t, errors.As(err, &be))
}

// TestStaleTempFilesRemoved is observation 6's leftover backups: what a
// killed process left in the store's temporary directory is removed when
// the store opens again, and backups are taken there.
func TestStaleTempFilesRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batch.db")
	require.NoError(t, os.MkdirAll(path+".tmp", 0o700))
	stale := filepath.Join(path+".tmp", "backup-12345.db")
	require.NoError(t, os.WriteFile(stale, make([]byte, 1<<20), 0o600))
	e, err := batch.Open(path, nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "the stale backup file is gone")
	job, err := e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "backup"}}}, nil)
	require.NoError(t, err)
	job = waitJob(t, e, job.ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	left, err := os.ReadDir(path + ".tmp")
	require.NoError(t, err)
	require.Empty(t, left, "a finished backup leaves nothing behind")
}

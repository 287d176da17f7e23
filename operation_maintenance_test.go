package batch_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/batchworks/batch"
)

// opsClock is a settable clock for Options.Now.
type opsClock struct {
	mu sync.Mutex
	t  time.Time
}

func newOpsClock() *opsClock {
	return &opsClock{t: time.Date(2026, 1, 19, 0, 52, 3, 0, time.UTC)}
}

func (c *opsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *opsClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// opsBundle is an engine over a real bbolt file, with its store and path.
type opsBundle struct {
	e     *batch.Engine
	store batch.Store
	path  string
}

// openOps opens an engine over a new bbolt file in t.TempDir(). Retention
// is off unless opts sets it.
func openOps(t *testing.T, opts *batch.Options) *opsBundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "batch.db")
	return reopenOps(t, path, opts)
}

func reopenOps(t *testing.T, path string, opts *batch.Options) *opsBundle {
	t.Helper()
	var o batch.Options
	if opts != nil {
		o = *opts
	}
	if o.Retention == 0 {
		o.Retention = -1
	}
	store, err := batch.OpenBoltStore(path, nil)
	require.NoError(t, err)
	e, err := batch.New(store, &o)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close(context.Background()) })
	return &opsBundle{e: e, store: store, path: path}
}

// runJob submits b and waits for the job to finish.
func runJob(t *testing.T, e *batch.Engine, b *batch.Batch) *batch.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	job, err := e.Submit(ctx, b, nil)
	require.NoError(t, err)
	job, err = e.Wait(ctx, job.ID)
	require.NoError(t, err)
	return job
}

// ops makes a batch of operations.
func ops(specs ...batch.OperationSpec) *batch.Batch {
	return &batch.Batch{Operations: specs}
}

// putFields loads n records into the "fields" collection.
func putFields(t testing.TB, e *batch.Engine, n int, rec func(i int) batch.Record) {
	t.Helper()
	c, err := e.Collection("fields")
	require.NoError(t, err)
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = rec(i)
		recs[i]["id"] = fmt.Sprintf("f%06d", i)
	}
	require.NoError(t, c.PutMany(context.Background(), recs))
}

// allFields returns every record of "fields" by id.
func allFields(t *testing.T, e *batch.Engine) map[string]batch.Record {
	t.Helper()
	c, err := e.Collection("fields")
	require.NoError(t, err)
	out := map[string]batch.Record{}
	require.NoError(t, c.Scan(t.Context(), nil, func(r batch.Record) error { out[r.ID()] = r; return nil }))
	return out
}

func readArtifact(t *testing.T, e *batch.Engine, jobID, name string) []byte {
	t.Helper()
	_, rc, err := e.OpenArtifact(t.Context(), jobID, name)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// requireInvalid checks err is INVALID_BATCH with exactly these detail
// fields, and that no job was stored.
func requireInvalid(t *testing.T, e *batch.Engine, err error, fields ...string) {
	t.Helper()
	require.ErrorIs(t, err, batch.ErrInvalidBatch)
	var be *batch.Error
	require.ErrorAs(t, err, &be)
	var got []string
	for _, d := range be.Details {
		require.NotEmpty(t, d.Code)
		require.NotEmpty(t, d.Message)
		got = append(got, d.Field)
	}
	sort.Strings(got)
	sort.Strings(fields)
	require.Equal(t, fields, got, "details: %+v", be.Details)
	page, err := e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, page.Items, "a rejected batch stored a job")
}

func TestMaintenance_InvalidBatches(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	// A finished job that is not a backup.
	notBackup := runJob(t, b.e, ops(batch.OperationSpec{Type: "create", Resource: "fields", Records: []map[string]any{{"id": "x"}}}))
	require.NoError(t, b.e.Delete(t.Context(), notBackup.ID))
	neg := batch.Duration(-time.Hour)
	zero := batch.Duration(0)
	tests := []struct {
		name   string
		spec   batch.OperationSpec
		fields []string
	}{
		{"backup takes no fields", batch.OperationSpec{Type: "backup", Resource: "fields"}, []string{"operations[0].resource"}},
		{"restore without source", batch.OperationSpec{Type: "restore"}, []string{"operations[0].source.job_id"}},
		{"restore of a bad id", batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: "nope"}}, []string{"operations[0].source.job_id"}},
		{"restore of a missing job", batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: "batch999"}}, []string{"operations[0].source.job_id"}},
		{"restore of a deleted job", batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: notBackup.ID}}, []string{"operations[0].source.job_id"}},
		{"restore of data", batch.OperationSpec{Type: "restore", Source: &batch.Source{Format: "json", Data: "[]"}}, []string{"operations[0].source.job_id"}},
		{"cleanup without older_than", batch.OperationSpec{Type: "cleanup"}, []string{"operations[0].older_than"}},
		{"cleanup with negative older_than", batch.OperationSpec{Type: "cleanup", OlderThan: &neg}, []string{"operations[0].older_than"}},
		{"cleanup with zero older_than", batch.OperationSpec{Type: "cleanup", OlderThan: &zero}, []string{"operations[0].older_than"}},
		{"optimize takes no filter", batch.OperationSpec{Type: "optimize", Filter: map[string]any{"a": 1}}, []string{"operations[0].filter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.e.Submit(t.Context(), ops(tt.spec), nil)
			requireInvalid(t, b.e, err, tt.fields...)
		})
	}
}

func TestMaintenance_MemoryStoreCannotBackupOrOptimize(t *testing.T) {
	t.Parallel()
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Retention: -1})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close(context.Background()) })
	for _, typ := range []string{"backup", "optimize"} {
		_, err := e.Submit(t.Context(), ops(batch.OperationSpec{Type: typ}), nil)
		requireInvalid(t, e, err, "operations[0].type")
	}
}

func TestBackup_RestoreBringsCollectionsBack(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	require.NoError(t, b.e.DefineCollection("crops", nil))
	putFields(t, b.e, 50, func(i int) batch.Record { return batch.Record{"area": float64(i), "status": "active"} })
	crops, err := b.e.Collection("crops")
	require.NoError(t, err)
	require.NoError(t, crops.Put(t.Context(), batch.Record{"id": "rice", "water": 10.0}))
	before := allFields(t, b.e)

	backup := runJob(t, b.e, ops(batch.OperationSpec{Type: "backup"}))
	require.Equal(t, batch.StateCompleted, backup.Status)
	require.Len(t, backup.Results, 1)
	res := backup.Results[0]
	require.Equal(t, "backup", res.Type)
	require.NotNil(t, res.Artifact)
	data := readArtifact(t, b.e, backup.ID, res.Artifact.Name)
	sum := sha256.Sum256(data)
	summary := res.Summary.(map[string]any)
	require.Equal(t, hex.EncodeToString(sum[:]), summary["sha256"])
	require.Equal(t, float64(len(data)), summary["size"])
	require.Equal(t, int64(len(data)), res.Artifact.Size)

	// The artifact is a bbolt file that passes its consistency check.
	snapPath := filepath.Join(t.TempDir(), "snap.db")
	require.NoError(t, os.WriteFile(snapPath, data, 0o600))
	db, err := bolt.Open(snapPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}))
	require.NoError(t, db.Close())

	// Change the data every way, then restore.
	upd := runJob(t, b.e, ops(
		batch.OperationSpec{Type: "update", Resource: "fields", Where: "record.area < 10", Update: map[string]any{"status": "gone"}},
		batch.OperationSpec{Type: "delete", Resource: "fields", Where: "record.area >= 40"},
		batch.OperationSpec{Type: "create", Resource: "fields", Records: []map[string]any{{"id": "new"}}},
		batch.OperationSpec{Type: "delete", Resource: "crops", Where: "true"},
	))
	require.Equal(t, int64(0), upd.Progress.Failed)
	require.NotEqual(t, before, allFields(t, b.e))

	restore := runJob(t, b.e, ops(batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: backup.ID}}))
	require.Equal(t, batch.StateCompleted, restore.Status)
	require.Equal(t, int64(1), restore.Progress.Completed, "errors: %+v", restore.Errors)
	require.Equal(t, map[string]any{"source": backup.ID, "collections": 2.0, "records": 51.0}, restore.Results[0].Summary)
	require.Equal(t, before, allFields(t, b.e))
	rice, err := crops.Get(t.Context(), "rice")
	require.NoError(t, err)
	require.Equal(t, 10.0, rice["water"])

	// Job history stays: all four jobs are still listed.
	page, err := b.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Len(t, page.Items, 3)
}

func TestRestore_CorruptBackupChangesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(tx batch.Tx, bucket string, chunk0 []byte) error
	}{
		{"flipped byte", func(tx batch.Tx, bucket string, chunk0 []byte) error {
			v := bytes.Clone(tx.Get(bucket, chunk0))
			v[len(v)/2] ^= 0xff
			return tx.Put(bucket, chunk0, v)
		}},
		{"missing chunk", func(tx batch.Tx, bucket string, chunk0 []byte) error {
			return tx.Delete(bucket, chunk0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := openOps(t, nil)
			putFields(t, b.e, 20, func(i int) batch.Record { return batch.Record{"v": float64(i)} })
			backup := runJob(t, b.e, ops(batch.OperationSpec{Type: "backup"}))
			runJob(t, b.e, ops(batch.OperationSpec{Type: "delete", Resource: "fields", Where: "record.v < 10"}))
			want := allFields(t, b.e)
			require.Len(t, want, 10)

			// Damage the stored artifact (layout.go: artifacts/<job>, chunk keys "c\x00name\x00"+uint32).
			name := backup.Results[0].Artifact.Name
			chunk0 := binary.BigEndian.AppendUint32([]byte("c\x00"+name+"\x00"), 0)
			require.NoError(t, b.store.Update(func(tx batch.Tx) error {
				return tt.corrupt(tx, "artifacts/"+backup.ID, chunk0)
			}))

			job := runJob(t, b.e, ops(batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: backup.ID}}))
			require.Equal(t, batch.StateCompleted, job.Status)
			require.Equal(t, int64(1), job.Progress.Failed)
			require.Len(t, job.Errors, 1)
			require.Equal(t, batch.CodeResource, job.Errors[0].Error.Code)
			require.Contains(t, job.Errors[0].Error.Message, "corrupt")
			require.Equal(t, 1, job.Errors[0].Attempts, "a corrupt backup is not retried")
			require.Equal(t, want, allFields(t, b.e))
		})
	}
}

func TestRestore_BackupDeletedBeforeItRuns(t *testing.T) {
	t.Parallel()
	b := openOps(t, &batch.Options{MaxRunningJobs: 1})
	putFields(t, b.e, 3, func(i int) batch.Record { return batch.Record{"v": float64(i)} })
	backup := runJob(t, b.e, ops(batch.OperationSpec{Type: "backup"}))

	release := make(chan struct{})
	require.NoError(t, b.e.RegisterOperation("hold", holdOp(release)))
	hold, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "hold"}), nil)
	require.NoError(t, err)
	restore, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: backup.ID}}), nil)
	require.NoError(t, err)
	require.NoError(t, b.e.Delete(t.Context(), backup.ID))
	close(release)
	_, err = b.e.Wait(t.Context(), hold.ID)
	require.NoError(t, err)
	job, err := b.e.Wait(t.Context(), restore.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Equal(t, batch.CodeResource, job.Errors[0].Error.Code)
	require.Contains(t, job.Errors[0].Error.Message, "not found")
	require.Len(t, allFields(t, b.e), 3)
}

// holdAndPause registers "hold" and submits two jobs of it: the first
// runs, holding until release is closed; the second is queued behind it
// (in one running slot) and paused.
func holdAndPause(t *testing.T, e *batch.Engine, release <-chan struct{}) (running, paused *batch.Job) {
	t.Helper()
	require.NoError(t, e.RegisterOperation("hold", holdOp(release)))
	running, err := e.Submit(t.Context(), ops(batch.OperationSpec{Type: "hold"}), nil)
	require.NoError(t, err)
	paused, err = e.Submit(t.Context(), ops(batch.OperationSpec{Type: "hold"}), nil)
	require.NoError(t, err)
	paused, err = e.Pause(t.Context(), paused.ID)
	require.NoError(t, err)
	return running, paused
}

// holdOp is a one-item operation that runs until release is closed.
func holdOp(release <-chan struct{}) batch.Operation {
	return batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{
			Count: 1,
			Item:  func(int64) (batch.Item, error) { return batch.Item{ResourceID: "hold"}, nil },
			Run:   heldFrom(0, release),
		}, nil
	})
}

func TestCleanup_RemovesOnlyOldFinishedJobs(t *testing.T) {
	t.Parallel()
	clock := newOpsClock()
	b := openOps(t, &batch.Options{Now: clock.Now, MaxRunningJobs: 1})
	putFields(t, b.e, 5, func(i int) batch.Record { return batch.Record{"v": float64(i)} })

	old := runJob(t, b.e, ops(batch.OperationSpec{Type: "export", Resource: "fields"}))
	require.Len(t, old.Results, 1)
	art := old.Results[0].Artifact.Name
	cancelled, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "export", Resource: "fields"}), nil)
	require.NoError(t, err)
	_, _ = b.e.Cancel(t.Context(), cancelled.ID)
	_, err = b.e.Wait(t.Context(), cancelled.ID)
	require.NoError(t, err)

	clock.Add(48 * time.Hour)
	recent := runJob(t, b.e, ops(batch.OperationSpec{Type: "export", Resource: "fields"}))
	// A running job, and a paused one (queued behind it, then paused).
	release := make(chan struct{})
	running, paused := holdAndPause(t, b.e, release)
	require.Equal(t, batch.StatePaused, paused.Status)

	st, err := b.e.Cleanup(t.Context(), clock.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Jobs)
	for _, id := range []string{old.ID, cancelled.ID} {
		_, err := b.e.Job(t.Context(), id)
		require.ErrorIs(t, err, batch.ErrNotFound, id)
	}
	_, _, err = b.e.OpenArtifact(t.Context(), old.ID, art)
	require.ErrorIs(t, err, batch.ErrNotFound)
	for _, id := range []string{paused.ID, running.ID, recent.ID} {
		_, err := b.e.Job(t.Context(), id)
		require.NoError(t, err, id)
	}

	// The cleanup operation, two days on: the finished jobs go, the paused
	// one and the cleanup job itself stay.
	close(release)
	_, err = b.e.Wait(t.Context(), running.ID)
	require.NoError(t, err)
	clock.Add(48 * time.Hour)
	age := batch.Duration(24 * time.Hour)
	cleanup := runJob(t, b.e, ops(batch.OperationSpec{Type: "cleanup", OlderThan: &age}))
	require.Equal(t, batch.StateCompleted, cleanup.Status)
	require.Equal(t, int64(1), cleanup.Progress.Completed, "errors: %+v", cleanup.Errors)
	summary := cleanup.Results[0].Summary.(map[string]any)
	require.Equal(t, 2.0, summary["jobs"])
	require.Equal(t, "24h", summary["older_than"])
	page, err := b.e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	var ids []string
	for _, j := range page.Items {
		ids = append(ids, j.ID)
	}
	require.ElementsMatch(t, []string{paused.ID, cleanup.ID}, ids)
}

func TestOptimize_ShrinksFileKeepsRecordsAndJobs(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	pad := string(bytes.Repeat([]byte("x"), 2000))
	putFields(t, b.e, 10000, func(i int) batch.Record { return batch.Record{"v": float64(i), "pad": pad} })
	// Kept before-images would keep the deleted records' bytes: none here.
	delBatch := ops(batch.OperationSpec{Type: "delete", Resource: "fields", Where: "record.v >= 100"})
	delBatch.Options.UndoRetention = ptr(batch.Duration(0))
	del := runJob(t, b.e, delBatch)
	require.Equal(t, int64(9900), del.Progress.Completed)
	want := allFields(t, b.e)
	require.Len(t, want, 100)

	// Jobs submitted around the compaction wait for it, and all finish.
	var wg sync.WaitGroup
	jobs := make(chan string, 8)
	for i := range 8 {
		wg.Go(func() {
			during := ops(batch.OperationSpec{Type: "create", Resource: "fields",
				Records: []map[string]any{{"id": fmt.Sprintf("during-%d", i), "pad": pad}}})
			during.Options.UndoRetention = ptr(batch.Duration(0))
			j, err := b.e.Submit(context.Background(), during, nil)
			if err == nil {
				jobs <- j.ID
			}
		})
	}
	opt := runJob(t, b.e, ops(batch.OperationSpec{Type: "optimize"}))
	wg.Wait()
	close(jobs)
	require.Equal(t, int64(1), opt.Progress.Completed, "errors: %+v", opt.Errors)
	s := opt.Results[0].Summary.(map[string]any)
	before, after := s["size_before"].(float64), s["size_after"].(float64)
	require.Less(t, after, before/4, "summary: %v", s)
	fi, err := os.Stat(b.path)
	require.NoError(t, err)
	// Writes after the swap may grow the file by one bbolt allocation step
	// (16 MiB once the file is mapped beyond it).
	require.LessOrEqual(t, float64(fi.Size()), after*2+16<<20)

	n := 0
	for id := range jobs {
		j, err := b.e.Wait(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, batch.StateCompleted, j.Status)
		require.Equal(t, int64(1), j.Progress.Completed)
		n++
	}
	require.Equal(t, 8, n)
	got := allFields(t, b.e)
	require.Len(t, got, 108)
	for id, rec := range want {
		require.Equal(t, rec, got[id])
	}

	// The compacted file reopens with everything in it.
	require.NoError(t, b.e.Close(t.Context()))
	b2 := reopenOps(t, b.path, nil)
	require.Len(t, allFields(t, b2.e), 108)
	j, err := b2.e.Job(t.Context(), opt.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, j.Status)
}

func TestOptimize_WhileAJobWrites(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	putFields(t, b.e, 3000, func(i int) batch.Record { return batch.Record{"v": float64(i)} })
	upd, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"seen": true}}), nil)
	require.NoError(t, err)
	for range 3 {
		opt := runJob(t, b.e, ops(batch.OperationSpec{Type: "optimize"}))
		require.Equal(t, int64(1), opt.Progress.Completed, "errors: %+v", opt.Errors)
	}
	job, err := b.e.Wait(t.Context(), upd.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(3000), job.Progress.Completed)
	for _, rec := range allFields(t, b.e) {
		require.Equal(t, true, rec["seen"])
	}
}

func TestBackup_WhileAJobWrites(t *testing.T) {
	t.Parallel()
	b := openOps(t, nil)
	putFields(t, b.e, 3000, func(i int) batch.Record { return batch.Record{"v": float64(i)} })
	upd, err := b.e.Submit(t.Context(), ops(batch.OperationSpec{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"seen": true}}), nil)
	require.NoError(t, err)
	backup := runJob(t, b.e, ops(batch.OperationSpec{Type: "backup"}))
	require.Equal(t, int64(1), backup.Progress.Completed, "errors: %+v", backup.Errors)
	job, err := b.e.Wait(t.Context(), upd.ID)
	require.NoError(t, err)
	require.Equal(t, int64(3000), job.Progress.Completed)

	// Restoring the mid-job snapshot gives a consistent collection: every
	// record is there, updated or not.
	restore := runJob(t, b.e, ops(batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: backup.ID}}))
	require.Equal(t, int64(1), restore.Progress.Completed, "errors: %+v", restore.Errors)
	require.Len(t, allFields(t, b.e), 3000)
}

// buildBallast writes size bytes of incompressible filler into a bbolt
// file quickly (NoSync, 16 MiB per transaction), so that a store of a
// realistic size can be had in seconds.
func buildBallast(b *testing.B, path string, size int64) {
	b.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, Timeout: time.Second})
	require.NoError(b, err)
	rng := rand.NewChaCha8([32]byte{1})
	val := make([]byte, 64<<10)
	var key uint64
	for written := int64(0); written < size; {
		require.NoError(b, db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("bench_ballast"))
			if err != nil {
				return err
			}
			for range 256 {
				_, _ = rng.Read(val)
				key++
				if err := bk.Put(binary.BigEndian.AppendUint64(nil, key), val); err != nil {
					return err
				}
				written += int64(len(val))
			}
			return nil
		}))
	}
	require.NoError(b, db.Sync())
	require.NoError(b, db.Close())
}

// BenchmarkBackupDuringJob measures what an online backup costs a running
// job: the same update job over every record runs alone and then beside a
// backup of the whole store (1 GiB of data and 100,000 records; 32 MiB and
// 10,000 with -short). It reports both throughputs, the drop and the
// backup's wall time.
//
//	go test -run '^$' -bench BenchmarkBackupDuringJob -benchtime 1x .
func BenchmarkBackupDuringJob(b *testing.B) {
	size, n := int64(1<<30), 100_000
	if testing.Short() {
		size, n = 32<<20, 10_000
	}
	path := filepath.Join(b.TempDir(), "bench.db")
	buildBallast(b, path, size)
	e, err := batch.Open(path, &batch.Options{Retention: -1})
	require.NoError(b, err)
	defer e.Close(context.Background())
	putFields(b, e, n, func(i int) batch.Record { return batch.Record{"area": float64(i % 500), "status": "active"} })
	update := &batch.Batch{
		Operations: []batch.OperationSpec{{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"checked": true}}},
		Options:    batch.BatchOptions{MaxConcurrent: 16},
	}
	ctx := context.Background()
	wait := func(id string) *batch.Job {
		job, err := e.Wait(ctx, id)
		require.NoError(b, err)
		require.Equal(b, batch.StateCompleted, job.Status)
		require.Zero(b, job.Progress.Failed, "errors: %+v", job.Errors)
		return job
	}
	var alone, beside, backupTime time.Duration
	var backupSize float64
	for b.Loop() {
		start := time.Now()
		job, err := e.Submit(ctx, update, nil)
		require.NoError(b, err)
		wait(job.ID)
		alone += time.Since(start)

		start = time.Now()
		job, err = e.Submit(ctx, update, nil)
		require.NoError(b, err)
		bk, err := e.Submit(ctx, ops(batch.OperationSpec{Type: "backup"}), nil)
		require.NoError(b, err)
		var jobDone time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			wait(job.ID)
			jobDone = time.Since(start)
		}()
		bj := wait(bk.ID)
		backupTime += time.Since(start)
		<-done
		beside += jobDone
		backupSize = bj.Results[0].Summary.(map[string]any)["size"].(float64)
		require.NoError(b, e.Delete(ctx, bk.ID)) // drop the artifact again
	}
	iters := float64(b.N)
	rateAlone := float64(n) * iters / alone.Seconds()
	rateBeside := float64(n) * iters / beside.Seconds()
	b.ReportMetric(rateAlone, "items/s-alone")
	b.ReportMetric(rateBeside, "items/s-with-backup")
	b.ReportMetric(100*(1-rateBeside/rateAlone), "drop-%")
	b.ReportMetric(backupTime.Seconds()/iters, "backup-s")
	b.ReportMetric(backupSize/(1<<20), "backup-MiB")
}

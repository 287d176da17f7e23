package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// indexedFields are the fields the index tests index; "area" stays
// unindexed, so filters on it scan.
var indexedFields = []string{"crop_type", "status"}

// indexValues are every value the tests give each field (nil is JSON
// null), so that counting them covers every index entry.
var indexValues = map[string][]any{
	"status":    {"active", "inactive", "done", 1.0, true, nil, map[string]any{"a": 1.0}},
	"crop_type": {"rice", "corn", "wheat"},
	"area":      {1.0, 2.0, 3.0},
}

// canon is a decoded JSON value's encoding, for comparing values.
// exprLit writes v as a literal of the where language, where JSON's null
// is nil.
func exprLit(v any) string {
	if v == nil {
		return "nil"
	}
	return canon(v)
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// requireIndexMatchesScan checks that for every field and value, the
// records an index (or, for unindexed fields, a filtered scan) selects are
// exactly those a full scan finds holding that value, and that the counts
// cover every record holding the field.
func requireIndexMatchesScan(t *testing.T, c *batch.Collection) {
	t.Helper()
	ctx := t.Context()
	all := map[string]batch.Record{}
	require.NoError(t, c.Scan(ctx, nil, func(r batch.Record) error { all[r.ID()] = r; return nil }))
	for field, values := range indexValues {
		var counted int64
		for _, v := range values {
			var want []string
			for id, r := range all {
				if got, ok := r[field]; ok && canon(got) == canon(v) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			var got []string
			q := &batch.Query{Filter: map[string]any{field: v}}
			require.NoError(t, c.Scan(ctx, q, func(r batch.Record) error { got = append(got, r.ID()); return nil }))
			require.Equal(t, want, got, "%s = %s", field, canon(v))
			n, err := c.Count(ctx, q)
			require.NoError(t, err)
			require.Equal(t, int64(len(want)), n, "count of %s = %s", field, canon(v))
			counted += n
		}
		var holding int64
		for _, r := range all {
			if _, ok := r[field]; ok {
				holding++
			}
		}
		require.Equal(t, holding, counted, "records holding %s", field)
	}
	// Two indexed fields together, and an indexed one with an unindexed one.
	for _, f := range []map[string]any{{"status": "active", "crop_type": "rice"}, {"status": "done", "area": 2.0}} {
		var want []string
		for id, r := range all {
			ok := true
			for k, v := range f {
				got, has := r[k]
				ok = ok && has && canon(got) == canon(v)
			}
			if ok {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		var got []string
		require.NoError(t, c.Scan(ctx, &batch.Query{Filter: f}, func(r batch.Record) error { got = append(got, r.ID()); return nil }))
		require.Equal(t, want, got, "%v", f)
	}
}

// randomRecord is a record with an id from a small pool and random values
// of the indexed fields (sometimes missing).
func randomRecord(rng *rand.Rand) batch.Record {
	r := batch.Record{"id": fmt.Sprintf("r%03d", rng.IntN(300)), "area": float64(rng.IntN(3) + 1)}
	if rng.IntN(8) > 0 {
		r["status"] = indexValues["status"][rng.IntN(len(indexValues["status"]))]
	}
	if rng.IntN(8) > 0 {
		r["crop_type"] = indexValues["crop_type"][rng.IntN(3)]
	}
	return r
}

func pick(rng *rand.Rand, field string) any {
	vs := indexValues[field]
	return vs[rng.IntN(len(vs))]
}

// randomIndexOps is a batch of random writes through every built-in path.
func randomIndexOps(rng *rand.Rand, n int) *batch.Batch {
	var specs []batch.OperationSpec
	for range n {
		switch rng.IntN(8) {
		case 0:
			recs := make([]map[string]any, 1+rng.IntN(20))
			for i := range recs {
				recs[i] = randomRecord(rng)
				recs[i]["id"] = fmt.Sprintf("c%d-%d", rng.Int64(), i)
			}
			specs = append(specs, batch.OperationSpec{Type: "create", Resource: "fields", Records: recs})
		case 1:
			specs = append(specs, batch.OperationSpec{Type: "update", Resource: "fields",
				Filter: map[string]any{"crop_type": pick(rng, "crop_type")},
				Update: map[string]any{"status": pick(rng, "status"), "note": map[string]any{"seen": true}}})
		case 2:
			specs = append(specs, batch.OperationSpec{Type: "update", Resource: "fields",
				Where: "record.area > 2", Update: map[string]any{"crop_type": pick(rng, "crop_type"), "status": nil}})
		case 3:
			specs = append(specs, batch.OperationSpec{Type: "delete", Resource: "fields",
				Filter: map[string]any{"status": pick(rng, "status"), "area": pick(rng, "area")}})
		case 4:
			recs := make([]any, 1+rng.IntN(30))
			ids := rng.Perm(300)
			for i := range recs {
				r := randomRecord(rng)
				r["id"] = fmt.Sprintf("r%03d", ids[i])
				recs[i] = r
			}
			specs = append(specs, batch.OperationSpec{Type: "import", Resource: "fields", Source: &batch.Source{Format: "json", Data: recs}})
		case 6: // a where expression whose equalities an index can narrow
			specs = append(specs, batch.OperationSpec{Type: "update", Resource: "fields",
				Where:  fmt.Sprintf(`record.status == %s && record.area >= 2`, exprLit(pick(rng, "status"))),
				Update: map[string]any{"crop_type": pick(rng, "crop_type")}})
		case 7: // one it cannot: a disjunction
			specs = append(specs, batch.OperationSpec{Type: "delete", Resource: "fields",
				Where: fmt.Sprintf(`record.crop_type == %s || record.area == 3`, exprLit(pick(rng, "crop_type")))})
		case 5:
			specs = append(specs, batch.OperationSpec{Type: "calculate", Resource: "fields",
				Filter: map[string]any{"crop_type": pick(rng, "crop_type")},
				Set:    map[string]string{"status": `record.area > 1 ? "active" : "inactive"`, "crop_type": `"corn"`}})
		}
	}
	return &batch.Batch{Operations: specs, Options: batch.BatchOptions{MaxConcurrent: 4, Validation: batch.ValidationOptions{OnError: batch.OnErrorSkip}}}
}

// TestIndex_MatchesScanAfterRandomWrites writes through every path (create,
// update, delete, import, calculate, restore, Put, Delete) and checks that
// the indexes always select what a scan finds.
func TestIndex_MatchesScanAfterRandomWrites(t *testing.T) {
	t.Parallel()
	onEachStore(t, nil, func(t *testing.T, tb *testBundle) {
		tb.indexFields(t, indexedFields...)
		rng := rand.New(rand.NewPCG(1, uint64(len(tb.kind))))
		for range 200 {
			require.NoError(t, tb.fields.Put(t.Context(), randomRecord(rng)))
		}
		requireIndexMatchesScan(t, tb.fields)
		var backup string
		for round := range 8 {
			job := runJob(t, tb.e, randomIndexOps(rng, 6))
			require.Equal(t, batch.StateCompleted, job.Status, "%+v", job.Error)
			for range 20 {
				r := randomRecord(rng)
				if rng.IntN(3) == 0 {
					err := tb.fields.Delete(t.Context(), r.ID())
					require.True(t, err == nil || batch.CodeOf(err) == batch.CodeNotFound, "%v", err)
					continue
				}
				require.NoError(t, tb.fields.Put(t.Context(), r))
			}
			requireIndexMatchesScan(t, tb.fields)
			if tb.kind != "bolt" {
				continue
			}
			switch round {
			case 2:
				job := runJob(t, tb.e, ops(batch.OperationSpec{Type: "backup"}))
				require.Equal(t, batch.StateCompleted, job.Status)
				backup = job.ID
			case 5:
				job := runJob(t, tb.e, ops(batch.OperationSpec{Type: "restore", Source: &batch.Source{JobID: backup}}))
				require.Equal(t, batch.StateCompleted, job.Status, "%+v", job.Error)
				requireIndexMatchesScan(t, tb.fields)
			}
		}
	})
}

// TestIndex_AddWhileAJobWrites adds an index to a collection while a job
// rewrites the indexed field: the background build and the job's writes
// together leave the index equal to the data.
func TestIndex_AddWhileAJobWrites(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", &batch.Options{CommitBatchSize: 16, CommitDelay: -1})
	rng := rand.New(rand.NewPCG(2, 2))
	recs := make([]batch.Record, 6000)
	for i := range recs {
		recs[i] = randomRecord(rng)
		recs[i]["id"] = fmt.Sprintf("r%05d", i)
	}
	require.NoError(t, tb.fields.PutMany(t.Context(), recs))
	job := tb.submit(t, &batch.Batch{
		Operations: []batch.OperationSpec{{Type: "calculate", Resource: "fields", Where: "true",
			Set: map[string]string{"status": `record.area > 2 ? "done" : "active"`}}},
		Options: batch.BatchOptions{MaxConcurrent: 4},
	})
	require.Eventually(t, func() bool {
		j, err := tb.e.Job(t.Context(), job.ID)
		require.NoError(t, err)
		return j.Progress.Completed > 500
	}, 30*time.Second, time.Millisecond)
	require.NoError(t, tb.fields.AddIndex(t.Context(), "status"))
	require.Equal(t, []batch.IndexStatus{{Field: "status", Ready: false}}, tb.fields.Indexes()[:1:1], "the index is not used before it is built")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, tb.fields.WaitIndexes(ctx))
	j := tb.wait(t, job.ID)
	require.Equal(t, batch.StateCompleted, j.Status)
	require.Equal(t, []batch.IndexStatus{{Field: "status", Ready: true}}, tb.fields.Indexes())
	requireIndexMatchesScan(t, tb.fields)
}

// TestIndex_Drop removes an index and its entries; adding it again
// builds it afresh, equal to the data.
func TestIndex_Drop(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.indexFields(t, indexedFields...)
	rng := rand.New(rand.NewPCG(5, 5))
	for range 300 {
		require.NoError(t, tb.fields.Put(t.Context(), randomRecord(rng)))
	}
	require.NoError(t, tb.fields.DropIndex(t.Context(), "status"))
	require.Equal(t, []batch.IndexStatus{{Field: "crop_type", Ready: true}}, tb.fields.Indexes())
	requireIndexMatchesScan(t, tb.fields) // status is scanned now
	job := runJob(t, tb.e, randomIndexOps(rng, 6))
	require.Equal(t, batch.StateCompleted, job.Status)
	tb.indexFields(t, indexedFields...)
	requireIndexMatchesScan(t, tb.fields)
}

// TestIndex_LongValues: values longer than an index key may hold (bbolt
// keys stop at 32 KiB) are indexed by their hash and still select exactly.
func TestIndex_LongValues(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.indexFields(t, "status")
	long := strings.Repeat("x", 40_000)
	require.NoError(t, tb.fields.PutMany(t.Context(), []batch.Record{
		{"id": "a", "status": long}, {"id": "b", "status": long + "y"}, {"id": "c", "status": "short"},
	}))
	var got []string
	require.NoError(t, tb.fields.Scan(t.Context(), &batch.Query{Filter: map[string]any{"status": long}}, func(r batch.Record) error {
		got = append(got, r.ID())
		return nil
	}))
	require.Equal(t, []string{"a"}, got)
	job := runJob(t, tb.e, ops(batch.OperationSpec{Type: "update", Resource: "fields", Filter: map[string]any{"status": long + "y"}, Update: map[string]any{"status": "done"}}))
	require.Equal(t, int64(1), job.Progress.Completed)
	n, err := tb.fields.Count(t.Context(), &batch.Query{Filter: map[string]any{"status": long + "y"}})
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = tb.fields.Count(t.Context(), &batch.Query{Filter: map[string]any{"status": "done"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}

func TestIndex_BadField(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	require.Equal(t, batch.CodeValidation, batch.CodeOf(tb.fields.AddIndex(t.Context(), "")))
	require.Equal(t, batch.CodeValidation, batch.CodeOf(tb.e.DefineCollection("fields", &batch.CollectionOptions{Indexes: []string{"a\x00b"}})))
}

// TestIndex_CountedAtSubmission: an indexed filter gives the exact total
// when the job is submitted; an unindexed one over a collection too large
// to count quickly leaves it to the job's selection, which makes it exact.
func TestIndex_CountedAtSubmission(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	tb.seedFields(t, 16_000)
	b := docBatch(t)
	job := tb.submit(t, b)
	require.Zero(t, job.Progress.TotalOperations, "not counted by scanning at submission")
	job = tb.wait(t, job.ID)
	require.Equal(t, int64(4000), job.Progress.TotalOperations)
	require.Equal(t, int64(4000), job.Progress.Completed)

	tb.indexFields(t, "status", "irrigation_enabled")
	job = tb.submit(t, docBatch(t))
	require.Equal(t, int64(4000), job.Progress.TotalOperations)
	require.Equal(t, int64(4000), tb.wait(t, job.ID).Progress.Completed)
}

// indexCrashBatch writes through every built-in path, many items each.
func indexCrashBatch() *batch.Batch {
	rng := rand.New(rand.NewPCG(3, 3))
	creates := make([]map[string]any, 3000)
	for i := range creates {
		creates[i] = randomRecord(rng)
		creates[i]["id"] = fmt.Sprintf("new%05d", i)
	}
	imports := make([]any, 3000)
	ids := rng.Perm(6000)
	for i := range imports {
		r := randomRecord(rng)
		r["id"] = fmt.Sprintf("r%05d", ids[i])
		imports[i] = r
	}
	return &batch.Batch{
		Operations: []batch.OperationSpec{
			{Type: "create", Resource: "fields", Records: creates},
			{Type: "update", Resource: "fields", Filter: map[string]any{"crop_type": "rice"}, Update: map[string]any{"status": "done"}},
			{Type: "delete", Resource: "fields", Filter: map[string]any{"status": "inactive"}},
			{Type: "import", Resource: "fields", Source: &batch.Source{Format: "json", Data: imports}},
			{Type: "calculate", Resource: "fields", Filter: map[string]any{"crop_type": "wheat"}, Set: map[string]string{"status": `record.area > 2 ? "active" : "inactive"`}},
		},
		Options: batch.BatchOptions{MaxConcurrent: 4, Validation: batch.ValidationOptions{OnError: batch.OnErrorSkip}},
	}
}

// startIndexChild is the index crash child's job: it adds a third index,
// built in the background while the job writes (and perhaps killed in the
// middle), and submits indexCrashBatch.
func startIndexChild(ctx context.Context, e *batch.Engine, _ string) (*batch.Job, error) {
	fields, err := e.Collection("fields")
	if err != nil {
		return nil, err
	}
	if err := fields.AddIndex(ctx, "area"); err != nil {
		return nil, err
	}
	return e.Submit(ctx, indexCrashBatch(), nil)
}

// TestIndex_SurvivesSIGKILL kills a child process with SIGKILL while its
// job writes through every path, reopens the file without declaring the
// indexes (they are stored, so they are still maintained and used), lets
// the job finish and checks the indexes against a scan.
func TestIndex_SurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "index-crash.db")
	{
		e, err := batch.Open(path, nil)
		require.NoError(t, err)
		require.NoError(t, e.DefineCollection("fields", &batch.CollectionOptions{Indexes: indexedFields}))
		fields, err := e.Collection("fields")
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(4, 4))
		recs := make([]batch.Record, 6000)
		for i := range recs {
			recs[i] = randomRecord(rng)
			recs[i]["id"] = fmt.Sprintf("r%05d", i)
		}
		require.NoError(t, fields.PutMany(t.Context(), recs))
		require.NoError(t, fields.WaitIndexes(t.Context()))
		require.NoError(t, e.Close(t.Context()))
	}

	c := killChild(t, "index", path, "", func(done, _ int64) bool { return done >= 4000 })

	tb, job := reopen(t, path, c.jobID)
	require.Greater(t, job.Progress.Completed, c.atKill)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, tb.fields.WaitIndexes(ctx))
	require.Equal(t, []batch.IndexStatus{{Field: "area", Ready: true}, {Field: "crop_type", Ready: true}, {Field: "status", Ready: true}}, tb.fields.Indexes())
	requireIndexMatchesScan(t, tb.fields)
}

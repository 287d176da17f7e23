package batch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/apidoc"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

func TestMain(m *testing.M) {
	if os.Getenv(pgChildEnv) != "" {
		runPGChild()
		return
	}
	if name := os.Getenv(childEnv); name != "" {
		runChild(name)
		return
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { pgtest.Stop() }))
}

// testBundle is one engine with its built-in "fields" collection.
type testBundle struct {
	e      *batch.Engine
	fields *batch.Collection
	path   string
	kind   string // the store: "memory", "bolt" or "postgres"
}

// storeKinds runs a test against every store; "postgres" skips outside CI
// when no PostgreSQL server can be started.
var storeKinds = []string{"memory", "bolt", "postgres"}

// onEachStore runs fn in a parallel subtest for each store kind, on an
// engine set up with opts.
func onEachStore(t *testing.T, opts *batch.Options, fn func(t *testing.T, tb *testBundle)) {
	t.Helper()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, kind, opts))
		})
	}
}

// setup opens an engine on the named store kind and closes it at cleanup.
func setup(t *testing.T, kind string, opts *batch.Options) *testBundle {
	t.Helper()
	tb := &testBundle{kind: kind}
	var err error
	switch kind {
	case "memory":
		tb.e, err = batch.New(batch.NewMemoryStore(), opts)
	case "postgres":
		var s *pgstore.Store
		s, err = pgstore.Open(t.Context(), pgtest.URL(t), &pgstore.Options{Schema: pgtest.Schema(t), MaxConns: 8})
		require.NoError(t, err)
		tb.e, err = batch.New(s, opts)
	default:
		tb.path = filepath.Join(t.TempDir(), "batch.db")
		tb.e, err = batch.Open(tb.path, opts)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, tb.e.Close(ctx))
	})
	tb.fields, err = tb.e.Collection("fields")
	require.NoError(t, err)
	return tb
}

// seedFields puts n demo fields: status alternates active/inactive,
// irrigation_enabled is true for i%4 < 2, so n/4 match the document's filter.
func (tb *testBundle) seedFields(t *testing.T, n int) {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{
			"id":                 fmt.Sprintf("field%06d", i),
			"status":             []string{"active", "inactive"}[i%2],
			"irrigation_enabled": i%4 < 2,
			"area":               float64(i%50 + 1),
		}
	}
	require.NoError(t, tb.fields.PutMany(t.Context(), recs))
}

// indexFields redefines the "fields" collection with indexes on fields and
// waits until they are ready.
func (tb *testBundle) indexFields(t *testing.T, fields ...string) {
	t.Helper()
	require.NoError(t, tb.e.DefineCollection("fields", &batch.CollectionOptions{Indexes: fields}))
	var err error
	tb.fields, err = tb.e.Collection("fields")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, tb.fields.WaitIndexes(ctx))
}

// wait waits for a job to finish, failing the test after a minute.
func (tb *testBundle) wait(t *testing.T, id string) *batch.Job {
	t.Helper()
	return waitJob(t, tb.e, id)
}

// waitJob waits for job id of e to finish, failing the test after a
// minute.
func waitJob(t *testing.T, e *batch.Engine, id string) *batch.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	job, err := e.Wait(ctx, id)
	require.NoError(t, err)
	return job
}

// submit submits b and fails the test on error.
func (tb *testBundle) submit(t *testing.T, b *batch.Batch) *batch.Job {
	t.Helper()
	job, err := tb.e.Submit(t.Context(), b, nil)
	require.NoError(t, err)
	return job
}

// docBatchJSON is the "batch" object of the API document's "Create Batch
// Job" request: the one the quickstart runs.
var docBatchJSON = apidoc.Batch()

func docBatch(t testing.TB) *batch.Batch {
	b, err := batch.DecodeBatch([]byte(docBatchJSON))
	require.NoError(t, err)
	return b
}

// countingOp is a custom operation of n list items whose handler is fn.
func countingOp(fn func(ctx context.Context, it *batch.Item) error) batch.Operation {
	return batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		n, _ := spec.Params["count"].(float64)
		return &batch.Plan{
			Count: int64(n),
			Item: func(i int64) (batch.Item, error) {
				return batch.Item{ResourceID: "item" + strconv.FormatInt(i, 10)}, nil
			},
			Run: fn,
		}, nil
	})
}

// opBatch is a batch of one custom operation with count items.
func opBatch(typ string, count int, opts batch.BatchOptions) *batch.Batch {
	return &batch.Batch{
		Operations: []batch.OperationSpec{{Type: typ, Params: map[string]any{"count": count}}},
		Options:    opts,
	}
}

func ptr[T any](v T) *T { return &v }

// counter counts calls per item key.
type counter struct{ n atomic.Int64 }

func (c *counter) inc() int64 { return c.n.Add(1) }

package batch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

type tagParams struct {
	Tag   string `json:"tag"`
	Times int    `json:"times"`
}

func (p *tagParams) Validate() error {
	if p.Tag == "" {
		return errors.New("tag is required")
	}
	return nil
}

// TestTypedOperation: params decode into the handler's type, strictly, and
// mistakes are INVALID_BATCH details at submission.
func TestTypedOperation(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	tag := batch.TypedOperation(func(ctx context.Context, it *batch.Item, p tagParams) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s:%s:%d", it.ResourceID, p.Tag, p.Times))
		return nil
	})
	tb := setup(t, "bolt", &batch.Options{Operations: map[string]batch.Operation{"tag": tag}})
	tb.seedFields(t, 4)

	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: "tag", Params: map[string]any{"tag": "one", "times": 2}},
		{Type: "tag", Resource: "fields", Where: "status == 'active'", Params: map[string]any{"tag": "each"}},
	}}).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	slices.Sort(got)
	require.Equal(t, []string{"field000000:each:0", "field000002:each:0", "tag:one:2"}, got)

	for params, want := range map[string]map[string]string{
		`{"tag": "x", "tims": 2}`:    {"operations[0].params.tims": batch.DetailUnknownField},
		`{"tag": "x", "times": "2"}`: {"operations[0].params.times": batch.DetailInvalidValue},
		`{"times": 2}`:               {"operations[0].params": batch.DetailInvalidValue},
	} {
		b, err := batch.DecodeBatch([]byte(`{"operations": [{"type": "tag", "params": ` + params + `}]}`))
		require.NoError(t, err)
		_, err = tb.e.Submit(t.Context(), b, nil)
		require.Equal(t, want, detailFields(t, err), params)
	}
}

// TestReadOnlyResource: a resource needs only Scan and Get to be read by
// batches (sensors, of the resource example, has only those); a batch that
// would write to it is refused at submission.
func TestReadOnlyResource(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", &batch.Options{Resources: map[string]batch.Resource{
		"sensors": sensors{recs: []batch.Record{{"id": "s1", "ok": true}, {"id": "s2", "ok": false}}},
	}})
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{
		{Type: batch.OpValidate, Resource: "sensors", Where: "true", Rules: map[string]string{"ok": "ok"}},
	}}).ID)
	require.Equal(t, int64(1), job.Progress.Completed)
	require.Equal(t, int64(1), job.Progress.Failed)

	for _, op := range []batch.OperationSpec{
		{Type: batch.OpUpdate, Resource: "sensors", Where: "true", Update: map[string]any{"x": 1}},
		{Type: batch.OpDelete, Resource: "sensors", Where: "true"},
		{Type: batch.OpCreate, Resource: "sensors", Records: []map[string]any{{"id": "s3"}}},
		{Type: batch.OpCalculate, Resource: "sensors", Where: "true", Set: map[string]string{"x": "1"}},
	} {
		_, err := tb.e.Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{op}}, nil)
		require.Equal(t, map[string]string{"operations[0].resource": batch.DetailInvalidValue}, detailFields(t, err), op.Type)
	}
}

// TestMiddleware: middleware wraps each try of each item, outermost first,
// and can turn a panic into an error of its own.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var trace []string
	logMW := func(name string) batch.Middleware {
		return batch.MiddlewareFunc(func(ctx context.Context, it *batch.Item, next func(context.Context) error) error {
			mu.Lock()
			trace = append(trace, name+" "+it.ResourceID)
			mu.Unlock()
			return next(ctx)
		})
	}
	recoverMW := batch.MiddlewareFunc(func(ctx context.Context, it *batch.Item, next func(context.Context) error) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = batch.Permanent(&batch.Error{Code: batch.CodeResource, Message: fmt.Sprint("recovered: ", v)})
			}
		}()
		return next(ctx)
	})
	boom := countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index == 1 {
			panic("boom")
		}
		return nil
	})
	tb := setup(t, "memory", &batch.Options{
		Operations: map[string]batch.Operation{"boom": boom},
		Middleware: []batch.Middleware{logMW("outer"), recoverMW, logMW("inner")},
	})
	job := tb.wait(t, tb.submit(t, opBatch("boom", 2, batch.BatchOptions{Parallel: ptr(false)})).ID)
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Equal(t, batch.CodeResource, job.Errors[0].Error.Code, "the middleware's recover decided the error")
	require.Equal(t, "recovered: boom", job.Errors[0].Error.Message)
	require.Equal(t, []string{"outer item0", "inner item0", "outer item1", "inner item1"}, trace)
}

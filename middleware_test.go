package batch_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

type ctxKey struct{}

// Middleware wraps each item's Run, the first outermost; the context a
// middleware hands to next reaches Run, and a middleware that does not
// call next keeps Run from running and decides the item's outcome.
func TestMiddleware_WrapsEveryItemInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var trace []string
	log := func(s string) { mu.Lock(); trace = append(trace, s); mu.Unlock() }
	named := func(name string) batch.Middleware {
		return batch.MiddlewareFunc(func(ctx context.Context, it *batch.Item, next func(context.Context) error) error {
			log(name + " in")
			err := next(context.WithValue(ctx, ctxKey{}, name))
			log(name + " out")
			return err
		})
	}
	refuse := batch.MiddlewareFunc(func(ctx context.Context, it *batch.Item, next func(context.Context) error) error {
		if it.Index == 1 {
			return batch.ValidationError("refused by middleware")
		}
		return next(ctx)
	})
	run := countingOp(func(ctx context.Context, it *batch.Item) error {
		log("run " + it.ResourceID + " in " + ctx.Value(ctxKey{}).(string))
		return nil
	})
	tb := setup(t, "memory", &batch.Options{Middleware: []batch.Middleware{named("outer"), named("inner"), refuse},
		Operations: map[string]batch.Operation{"run": run}})
	job := tb.wait(t, tb.submit(t, opBatch("run", 2, batch.BatchOptions{Parallel: ptr(false)})).ID)
	require.Equal(t, int64(1), job.Progress.Completed)
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Equal(t, []string{
		"outer in", "inner in", "run item0 in inner", "inner out", "outer out",
		"outer in", "inner in", "inner out", "outer out",
	}, trace)
}

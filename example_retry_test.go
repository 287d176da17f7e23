package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/batchworks/batch"
)

// A custom operation whose items fail twice before they succeed, retried
// with a custom backoff function registered on the engine.
func Example_retryBackoff() {
	ctx := context.Background()
	engine, _ := batch.New(batch.NewMemoryStore(), nil)
	defer engine.Close(ctx)

	_ = engine.RegisterBackoff("steady", func(attempt int, err error) time.Duration {
		return time.Duration(attempt) * time.Millisecond
	})
	var mu sync.Mutex
	tries := map[int64]int{}
	_ = engine.RegisterOperation("ping", batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		hosts, _ := spec.Params["hosts"].([]any)
		return &batch.Plan{
			Count: int64(len(hosts)),
			Item: func(i int64) (batch.Item, error) {
				return batch.Item{ResourceID: hosts[i].(string)}, nil
			},
			Run: func(ctx context.Context, it *batch.Item) error {
				mu.Lock()
				defer mu.Unlock()
				tries[it.Index]++
				if tries[it.Index] < 3 {
					return errors.New("connection refused")
				}
				return nil
			},
		}, nil
	}))

	job, err := engine.Submit(ctx, &batch.Batch{
		Operations: []batch.OperationSpec{{Type: "ping", Params: map[string]any{"hosts": []any{"a.example", "b.example"}}}},
		Options:    batch.BatchOptions{Retry: batch.RetryOptions{Attempts: 3, Backoff: batch.BackoffCustom, Function: "steady"}},
	}, nil)
	if err != nil {
		panic(err)
	}
	job, _ = engine.Wait(ctx, job.ID)
	fmt.Println(job.Status, job.Progress.Completed, "completed,", job.Progress.Failed, "failed")
	fmt.Println("tries:", tries[0], tries[1])
	// Output:
	// completed 2 completed, 0 failed
	// tries: 3 3
}

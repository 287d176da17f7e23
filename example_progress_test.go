package batch_test

import (
	"context"
	"fmt"

	"github.com/batchworks/batch"
)

// A progress bar ranges over Engine.Progress: the job's current state
// first, then its changes, at most four a second, and the final state last.
func ExampleEngine_Progress() {
	ctx := context.Background()
	engine, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)
	fields, _ := engine.Collection("fields")
	for i := range 3 {
		fields.Put(ctx, batch.Record{"id": fmt.Sprintf("f%d", i), "status": "active"})
	}
	job, err := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "update", Resource: "fields", Filter: map[string]any{"status": "active"}, Update: map[string]any{"checked": true},
	}}}, nil)
	if err != nil {
		panic(err)
	}
	snapshots, err := engine.Progress(ctx, job.ID)
	if err != nil {
		panic(err)
	}
	var last *batch.Job
	for j := range snapshots {
		last = j // a progress bar would draw j.Progress.Percentage here
	}
	fmt.Println(last.Status, last.Progress.Completed, last.Progress.Percentage)
	// Output: completed 3 100
}

package batch_test

import (
	"context"
	"fmt"

	"github.com/batchworks/batch"
)

// A dry run shows what an update would do; a revert undoes it after it ran.
func ExampleEngine_Revert() {
	ctx := context.Background()
	e, _ := batch.New(batch.NewMemoryStore(), nil)
	defer e.Close(ctx)
	fields, _ := e.Collection("fields")
	_ = fields.Put(ctx, batch.Record{"id": "f1", "status": "active"})

	b := &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "update", Resource: "fields", Filter: map[string]any{"status": "active"},
		Update: map[string]any{"status": "archived"},
	}}}
	dr, _ := e.DryRun(ctx, b)
	s := dr.Operations[0].Samples[0]
	fmt.Println("would change", dr.Operations[0].Items, "record:", s.Before["status"], "->", s.After["status"])

	job, _ := e.Submit(ctx, b, nil)
	job, _ = e.Wait(ctx, job.ID)
	rv, _ := e.Revert(ctx, job.ID, nil)
	rv, _ = e.Wait(ctx, rv.ID)
	rec, _ := fields.Get(ctx, "f1")
	fmt.Println(rv.Reverts == job.ID, rv.Revert.Restored, rec["status"])
	// Output:
	// would change 1 record: active -> archived
	// true 1 active
}

package batch_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/batchworks/batch"
)

func ExampleEngine_Submit() {
	ctx := context.Background()
	engine, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)

	fields, _ := engine.Collection("fields")
	_ = fields.PutMany(ctx, []batch.Record{
		{"id": "field1", "status": "active", "irrigation_enabled": true},
		{"id": "field2", "status": "active", "irrigation_enabled": false},
		{"id": "field3", "status": "inactive", "irrigation_enabled": true},
	})

	job, err := engine.Submit(ctx, &batch.Batch{
		Type: "field_update",
		Operations: []batch.OperationSpec{{
			Type:     "update",
			Resource: "fields",
			Filter:   map[string]any{"status": "active", "irrigation_enabled": true},
			Update:   map[string]any{"irrigation_schedule": map[string]any{"frequency": "daily"}},
		}},
	}, nil)
	if err != nil {
		panic(err)
	}
	job, _ = engine.Wait(ctx, job.ID)
	fmt.Println(job.Status, job.Progress.Completed, "of", job.Progress.TotalOperations)

	rec, _ := fields.Get(ctx, "field1")
	fmt.Println(rec["irrigation_schedule"])
	// Output:
	// completed 1 of 1
	// map[frequency:daily]
}

func ExampleEngine_Submit_invalid() {
	ctx := context.Background()
	engine, _ := batch.New(batch.NewMemoryStore(), nil)
	defer engine.Close(ctx)

	b, _ := batch.DecodeBatch([]byte(`{"operations": [{"type": "process"}], "options": {"max_concurrent": -1}}`))
	_, err := engine.Submit(ctx, b, nil)
	var e *batch.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code)
		for _, d := range e.Details {
			fmt.Printf("%s %s: %s\n", d.Field, d.Code, d.Message)
		}
	}
	// Output:
	// INVALID_BATCH
	// options.max_concurrent INVALID_VALUE: max_concurrent must be between 1 and 1000, got -1
	// operations[0].type INVALID_OPERATION: Unknown operation type: process
}

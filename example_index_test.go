package batch_test

import (
	"context"
	"fmt"

	"github.com/batchworks/batch"
)

func ExampleCollectionOptions() {
	ctx := context.Background()
	engine, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)

	// Index the fields that batches filter on.
	if err := engine.DefineCollection("fields", &batch.CollectionOptions{Indexes: []string{"status", "crop_type"}}); err != nil {
		panic(err)
	}
	fields, _ := engine.Collection("fields")
	_ = fields.PutMany(ctx, []batch.Record{
		{"id": "field1", "status": "active", "crop_type": "rice"},
		{"id": "field2", "status": "active", "crop_type": "corn"},
		{"id": "field3", "status": "inactive", "crop_type": "rice"},
	})
	_ = fields.WaitIndexes(ctx)

	// Read from the indexes: no record is decoded to count.
	n, _ := fields.Count(ctx, &batch.Query{Filter: map[string]any{"status": "active", "crop_type": "rice"}})
	fmt.Println(n, fields.Indexes())
	// Output: 1 [{crop_type true} {status true}]
}

func ExampleCollection_AddIndex() {
	ctx := context.Background()
	engine, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)

	fields, _ := engine.Collection("fields")
	_ = fields.Put(ctx, batch.Record{"id": "field1", "status": "active"})
	// The index is built in the background; writes keep it right
	// meanwhile, and queries use it once it is ready.
	_ = fields.AddIndex(ctx, "status")
	_ = fields.WaitIndexes(ctx)
	fmt.Println(fields.Indexes())
	// Output: [{status true}]
}

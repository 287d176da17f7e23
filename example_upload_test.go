package batch_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/batchworks/batch"
)

func ExampleEngine_Upload() {
	ctx := context.Background()
	engine, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)

	// Any io.Reader: a file, a request body. It is stored in chunks.
	src := strings.NewReader(`{"id": "field1", "status": "active"}
{"id": "field2", "status": "inactive"}
`)
	up, err := engine.Upload(ctx, src)
	if err != nil {
		panic(err)
	}
	job, err := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
		Type:     "import",
		Resource: "fields",
		Source:   &batch.Source{Format: "ndjson", Upload: up.ID},
	}}}, nil)
	if err != nil {
		panic(err)
	}
	job, _ = engine.Wait(ctx, job.ID)
	fmt.Println(job.Status, job.Progress.Completed)
	_ = engine.DeleteUpload(ctx, up.ID)
	// Output:
	// completed 2
}

package batch_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/batchworks/batch"
)

// Lists of stored objects come a page at a time: follow NextCursor until
// it is empty. A page marshals as the API document's list object.
func ExamplePage() {
	ctx := context.Background()
	engine, err := batch.New(batch.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)
	for _, name := range []string{"nightly", "weekly", "monthly"} {
		_, err := engine.CreateTemplate(ctx, &batch.Template{Name: name,
			Operations: []batch.OperationSpec{{Type: "cleanup", Template: map[string]any{"older_than": "720h"}}}})
		if err != nil {
			panic(err)
		}
	}
	opts := &batch.ListOptions{Limit: 2}
	for {
		page, err := engine.Templates(ctx, opts)
		if err != nil {
			panic(err)
		}
		for _, t := range page.Items {
			fmt.Println(t.ID, t.Name)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	b, _ := json.Marshal(batch.WebhookPage{NextCursor: "webhook3"})
	fmt.Println(string(b))
	// Output:
	// template1 nightly
	// template2 weekly
	// template3 monthly
	// {"webhooks":[],"next_cursor":"webhook3"}
}

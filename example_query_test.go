package batch_test

import (
	"fmt"

	"github.com/batchworks/batch"
)

func ExampleNewQuery() {
	q, err := batch.NewQuery(map[string]any{"status": "active"}, "record.amount > 140")
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Match(batch.Record{"status": "active", "amount": 150.0}))
	fmt.Println(q.Match(batch.Record{"status": "active", "amount": 100.0}))

	_, err = batch.NewQuery(nil, "record.amount >")
	fmt.Println(batch.CodeOf(err))
	// Output:
	// true
	// false
	// VALIDATION_ERROR
}

package pgstore_test

import (
	"context"
	"log"
	"os"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/pgstore"
)

// Open a store on PostgreSQL and run an engine on it. Several processes
// that do the same share the work: each sees every job, and a job runs in
// the process holding its lease.
func ExampleOpen() {
	ctx := context.Background()
	store, err := pgstore.Open(ctx, os.Getenv("DATABASE_URL"), &pgstore.Options{Schema: "batch"})
	if err != nil {
		log.Fatal(err)
	}
	engine, err := batch.New(store, nil) // the engine closes the store
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close(ctx)
}

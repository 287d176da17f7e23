package pgstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

// noop is a custom operation of "count" items that do nothing.
var noop = batch.OperationFunc(func(_ context.Context, spec *batch.OperationSpec, _ *batch.Env) (*batch.Plan, error) {
	n, _ := spec.Params["count"].(float64)
	return &batch.Plan{
		Count: int64(n),
		Item: func(i int64) (batch.Item, error) {
			return batch.Item{ResourceID: "item" + strconv.FormatInt(i, 10)}, nil
		},
		Run: func(context.Context, *batch.Item) error { return nil },
	}, nil
})

// floorOutcomes writes n outcome rows (job, item index, outcome) with raw
// pgx in 1,000-row transactions, each pipelined in one round trip, and
// returns how long it took.
func floorOutcomes(b *testing.B, url string, n int) time.Duration {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	table := pgx.Identifier{pgtest.Schema(b)}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (job text, idx bigint, outcome bytea, PRIMARY KEY (job, idx))"); err != nil {
		b.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP TABLE "+table) //nolint:errcheck // best effort
	outcome := []byte{1}
	start := time.Now()
	for lo := 0; lo < n; lo += 1000 {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var bt pgx.Batch
			for i := lo; i < min(lo+1000, n); i++ {
				bt.Queue("INSERT INTO "+table+" (job, idx, outcome) VALUES ($1, $2, $3)", "batch1", i, outcome)
			}
			return tx.SendBatch(ctx, &bt).Close()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkNoopItems runs one job of 100,000 no-op items on PostgreSQL in
// one process with 8 workers, beside the floor: raw pgx writing the same
// number of outcome rows in 1,000-row transactions. The issue asks for a
// ratio (floor time / engine time) of at least 0.5.
func BenchmarkNoopItems(b *testing.B) {
	url := pgtest.URL(b)
	n := 100000
	if testing.Short() {
		n = 5000
	}
	var engine, floor time.Duration
	for b.Loop() {
		floor += floorOutcomes(b, url, n)
		s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Schema: pgtest.Schema(b)})
		if err != nil {
			b.Fatal(err)
		}
		e, err := batch.New(s, &batch.Options{Operations: map[string]batch.Operation{"noop": noop}})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		job, err := e.Submit(context.Background(), &batch.Batch{
			Operations: []batch.OperationSpec{{Type: "noop", Params: map[string]any{"count": n}}},
			Options:    batch.BatchOptions{MaxConcurrent: 8},
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		job, err = e.Wait(context.Background(), job.ID)
		if err != nil || job.Status != batch.StateCompleted || job.Progress.Completed != int64(n) {
			b.Fatalf("job: %v %+v", err, job.Progress)
		}
		engine += time.Since(start)
		_ = e.Close(context.Background())
	}
	items := float64(b.N * n)
	b.ReportMetric(items/engine.Seconds(), "engine_items/s")
	b.ReportMetric(items/floor.Seconds(), "floor_items/s")
	b.ReportMetric(floor.Seconds()/engine.Seconds(), "ratio")
}

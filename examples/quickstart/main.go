// Command quickstart runs the Batch API document's "Create Batch Job" request
// on the embedded bbolt store: it creates (or reuses) a database file, puts
// 10,000 demo fields in it, updates the irrigation schedule of every active
// field with irrigation enabled, shows a live progress line, and prints the
// final job status as JSON.
//
//	go run ./examples/quickstart [-db quickstart.db]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/batchworks/batch"
)

// createBatchJob is the request body of the document's "Create Batch Job".
const createBatchJob = `{
    "batch": {
        "type": "field_update",
        "description": "Update irrigation schedules for all active fields",
        "operations": [
            {
                "type": "update",
                "resource": "fields",
                "filter": {
                    "status": "active",
                    "irrigation_enabled": true
                },
                "update": {
                    "irrigation_schedule": {
                        "frequency": "daily",
                        "start_time": "06:00",
                        "duration_minutes": 30
                    }
                }
            }
        ],
        "options": {
            "parallel": true,
            "max_concurrent": 5,
            "retry": {
                "attempts": 3,
                "backoff": "exponential"
            },
            "validation": {
                "mode": "strict",
                "on_error": "skip"
            }
        }
    }
}`

const demoFields = 10000

func main() {
	dbPath := flag.String("db", "quickstart.db", "bbolt database file (created if missing)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dbPath); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dbPath string) error {
	engine, err := batch.Open(dbPath, nil)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := engine.Close(closeCtx); err != nil {
			log.Print(err)
		}
	}()

	// Index the fields the request filters on: the job then reads only
	// the matching records, and its total is known when it is submitted.
	if err := engine.DefineCollection("fields", &batch.CollectionOptions{Indexes: []string{"status", "irrigation_enabled"}}); err != nil {
		return err
	}
	fields, err := engine.Collection("fields")
	if err != nil {
		return err
	}
	if err := seed(ctx, fields); err != nil {
		return err
	}
	if err := fields.WaitIndexes(ctx); err != nil {
		return err
	}

	var body struct {
		Batch json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal([]byte(createBatchJob), &body); err != nil {
		return err
	}
	b, err := batch.DecodeBatch(body.Batch)
	if err != nil {
		return err
	}
	job, err := engine.Submit(ctx, b, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "submitted %s: %d fields to update\n", job.ID, job.Progress.TotalOperations)

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !job.Status.Final() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "\ninterrupted: the job resumes the next time the database is opened")
			return nil
		case <-tick.C:
		}
		if job, err = engine.Job(ctx, job.ID); err != nil {
			return err
		}
		progressLine(job)
	}
	fmt.Fprintln(os.Stderr)

	out, err := json.MarshalIndent(map[string]any{"data": job}, "", "    ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// seed puts the demo fields into an empty collection.
func seed(ctx context.Context, fields *batch.Collection) error {
	n, err := fields.Count(ctx, nil)
	if err != nil || n > 0 {
		return err
	}
	crops := []string{"rice", "corn", "wheat", "soy"}
	recs := make([]batch.Record, demoFields)
	for i := range recs {
		status := "active"
		if i%3 == 2 {
			status = "inactive"
		}
		recs[i] = batch.Record{
			"id":                 fmt.Sprintf("field%05d", i+1),
			"name":               fmt.Sprintf("Field %d", i+1),
			"status":             status,
			"irrigation_enabled": i%8 < 3,
			"crop_type":          crops[i%len(crops)],
			"area_hectares":      float64(5 + i%40),
		}
	}
	fmt.Fprintf(os.Stderr, "putting %d demo fields into %s\n", demoFields, "fields")
	return fields.PutMany(ctx, recs)
}

// progressLine redraws one terminal line with the job's progress.
func progressLine(job *batch.Job) {
	p := job.Progress
	const width = 30
	bar := strings.Repeat("#", p.Percentage*width/100) + strings.Repeat(".", width-p.Percentage*width/100)
	line := fmt.Sprintf("\r[%s] %3d%%  %d/%d done, %d failed  %s", bar, p.Percentage, p.Completed+p.Failed, p.TotalOperations, p.Failed, job.Status)
	if c := p.CurrentOperation; c != nil {
		line += "  at " + c.ResourceID
	}
	fmt.Fprintf(os.Stderr, "%-100s", line)
}

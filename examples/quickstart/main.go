// Command quickstart runs the Batch API document's "Create Batch Job" request
// (create-batch-job.json) on the embedded bbolt store: it puts 10,000 demo
// fields into a fresh database, updates the irrigation schedule of every
// active field with irrigation enabled (a quarter of them: 2,500 items),
// shows the progress, and prints the final job status as JSON on stdout.
//
//	go run ./examples/quickstart [-db quickstart.db]
//
// Without -db the database is a temporary file removed at exit, so every run
// starts afresh with batch1. Progress goes to stderr: a line redrawn in place
// on a terminal, one line per tenth of the items in a log or pipe.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/demo"
)

// createBatchJob is the request body of the document's "Create Batch Job",
// as the document writes it.
//
//go:embed create-batch-job.json
var createBatchJob []byte

// demoFields is how many demo fields the database gets; the document's
// filter (active, irrigation enabled) selects a quarter of them.
const demoFields = 10000

func main() {
	dbPath := flag.String("db", "", "bbolt database file to keep and reuse (default: a temporary file removed at exit)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	out := &output{data: os.Stdout, log: os.Stderr, terminal: isTerminal(os.Stderr), lastStep: -1}
	if err := run(ctx, *dbPath, out); err != nil {
		log.Fatal(err)
	}
}

// output is where the quickstart writes: the final job (JSON) to data, and
// what happens to log, as a redrawn progress line on a terminal or one line
// per step otherwise.
type output struct {
	data, log io.Writer
	terminal  bool
	lastStep  int // the last progress step logged off a terminal; -1 for none
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func run(ctx context.Context, dbPath string, out *output) error {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "batch-quickstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "quickstart.db")
	} else {
		fmt.Fprintf(out.log, "using %s (kept; its earlier jobs stay, so this job's id follows theirs)\n", dbPath)
	}
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
	if err := seed(ctx, fields, out.log); err != nil {
		return err
	}
	if err := fields.WaitIndexes(ctx); err != nil {
		return err
	}

	var body struct {
		Batch json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(createBatchJob, &body); err != nil {
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
	all, err := fields.Count(ctx, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out.log, "submitted %s: the filter (status active, irrigation enabled) selects %d of the %d fields; one item each\n",
		job.ID, job.Progress.TotalOperations, all)

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !job.Status.Final() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out.log, "\ninterrupted: the job resumes the next time the database is opened (with -db)")
			return nil
		case <-tick.C:
		}
		if job, err = engine.Job(ctx, job.ID); err != nil {
			return err
		}
		out.progress(job)
	}
	if out.terminal {
		fmt.Fprintln(out.log)
	}

	data, err := json.MarshalIndent(map[string]any{"data": job}, "", "    ")
	if err != nil {
		return err
	}
	fmt.Fprintln(out.data, string(data))
	return nil
}

// seed puts the demo fields into an empty collection: two in three active,
// three in eight with irrigation enabled, so that the document's filter
// selects a quarter of them.
func seed(ctx context.Context, fields *batch.Collection, w io.Writer) error {
	n, err := fields.Count(ctx, nil)
	if err != nil || n > 0 {
		return err
	}
	fmt.Fprintf(w, "putting %d demo fields into the fields collection\n", demoFields)
	return fields.PutMany(ctx, demo.Fields(demoFields))
}

// progress shows the job's progress: on a terminal one line redrawn in
// place; otherwise a line each time another tenth of the items is done,
// and at the end. Items run concurrently and are counted as their results
// are stored, in groups, so the count moves in steps.
func (o *output) progress(job *batch.Job) {
	p := job.Progress
	counts := fmt.Sprintf("%3d%%  %d/%d items done, %d failed  %s", p.Percentage, p.Completed+p.Failed, p.TotalOperations, p.Failed, job.Status)
	if !o.terminal {
		step := p.Percentage / 10
		if (step == o.lastStep || step == 10) && !job.Status.Final() {
			return // the 100% line is the final one
		}
		o.lastStep = step
		fmt.Fprintln(o.log, "progress "+counts)
		return
	}
	const width = 30
	fill := p.Percentage * width / 100
	// \r returns to the line's start, ESC[K clears what the last draw left.
	fmt.Fprintf(o.log, "\r\x1b[K[%s%s] %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), counts)
}

package batch_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/batchworks/batch"
)

// A custom operation plans its items and runs each one. Items run at least
// once, so a side effect uses Item.Key as its idempotency key.
func ExampleEngine_RegisterOperation() {
	ctx := context.Background()
	var mu sync.Mutex
	sent := map[string]string{} // idempotency key -> message: a resend replaces
	notify := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		to, _ := spec.Params["to"].([]any)
		return &batch.Plan{
			Count: int64(len(to)),
			Item: func(i int64) (batch.Item, error) {
				return batch.Item{ResourceID: fmt.Sprint(to[i])}, nil
			},
			Run: func(ctx context.Context, it *batch.Item) error {
				mu.Lock()
				defer mu.Unlock()
				sent[it.Key()] = "hello " + it.ResourceID
				return nil
			},
		}, nil
	})
	engine, _ := batch.New(batch.NewMemoryStore(), &batch.Options{
		Operations: map[string]batch.Operation{"notify": notify},
	})
	defer engine.Close(ctx)

	job, _ := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "notify", Params: map[string]any{"to": []any{"ana", "bo"}},
	}}}, nil)
	job, _ = engine.Wait(ctx, job.ID)
	fmt.Println(job.Status, job.Progress.Completed)
	keys := make([]string, 0, len(sent))
	for k := range sent {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println(k, sent[k])
	}
	// Output:
	// completed 2
	// batch1/0 hello ana
	// batch1/1 hello bo
}

// A typed operation gets its params decoded into a struct; a mistake in
// them rejects the batch at submission.
func ExampleTypedOperation() {
	ctx := context.Background()
	type greet struct {
		Greeting string `json:"greeting"`
	}
	var mu sync.Mutex
	var out []string
	op := batch.TypedOperation(func(ctx context.Context, it *batch.Item, p greet) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, p.Greeting+" "+it.Record.ID())
		return nil
	})
	engine, _ := batch.New(batch.NewMemoryStore(), &batch.Options{Operations: map[string]batch.Operation{"greet": op}})
	defer engine.Close(ctx)
	fields, _ := engine.Collection("fields")
	_ = fields.PutMany(ctx, []batch.Record{{"id": "f1", "status": "active"}, {"id": "f2", "status": "inactive"}})

	job, _ := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "greet", Resource: "fields", Where: "status == 'active'", Params: map[string]any{"greeting": "hi"},
	}}}, nil)
	_, _ = engine.Wait(ctx, job.ID)
	fmt.Println(out)

	_, err := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: "greet", Params: map[string]any{"greting": "hi"},
	}}}, nil)
	fmt.Println(err)
	// Output:
	// [hi f1]
	// INVALID_BATCH: Invalid batch job configuration; operations[0].params.greting: unknown field "greting"
}

// sensors is a read-only resource: Scan and Get are all a batch needs to
// read it (export, analyze, validate). A resource that batches may change
// adds Put and Delete ([batch.WritableResource]).
type sensors struct{ recs []batch.Record }

func (s sensors) Scan(ctx context.Context, q *batch.Query, fn func(batch.Record) error) error {
	for _, r := range s.recs {
		if q.Match(r) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s sensors) Get(ctx context.Context, id string) (batch.Record, error) {
	for _, r := range s.recs {
		if r.ID() == id {
			return r, nil
		}
	}
	return nil, batch.ErrNotFound
}

func ExampleEngine_RegisterResource() {
	ctx := context.Background()
	engine, _ := batch.New(batch.NewMemoryStore(), nil)
	defer engine.Close(ctx)
	_ = engine.RegisterResource("sensors", sensors{recs: []batch.Record{
		{"id": "s1", "moisture": 0.31}, {"id": "s2", "moisture": 0.12}, {"id": "s3"},
	}})

	oneByOne := false
	job, _ := engine.Submit(ctx, &batch.Batch{
		Operations: []batch.OperationSpec{{
			Type: batch.OpValidate, Resource: "sensors", Where: "true",
			Rules: map[string]string{"has a reading": "moisture != nil", "wet enough": "(moisture ?? 0) > 0.2"},
		}},
		Options: batch.BatchOptions{Parallel: &oneByOne},
	}, nil)
	job, _ = engine.Wait(ctx, job.ID)
	for _, e := range job.Errors {
		fmt.Println(e.ResourceID, e.Error.Message)
	}
	_, err := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
		Type: batch.OpDelete, Resource: "sensors", Where: "true",
	}}}, nil)
	fmt.Println(err)
	// Output:
	// s2 failed rules: wet enough
	// s3 failed rules: has a reading, wet enough
	// INVALID_BATCH: Invalid batch job configuration; operations[0].resource: delete changes records, and resource sensors is read-only (it has no Put and Delete)
}

// A subscriber hears every event; reads from it see the state the event
// reports.
func ExampleEngine_Subscribe() {
	ctx := context.Background()
	engine, _ := batch.New(batch.NewMemoryStore(), nil)
	defer engine.Close(ctx)
	fields, _ := engine.Collection("fields")
	_ = fields.PutMany(ctx, []batch.Record{{"id": "f1"}})

	var mu sync.Mutex
	var heard []string
	unsubscribe := engine.Subscribe(func(ev batch.Event) {
		line := string(ev.Type)
		if ev.Type == batch.EventJobCompleted {
			job, _ := engine.Job(ctx, ev.JobID)
			line += " (job is " + string(job.Status) + ")"
		}
		mu.Lock()
		heard = append(heard, line)
		mu.Unlock()
	})
	defer unsubscribe()

	job, _ := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{Type: batch.OpExport, Resource: "fields"}}}, nil)
	_, _ = engine.Wait(ctx, job.ID)
	mu.Lock()
	fmt.Println(strings.Join(heard, "\n"))
	mu.Unlock()
	// Output:
	// job_created
	// job_started
	// job_completed (job is completed)
}

// A template is a batch with parameters; a job names it and gives them.
func ExampleEngine_CreateTemplate() {
	ctx := context.Background()
	engine, _ := batch.New(batch.NewMemoryStore(), nil)
	defer engine.Close(ctx)
	fields, _ := engine.Collection("fields")
	_ = fields.PutMany(ctx, []batch.Record{{"id": "f1", "crop": "rice"}, {"id": "f2", "crop": "corn"}})

	tpl, err := engine.CreateTemplate(ctx, &batch.Template{
		Name:       "set_status_by_crop",
		Parameters: []batch.Parameter{{Name: "crop", Type: "string", Required: true}, {Name: "status", Type: "string", Enum: []any{"active", "inactive"}}},
		Operations: []batch.OperationSpec{{Type: batch.OpUpdate, Resource: "fields", Template: map[string]any{
			"filter": map[string]any{"crop": "${crop}"},
			"update": map[string]any{"status": "${status}"},
		}}},
	})
	if err != nil {
		panic(err)
	}
	job, err := engine.Submit(ctx, &batch.Batch{TemplateID: tpl.ID, Parameters: map[string]any{"crop": "rice", "status": "inactive"}}, nil)
	if err != nil {
		panic(err)
	}
	job, _ = engine.Wait(ctx, job.ID)
	f1, _ := fields.Get(ctx, "f1")
	f2, _ := fields.Get(ctx, "f2")
	fmt.Println(job.Status, job.TemplateID == tpl.ID, f1["status"], f2["status"])

	_, err = engine.Submit(ctx, &batch.Batch{TemplateID: tpl.ID, Parameters: map[string]any{"crop": "rice", "status": "archived"}}, nil)
	fmt.Println(batch.CodeOf(err))
	// Output:
	// completed true inactive <nil>
	// INVALID_BATCH
}

// A schedule submits its batch at each due time, in its time zone.
func ExampleEngine_CreateSchedule() {
	ctx := context.Background()
	now := time.Date(2025, 1, 18, 12, 0, 0, 0, time.UTC)
	engine, _ := batch.New(batch.NewMemoryStore(), &batch.Options{Now: func() time.Time { return now }})
	defer engine.Close(ctx)

	s, err := engine.CreateSchedule(ctx, &batch.Schedule{
		Name:   "nightly export",
		Batch:  batch.Batch{Operations: []batch.OperationSpec{{Type: batch.OpExport, Resource: "fields"}}},
		Timing: batch.Timing{Frequency: "daily", Time: "00:00", Timezone: "Asia/Tokyo"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.ID, s.NextRunAt.Format(time.RFC3339))

	_, err = engine.CreateSchedule(ctx, &batch.Schedule{
		Name:   "the same work at the same time",
		Batch:  batch.Batch{Operations: []batch.OperationSpec{{Type: batch.OpExport, Resource: "fields"}}},
		Timing: batch.Timing{Cron: "0 15 * * *"},
	})
	fmt.Println(err)
	list, _ := engine.Schedules(ctx, nil)
	fmt.Println(len(list.Items), slices.ContainsFunc(list.Items, func(x *batch.Schedule) bool { return x.ID == s.ID }))
	// Output:
	// schedule1 2025-01-18T15:00:00Z
	// SCHEDULE_CONFLICT: Schedule conflict detected; conflicts with schedule1 at 2025-01-18T15:00:00Z
	// 1 true
}

// A long item watches Stopping: when its job is paused it gives up waiting
// on a slow service, so the pause answers at once, and it runs again on
// resume.
func ExampleStopping() {
	ctx := context.Background()
	started := make(chan struct{}, 2)
	upstream := make(chan struct{}) // a slow service: closed once it answers
	copyOp := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		return &batch.Plan{
			Count: 1,
			Item:  func(int64) (batch.Item, error) { return batch.Item{ResourceID: "backup.tar"}, nil },
			Run: func(ctx context.Context, it *batch.Item) error {
				started <- struct{}{}
				select {
				case <-batch.Stopping(ctx):
					// Pending again, no attempt spent.
					return fmt.Errorf("stopped waiting for upstream: %w", context.Canceled)
				case <-upstream: // the copy went through
					return nil
				}
			},
		}, nil
	})
	engine, err := batch.New(batch.NewMemoryStore(), &batch.Options{Operations: map[string]batch.Operation{"copy": copyOp}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close(ctx)

	job, err := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{Type: "copy"}}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-started
	// The item is waiting on upstream, which has not answered: only
	// Stopping lets the pause return.
	paused, err := engine.Pause(ctx, job.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(paused.Status, paused.Progress.Completed)

	close(upstream) // the service answers; the item's rerun goes through
	if _, err := engine.Resume(ctx, job.ID); err != nil {
		fmt.Println(err)
		return
	}
	done, err := engine.Wait(ctx, job.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(done.Status, done.Progress.Completed)
	// Output:
	// paused 0
	// completed 1
}

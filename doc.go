// Package batch is an embeddable batch-job engine: a Go program submits a
// batch of operations ("update every active field's irrigation schedule",
// "import these 100,000 records", "export the inactive ones") and the engine
// runs it in-process with durable progress, retries, validation and job
// control, on one bbolt file. Package httpapi serves the same engine as the
// Batch API over HTTP.
//
// # Getting started
//
//	engine, err := batch.Open("app.db", nil) // or batch.New(batch.NewMemoryStore(), nil)
//	defer engine.Close(ctx)
//	fields, _ := engine.Collection("fields")
//	fields.PutMany(ctx, records)
//	job, err := engine.Submit(ctx, &batch.Batch{Operations: []batch.OperationSpec{{
//		Type: "update", Resource: "fields",
//		Filter: map[string]any{"status": "active"},
//		Update: map[string]any{"irrigation_enabled": true},
//	}}}, nil)
//	job, err = engine.Wait(ctx, job.ID)
//
// # Jobs and items
//
// A submitted [Batch] becomes a [Job]. Submit checks the whole batch first
// and rejects it with an INVALID_BATCH [*Error] carrying one [Detail] per
// problem (a JSON path such as "operations[0].filter", a code and a
// message); nothing is stored for a rejected batch. [Engine.Validate] runs
// the same checks without submitting.
//
// A job's operations run in the batch's order, one after another. Each
// expands into items when it starts, after every effect of the operation
// before it is committed: one per record its filter selects then (update,
// delete, calculate, validate, and custom operations over a resource), one
// per record given (create, import), or one per operation (export). So
// [create X, update X] updates X, and an export after them sees both.
// Items of one operation run in parallel up to max_concurrent.
//
// progress.total_operations counts items. At submission it counts what is
// known then without reading records (list items, and the records an index
// of a built-in collection counts; see Indexes); as each operation starts
// and selects, the total becomes exact for it. percentage never exceeds 100, and a completed job
// reads 100. Record selections are listed into the store in chunks, so a
// job over millions of records never holds them all in memory.
//
// Jobs move through the states queued, running, paused, completed, failed
// and cancelled. A job whose items all ran is completed even if some items
// failed (the counts say so); it fails when it cannot finish: an item
// failed under validation.on_error "abort", more items failed than
// max_failure_rate allows, the job ran past its timeout, or the store
// failed. At most [Options].MaxRunningJobs jobs run at once; the rest wait
// queued in submission order. A pause lets the items in flight finish; an
// item that takes long can watch [Stopping] and return early.
//
// # Options
//
// [BatchOptions] follows the API document: parallel and max_concurrent bound
// the items in flight; retry.attempts is the total number of tries and
// retry.backoff picks immediate, linear, exponential (doubling from
// retry.delay with jitter, capped at retry.max_delay) or custom: a formula
// in the batch (retry.formula, an expr expression over attempt,
// error_type, error_code, delay and max_delay giving seconds, such as
// "error_type == 'timeout' ? 30 : delay * attempt"; see [RetryOptions]) or
// a [BackoffFunc] registered with [Engine.RegisterBackoff] and named by
// retry.function. Validation errors and missing records are never retried;
// wrap an error with [Permanent] to stop retries of your own errors.
// validation.mode "strict" validates every item of an operation before any
// of its items runs (each operation when it starts, since its records are
// selected then); "lenient" validates each item just before it runs.
// item_timeout bounds one try of an item, timeout the whole job. A try that
// ignores its context past item_timeout is left behind with its own copy
// of the item; [Engine.Close] waits for such tries, up to its context.
//
// Statistics are computed at each read: average_operation_time is the
// items' run time plus their share of the commits that stored them, over
// the finished items; estimated_remaining_time and estimated_completion
// come from the rate at which the job has been finishing items since it
// last started. Durations are written the way the document writes them
// ("1.2s", "850ms", "40us"; ASCII only), and the durations of a batch
// (item_timeout, retry.delay, ...) are stored exactly: "1ns" stays one
// nanosecond, "1.25s" stays 1.25s.
//
// Item errors carry one of the document's four types: VALIDATION_ERROR,
// RESOURCE_ERROR, SYSTEM_ERROR (including a panicking handler, which fails
// only its item) and TIMEOUT_ERROR.
//
// # Operations
//
// Every operation type of the document is built in. Data operations:
// create (records), update (filter or where, plus update, merged into each
// record as an RFC 7396 merge patch: a null removes a key), delete (filter
// or where; one of them is required, use "where": "true" for everything),
// import (source {"format": "json"|"ndjson"|"csv", "data": ...},
// upserting by id; a source too big to hold is stored first with
// [Engine.Upload] and named as {"format": ..., "upload": "upload1"}, then
// read as a stream, a record at a time) and export (optional filter, destination {"format"},
// producing an artifact; read it with [Engine.OpenArtifact]). Processing:
// calculate (set fields from expressions), validate (rules; each failing
// record is a failed item), analyze (count/sum/avg/min/max, optionally
// grouped, in the job's results) and generate (the same aggregates as a
// CSV or JSON report artifact). Maintenance: backup (a consistent snapshot
// artifact with size and SHA-256), restore (the built-in collections back
// to a backup), cleanup (finished jobs older than older_than) and optimize
// (compacts the store file); the payload fields are on [OperationSpec].
//
// Filters are equality maps on top-level fields. A where string (and a
// calculate set or validate rule) is an expr expression
// (github.com/expr-lang/expr) over the record, compiled once per job (the
// engine compiles the [Query] of every plan, custom operations' too, and a
// bad where rejects the batch) and sandboxed: it sees the record and expr's
// builtins, nothing else. A bare name is the record's field ("status ==
// 'active' && area_ha > 2"); a field the record lacks is nil ("crop_type !=
// nil"); `record` is the whole record, so `record.area_ha` works too. A
// where expression that fails on a record (comparing a missing field with
// a number, say) does not select it; write `(area ?? 0) > 10`.
//
// Every expression (where, calculate's set, validate's rules, template
// placeholders) is bounded: at most [MaxExpressionLength] bytes and
// [MaxExpressionDepth] levels of brackets, and each evaluation has a budget
// of memory (8 MiB built by strings, repeat, replace, join, concat,
// flatten, toJSON, string and +), of steps (a million iterations of map,
// filter, reduce and the like) and of time (250 ms), and stops when its
// job or request ends. An expression that cannot compile, or that blows a
// budget on a record while the batch is being checked, is INVALID_BATCH;
// one that blows it while the job runs fails that item. Checking a batch
// counts the records it selects within 10 seconds.
//
// Record ids are non-empty strings of at most [MaxRecordIDLength] bytes.
// Request JSON is strict ([CheckJSON]): a key given twice in an object, or
// a number beyond float64, is INVALID_BATCH naming its path.
//
// Programs add their own operation types with [Engine.RegisterOperation]
// (or replace built-in ones; [TypedOperation] decodes params into a struct)
// and their own data with [Engine.RegisterResource] (a [Resource] is read
// with Scan and Get; a [WritableResource] also takes Put and Delete).
// [Options].Middleware wraps every item's Run. The built-in document
// collections ("fields" by default; more with [Engine.DefineCollection] or
// [Options].Collections) store JSON records in the engine's own store.
//
// Registrations live in the process, not in the store: register a
// program's operation types each time it opens the store ([Options].Operations
// does it before stored jobs resume). A stored job whose operation types
// are not all registered waits, queued, until they are.
//
// # Schedules
//
// [Engine.CreateSchedule] submits a batch at each due time of its timing
// (daily at a wall-clock time in a time zone, weekly, monthly, once, or a
// cron expression), DST included. A run the scheduler reaches more than a
// minute after its due time (the process was down) is a missed run, and
// when several runs are due at once all of them are; the schedule's
// catch_up policy decides: skip (default) drops them, run_once submits one
// job for the latest. A run whose previous job is still unfinished is skipped
// unless overlap is allow. Two active schedules conflict (SCHEDULE_CONFLICT)
// when they would submit the same work at the same time.
//
// # Indexes
//
// A built-in collection can index top-level fields ([CollectionOptions]
// Indexes, or [Collection.AddIndex], which builds the index in the
// background). An equality filter on indexed fields then reads only the
// matching ids, and so does a where expression for its terms of the form
// record.field == literal joined by and (the expression still decides each
// record it reads). The rest of a filter is compared on the stored bytes;
// only a where expression decodes whole records. Index entries change in
// the same transaction as their record, on every write path (Put, Delete,
// the built-in operations, restore), so an index never disagrees with the
// data. Declared indexes are stored and kept up to date by every later
// process until [Collection.DropIndex].
// A job's selection reads each record at most once to select, count and
// list it.
//
// # Durability
//
// An item counts as done only once its outcome is stored. One committer
// writes for the whole engine: item outcomes, submissions, job transitions
// and the other changes ready at the same moment share one transaction,
// never one fsync per item (a one-item job costs three write transactions,
// often shared with other jobs). Reopening a store resumes every job that
// was running: finished items are not run again, unfinished ones are, and
// the counters always equal the stored outcomes. A failed try that will be
// retried is stored with its item too, so the retry budget survives Close
// and a crash.
//
// Events form a transactional outbox: the audit entry, the webhook
// deliveries and the schedule notifications an event calls for are written
// in the same transaction as the change that causes it, and handed to
// [Engine.Subscribe] callbacks, the webhook sender, the mail sender and the
// [Observer] only once it has committed. Nothing is written for webhooks
// that do not exist.
//
// For the built-in operations on a built-in collection, the record change
// and the item's outcome commit in the same transaction, so a crash can
// neither lose nor double an effect. Everything else, custom operations and
// programs' own resources, runs at least once: after a crash an item whose
// outcome was not yet stored runs again. Make such handlers idempotent;
// [Item.Key] (job id and item index) is a stable idempotency key for that.
//
// # Tenancy
//
// Every job, template, schedule and webhook belongs to the principal that
// created it ([WithPrincipal], [SubmitOptions].Owner). The HTTP API shows a
// principal only its own objects, and nothing it gets back, errors and
// schedule conflicts included, names another principal's. The built-in
// collections and registered resources are the service's shared data:
// every principal that may run batches reads and writes them, unless the
// embedding program decides otherwise per principal, operation and
// resource with [Options].Authorize (FORBIDDEN when it refuses).
//
// A principal is plain or an administrator ([WithAdmin]; in the HTTP API,
// httpapi.Options.Admin). backup, restore and optimize act on the whole
// store and need an administrator (FORBIDDEN otherwise); a plain
// principal's cleanup deletes only its own finished jobs (their audit
// trails stay until retention removes them), an administrator's everyone's
// and old deliveries and audit entries too, as the retention loop does. A
// schedule saved by an administrator runs as one. A context without a
// principal is the embedding program itself and may do everything.
//
// # Storage faults
//
// Opening a file that is not a store, or one cut short, fails with an
// error naming the file and what is wrong, and leaves the file as it was;
// a file another process holds fails saying it is locked. A write the disk
// has no room for (or past [BoltOptions].MaxSize) fails with STORAGE_FULL
// (HTTP 507) and keeps nothing of itself; a job that failed for it, or for
// another system reason, can be resumed with [Engine.Resume] once there is
// room: it continues where it stopped. Backups and restores stage their
// files in a directory beside the store file ("<file>.tmp"), emptied of
// leftovers whenever the store opens. optimize lets reads go on while it
// copies and waits a bounded time for the store, failing its item rather
// than freezing other work.
//
// # Progress and observability
//
// [Engine.Progress] is a channel of a job's snapshots for a progress bar:
// the current state first, then each change (at most one per
// [ProgressInterval], the newest winning when the reader lags), closed after
// the final state. [Engine.Watch] adds the lifecycle events in between, in
// the order they happened; httpapi serves it as Server-Sent Events.
//
// [Options].Logger gets every job transition at Info (job id, type,
// principal, counts), every failed item attempt at Warn with its code, and
// a panicking handler at Error with its whole stack; the item's stored
// error keeps the panic's value and a trimmed stack for the job's owner.
// [Options].Observer sees transitions, item attempts, commits, webhook
// deliveries and schedule fires; the subpackage otelbatch records them as
// OpenTelemetry metrics and spans.
//
// # Dry runs and reverts
//
// [Engine.DryRun] (POST /jobs?dry_run=true) answers what a batch would do
// now without storing or changing anything: per operation, how many
// records it selects, up to ten of them as they are and as they would
// become, the failures strict validation would report, and an estimate of
// its run time from the engine's recent rate for that operation type.
//
// Every change a job makes to a built-in collection record (create, update,
// delete, import, calculate, restore) writes the record's before-image in
// the same transaction, so the images are exact after a crash. For
// options.undo_retention after the job finishes (default
// [Options].UndoRetention, 7 days; "0s" keeps none) [Engine.Revert]
// (POST /jobs/{job_id}/revert) can put every record back: a new job, linked
// both ways (reverts, reverted_by), that undoes the operations in reverse
// order. A record changed since by anyone else is not overwritten: its item
// fails with CONFLICT naming the later change, unless the revert is forced.
// [Engine.Cleanup] removes before-images past their retention.
//
// # Concurrency
//
// An [Engine] is safe for concurrent use and owns every goroutine it starts;
// [Engine.Close] stops them all. Reading a job's status never waits for the
// writer: running jobs are answered from memory, and the engine's lock is
// never held across a store call. A job keeps nothing of the context it was
// submitted with but, when the [Observer] is a [TracePropagator], its trace
// carrier.
//
// # Several processes
//
// A [Store] that is also a [Claimer] (package pgstore, on PostgreSQL) is
// shared by several engine processes. Each job runs in the process holding
// its lease; a big operation's items are split into leased ranges that the
// processes with a free slot help with; pause and cancel reach the running
// process through the store; one process at a time sends webhook
// deliveries and fires schedules. A dead process's leases expire and the
// others resume its work where its committed outcomes stop. Package
// batchtest holds the Store conformance suite for new backends.
package batch

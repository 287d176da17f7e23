package batch

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// Operation is an operation type in the engine's registry: "update",
// "export", or a program's own. It checks one operation of a batch and
// plans its items. Register one with [Engine.RegisterOperation].
type Operation interface {
	// Plan checks spec and returns how to run it. It is called once when a
	// batch is submitted (env.JobID is then "") and again whenever the job
	// starts or resumes, so it must not have side effects. Problems with
	// spec are reported as an INVALID_BATCH *Error whose details' fields
	// are relative to the operation ("filter.status"); any other error is
	// reported as one detail.
	Plan(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error)
}

// OperationFunc adapts a function to [Operation].
type OperationFunc func(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error)

// Plan calls f.
func (f OperationFunc) Plan(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	return f(ctx, spec, env)
}

// Plan says what items an operation has and how to run each one. Items come
// either from a resource (Resource set: one item per record Query selects,
// listed when the job starts) or from a list (Count items, built by Item).
type Plan struct {
	// Resource and Query make one item per selected record. The record is
	// read again just before its item runs and handed over as Item.Record.
	Resource Resource
	Query    *Query
	// Count and Item make a list of items when Resource is nil. Item must
	// build the same item for the same index every time: it is called
	// again when a job resumes.
	Count int64
	Item  func(i int64) (Item, error)
	// Validate checks an item before it runs (see ValidationOptions).
	// Optional; its errors fail the item with VALIDATION_ERROR unless they
	// carry another code.
	Validate func(ctx context.Context, item *Item) error
	// Run does the item's work. It should honour ctx. Returning an *Error
	// picks the item's error code (see [Code]); other errors are
	// SYSTEM_ERROR. A panic fails the item with SYSTEM_ERROR.
	Run func(ctx context.Context, item *Item) error

	// apply, set by built-in operations on built-in collections, makes the
	// item's change inside the transaction that stores its outcome.
	apply func(tx Tx, item *Item) error
	// prepare, set beside apply when the collection validates records,
	// computes and validates the record apply will write, outside the
	// commit.
	prepare func(ctx context.Context, item *Item) error
	// coll is the built-in collection apply changes: the runner keeps the
	// before-image of each record apply changes (see undo.go).
	coll *Collection
	// preview computes the record a dry run shows as it would become
	// (nil, nil: it would be deleted), for record-driven built-ins.
	preview func(Record) (Record, error)
	// sample, when set, gives a dry run's sample of an item instead.
	sample func(ctx context.Context, it *Item) (before, after Record, err error)
}

// Item is one unit of work of a job.
type Item struct {
	JobID string
	// Index is the item's position in the job, from 0.
	Index int64
	// Operation is the index of the item's operation in the batch.
	Operation int
	// Type is the operation type.
	Type       string
	ResourceID string
	// Record is the record the item works on, when there is one.
	Record Record
	// Result, set by Run, is reported in the job's results.
	Result *Result

	// prev is the stored record a prepared change was computed from.
	prev Record
	// forced is set by a revert that overwrote a later change.
	forced bool
}

// Key returns a key unique to this item of this job, stable across retries
// and restarts: the idempotency key for side effects of custom operations,
// which run at least once.
func (it *Item) Key() string {
	return it.JobID + "/" + strconv.FormatInt(it.Index, 10)
}

// Env is what an [Operation] can reach while planning and running.
type Env struct {
	// JobID is the job being planned, or "" while a batch is validated.
	JobID string
	// Operation is the index of the operation in its batch.
	Operation int
	e         *Engine
}

// Resource returns the resource or built-in collection called name, or a
// NOT_FOUND *Error.
func (env *Env) Resource(name string) (Resource, error) {
	r, ok := env.e.resource(name)
	if !ok {
		return nil, notFound("resource", name)
	}
	return r, nil
}

// WriteArtifact stores a file for the job under name, written by write,
// and returns its description. Writing the same name again replaces it.
func (env *Env) WriteArtifact(ctx context.Context, name, contentType string, write func(w io.Writer) error) (*Artifact, error) {
	if env.JobID == "" {
		return nil, fmt.Errorf("batch: no job to write artifact %q for", name)
	}
	return env.e.writeArtifact(ctx, env.JobID, name, contentType, write)
}

// The built-in operation types, as the API document lists them.
const (
	OpCreate    = "create"
	OpUpdate    = "update"
	OpDelete    = "delete"
	OpImport    = "import"
	OpExport    = "export"
	OpBackup    = "backup"
	OpRestore   = "restore"
	OpCleanup   = "cleanup"
	OpOptimize  = "optimize"
	OpCalculate = "calculate"
	OpAnalyze   = "analyze"
	OpGenerate  = "generate"
	OpValidate  = "validate"
	// OpRevert is the operation of the jobs [Engine.Revert] makes; it
	// cannot be submitted directly.
	OpRevert = "revert"
)

// registerBuiltins fills the registry with the built-in operations.
func (e *Engine) registerBuiltins() {
	e.ops[OpCreate] = OperationFunc(planCreate)
	e.ops[OpUpdate] = OperationFunc(planUpdate)
	e.ops[OpDelete] = OperationFunc(planDelete)
	e.ops[OpImport] = OperationFunc(planImport)
	e.ops[OpExport] = OperationFunc(planExport)
	e.ops[OpBackup] = OperationFunc(planBackup)
	e.ops[OpRestore] = OperationFunc(planRestore)
	e.ops[OpCleanup] = OperationFunc(planCleanup)
	e.ops[OpOptimize] = OperationFunc(planOptimize)
	e.ops[OpCalculate] = OperationFunc(planCalculate)
	e.ops[OpAnalyze] = OperationFunc(planAnalyze)
	e.ops[OpGenerate] = OperationFunc(planGenerate)
	e.ops[OpValidate] = OperationFunc(planValidate)
	e.ops[OpRevert] = OperationFunc(planRevert)
}

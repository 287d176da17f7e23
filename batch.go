package batch

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures an [Engine]. A nil *Options, or any zero field, means
// the default given on that field.
type Options struct {
	// Authorize, if set, is asked before a batch is accepted whether its
	// owner may run each of its operations on the resource it names (see
	// the package documentation, "Tenancy"); an error refuses the batch with
	// FORBIDDEN. It must be safe for concurrent use.
	Authorize func(ctx context.Context, a Access) error
	// Logger receives the engine's logs. nil discards them.
	Logger *slog.Logger
	// Observer sees job transitions, item attempts, commits, deliveries and
	// schedule fires. nil observes nothing at no cost.
	Observer Observer
	// Now is the engine's clock, a seam for tests. nil means time.Now.
	Now func() time.Time
	// MaxRunningJobs bounds jobs running at once; others wait queued.
	// 0 means [DefaultMaxRunningJobs]. Each running job has its own
	// workers (its batch's max_concurrent), so CPU-bound work wants few
	// slots; many small jobs want many, since a one-item job spends most of
	// its life waiting for the group commit it shares with the others.
	MaxRunningJobs int
	// CommitBatchSize is the most item outcomes written in one transaction.
	// 0 means [DefaultCommitBatchSize].
	CommitBatchSize int
	// CommitDelay is how long the committer waits for more outcomes once one
	// arrives, before writing a batch smaller than CommitBatchSize. It does
	// not wait when a caller waits for a write (a submission, a transition)
	// or for a job's last item: what arrives during a commit makes the next
	// one. 0 means [DefaultCommitDelay]; a negative value writes at once.
	CommitDelay time.Duration
	// Collections are the built-in document collections defined from the
	// start. nil means {"fields"}; add more with [Engine.DefineCollection].
	Collections []string
	// Bolt configures the bbolt file [Open] opens; ignored by [New].
	Bolt *BoltOptions

	// Retention is how long finished jobs are kept: the engine runs
	// [Engine.Cleanup] for jobs that finished longer ago than this, shortly
	// after it opens and then every hour. 0 means [DefaultRetention] (30
	// days); a negative value disables it.
	Retention time.Duration
	// UndoRetention is how long after a job finishes the before-images of
	// the built-in records it changed are kept, so that [Engine.Revert]
	// can put them back; a batch's options.undo_retention overrides it.
	// 0 means [DefaultUndoRetention] (7 days); a negative value keeps none.
	UndoRetention time.Duration

	// AllowPrivateWebhooks lets webhook URLs point at loopback, private and
	// link-local addresses. Default false: such URLs are refused when a
	// webhook is saved and every connection of a delivery is checked.
	AllowPrivateWebhooks bool
	// WebhookRetryDelay is the first delay before a failed delivery is
	// tried again; it doubles per try up to an hour. 0 means
	// [DefaultWebhookRetryDelay].
	WebhookRetryDelay time.Duration
	// WebhookAttempts is how many times a delivery is tried before it is
	// given up as failed. 0 means [DefaultWebhookAttempts].
	WebhookAttempts int
	// WebhookTimeout bounds one delivery attempt. 0 means
	// [DefaultWebhookTimeout].
	WebhookTimeout time.Duration

	// SchedulerPoll is the longest the scheduler sleeps before it looks at
	// the clock again. 0 means [DefaultSchedulerPoll]. Tests that drive Now
	// set it short.
	SchedulerPoll time.Duration
	// ClaimPoll is how often an engine on a store shared by several
	// processes (a [Claimer], such as pgstore) renews its job leases, takes
	// over jobs nobody runs, and picks up pause and cancel requests made
	// elsewhere. 0 means [DefaultClaimPoll]. Unused on other stores. A
	// store that is also a [Notifier] wakes the engine sooner when another
	// process shares work, queues a job or asks for a pause or cancel.
	ClaimPoll time.Duration
	// Middleware wraps every try of every item's Run (logging, tracing,
	// panics); the first is the outermost. See [Middleware].
	Middleware []Middleware
	// Mailer sends schedule notification e-mails. With nil, a schedule
	// asking for e-mail is refused (INVALID_BATCH).
	Mailer Mailer

	// Operations, Resources and Backoffs are registered before the engine
	// resumes the store's unfinished jobs, as if by RegisterOperation,
	// RegisterResource and RegisterBackoff. A job that resumes needs the
	// custom operations, resources and backoff functions it was submitted
	// with: register them here, not after Open returns.
	Operations map[string]Operation
	Resources  map[string]Resource
	Backoffs   map[string]BackoffFunc
}

// Defaults for [Options].
const (
	DefaultMaxRunningJobs  = 16
	DefaultCommitBatchSize = 1000
	DefaultCommitDelay     = time.Millisecond
	DefaultUndoRetention   = 7 * 24 * time.Hour
)

// defaultItemEstimate seeds the per-item time used for estimated_completion
// before the engine has finished a job.
const defaultItemEstimate = 10 * time.Millisecond

// Engine runs batch jobs over a [Store]. It is safe for concurrent use. Make
// one per store with [Open] or [New], register operations, resources and
// backoff functions, submit batches, and [Engine.Close] it when done.
type Engine struct {
	store Store
	// claimer is the store when several processes share it, else nil;
	// token then names this engine in the records of the jobs it runs.
	claimer Claimer
	token   string
	// notifier is the claimer when it implements Notifier, else nil;
	// othersWake asks notifyLoop to notify the other processes.
	notifier   Notifier
	othersWake chan struct{}
	// remote is closed and replaced whenever another process notifies
	// (under remoteMu).
	remoteMu sync.Mutex
	remote   chan struct{}
	// helping is set while this engine helps with another's shared pass;
	// helpCtx ends the help at Close, and helpWG waits for it.
	helping atomic.Bool
	// rangesHeld are the range leases runs of this engine hold (under mu).
	rangesHeld map[string]bool
	helpCtx    context.Context
	helpStop   context.CancelFunc
	helpWG     sync.WaitGroup
	log        *slog.Logger
	now        func() time.Time
	opts       Options

	// helpPlan is the plan the last help used (share.go), kept while its
	// pass lasts.
	helpPlan atomic.Pointer[helpPlan]
	// cpu are the CPU tokens the workers of quick passes take turns on
	// (pacer.go).
	cpu chan struct{}

	// ctx is cancelled by Close once running items have had their time.
	ctx    context.Context
	cancel context.CancelFunc
	// wg tracks every goroutine the engine starts.
	wg sync.WaitGroup
	// attempts tracks item attempts left behind at their item_timeout.
	attempts  sync.WaitGroup
	committer *committer
	// obs is Options.Observer; nil observes nothing.
	obs Observer

	// mu guards the registries, the live jobs and the queue.
	mu          sync.Mutex
	ops         map[string]Operation
	resources   map[string]Resource
	collections map[string]*Collection
	backoffs    map[string]BackoffFunc
	formulas    sync.Map           // compiled retry formulas by source
	runs        map[string]*jobRun // queued and running jobs
	queue       []*jobRun          // queued jobs, in order
	running     int
	closed      bool
	changed     chan struct{} // closed and replaced on every job state change

	// waitMu guards waiters: per job, a channel closed on its next change,
	// so each Wait wakes for its own job only.
	waitMu  sync.Mutex
	waiters map[string]*jobWaiters

	// listCache holds decoded finished jobs for list pages.
	listCache recCache
	// itemEst is the smoothed wall time per item (ns), for estimates.
	itemEst atomic.Int64
	// rates are the smoothed wall times per item (ns) by operation type,
	// for dry-run estimates; guarded by mu.
	rates map[string]int64

	// outboxWake wakes the webhook outbox when deliveries are stored.
	outboxWake chan struct{}
	// mailWake wakes the mail sender when notification e-mails are stored.
	mailWake chan struct{}
	// schedulerWake wakes the scheduler when schedules change.
	schedulerWake chan struct{}

	// idxMu guards idx, the field indexes of each collection name.
	idxMu sync.Mutex
	idx   map[string]*collIndexes

	// subMu guards the event subscribers.
	subMu  sync.Mutex
	subs   map[uint64]func(Event)
	subSeq uint64
}

// Open opens (creating it if needed) the bbolt file at path and returns an
// engine over it, resuming the jobs that were running when the file was
// last closed or the process died. opts may be nil.
func Open(path string, opts *Options) (*Engine, error) {
	var bo *BoltOptions
	if opts != nil {
		bo = opts.Bolt
	}
	store, err := OpenBoltStore(path, bo)
	if err != nil {
		return nil, err
	}
	e, err := New(store, opts)
	if err != nil {
		store.Close()
		return nil, err
	}
	return e, nil
}

// collectionName is what a built-in collection may be called.
var collectionName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// New returns an engine over store, resuming its running and queued jobs.
// opts may be nil. Bad option values give a VALIDATION_ERROR *Error. The
// engine owns store from now on and closes it in [Engine.Close].
func New(store Store, opts *Options) (*Engine, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case o.MaxRunningJobs < 0:
		return nil, NewError(CodeValidation, "MaxRunningJobs must not be negative")
	case o.CommitBatchSize < 0:
		return nil, NewError(CodeValidation, "CommitBatchSize must not be negative")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxRunningJobs == 0 {
		o.MaxRunningJobs = DefaultMaxRunningJobs
	}
	if o.CommitBatchSize == 0 {
		o.CommitBatchSize = DefaultCommitBatchSize
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = DefaultCommitDelay
	}
	if o.Collections == nil {
		o.Collections = []string{"fields"}
	}
	o.WebhookRetryDelay = cmp.Or(o.WebhookRetryDelay, DefaultWebhookRetryDelay)
	o.WebhookAttempts = cmp.Or(o.WebhookAttempts, DefaultWebhookAttempts)
	o.WebhookTimeout = cmp.Or(o.WebhookTimeout, DefaultWebhookTimeout)
	o.SchedulerPoll = cmp.Or(o.SchedulerPoll, DefaultSchedulerPoll)
	o.ClaimPoll = cmp.Or(o.ClaimPoll, DefaultClaimPoll)
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		store:         store,
		log:           o.Logger,
		now:           o.Now,
		opts:          o,
		ctx:           ctx,
		cancel:        cancel,
		ops:           make(map[string]Operation),
		resources:     make(map[string]Resource),
		collections:   make(map[string]*Collection),
		backoffs:      make(map[string]BackoffFunc),
		runs:          make(map[string]*jobRun),
		cpu:           cpuTokens(),
		rates:         make(map[string]int64),
		changed:       make(chan struct{}),
		waiters:       make(map[string]*jobWaiters),
		subs:          make(map[uint64]func(Event)),
		outboxWake:    make(chan struct{}, 1),
		mailWake:      make(chan struct{}, 1),
		schedulerWake: make(chan struct{}, 1),
		othersWake:    make(chan struct{}, 1),
		remote:        make(chan struct{}),
		obs:           o.Observer,
	}
	e.itemEst.Store(int64(defaultItemEstimate))
	if e.claimer, _ = store.(Claimer); e.claimer != nil {
		e.token = newToken()
		e.helpCtx, e.helpStop = context.WithCancel(ctx)
		e.notifier, _ = store.(Notifier)
	}
	for _, name := range o.Collections {
		if err := e.DefineCollection(name, nil); err != nil {
			cancel()
			return nil, err
		}
	}
	e.registerBuiltins()
	for name, op := range o.Operations {
		if err := e.RegisterOperation(name, op); err != nil {
			cancel()
			return nil, err
		}
	}
	for name, r := range o.Resources {
		if err := e.RegisterResource(name, r); err != nil {
			cancel()
			return nil, err
		}
	}
	for name, fn := range o.Backoffs {
		if err := e.RegisterBackoff(name, fn); err != nil {
			cancel()
			return nil, err
		}
	}
	if err := ensureJobIndex(store); err != nil {
		cancel()
		return nil, err
	}
	e.removeStaleTemp()
	e.committer = newCommitter(e)
	e.wg.Go(e.committer.loop)
	e.startRetention()
	e.wg.Go(e.outboxLoop)
	e.wg.Go(e.mailLoop)
	e.wg.Go(e.schedulerLoop)
	if e.claimer != nil {
		e.wg.Go(e.claimLoop)
	}
	if e.notifier != nil {
		e.wg.Go(e.notifyLoop)
	}
	if err := e.recover(); err != nil {
		e.Close(context.Background())
		return nil, err
	}
	return e, nil
}

// every calls fn every interval until the engine closes, the first time
// at once when now is set, and also whenever wake (nil for none) receives,
// with woken set: the engine's periodic loops.
func (e *Engine) every(interval time.Duration, now bool, wake <-chan struct{}, fn func(woken bool)) {
	if now {
		fn(false)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		woken := false
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case _, ok := <-wake:
			if !ok { // closed: the ticker alone
				wake = nil
				continue
			}
			woken = true
		}
		fn(woken)
	}
}

// Close stops the engine: no new jobs are taken, running jobs stop feeding
// items, and items in flight may finish until ctx ends; then they are
// cancelled. Attempts left behind at their item_timeout are waited for
// too, until ctx ends. Unfinished jobs stay running in the store and
// resume when the store is opened again. Close closes the store. It is
// safe to call more than once; later calls return nil.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	runs := make([]*jobRun, 0, len(e.runs))
	for _, r := range e.runs {
		if r.exited != nil { // started; queued ones just stay queued
			runs = append(runs, r)
		}
	}
	e.queue = nil
	e.mu.Unlock()

	if e.helpStop != nil {
		e.helpStop()
		e.helpWG.Wait()
	}
	for _, r := range runs {
		r.stop(stopClose, nil)
	}
	finished := make(chan struct{})
	go func() {
		for _, r := range runs {
			<-r.exited
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		e.cancel() // cancels every item context
		<-finished
	}
	abandoned := make(chan struct{})
	go func() {
		e.attempts.Wait()
		close(abandoned)
	}()
	select {
	case <-abandoned:
	case <-ctx.Done():
		e.log.Warn("closing with item attempts still running past their item_timeout")
	}
	e.committer.close()
	e.cancel()
	e.wg.Wait()
	e.releaseLeads()
	return e.store.Close()
}

// RegisterOperation adds an operation type, or replaces the one of that
// name (built-ins included). Names are what batches put in "type".
//
// An operation type must be registered again each time the store is
// opened, before a stored job that uses it can go on: a queued or
// interrupted job (and a paused one that is resumed) whose types are not
// all registered stays queued and waits, and registering the last one
// starts it. Give them in [Options].Operations to have such jobs resume at
// once when the engine opens.
func (e *Engine) RegisterOperation(name string, op Operation) error {
	return register(e, e.ops, name, op, op == nil, "operation needs a name and an implementation", e.dispatchLocked)
}

// RegisterResource makes r available to batches under name. It replaces a
// built-in collection of the same name.
func (e *Engine) RegisterResource(name string, r Resource) error {
	return register(e, e.resources, name, r, r == nil, "resource needs a name and an implementation", func() { delete(e.collections, name) })
}

// RegisterBackoff registers a [BackoffFunc] that batches select with
// {"backoff": "custom", "function": name}.
func (e *Engine) RegisterBackoff(name string, fn BackoffFunc) error {
	return register(e, e.backoffs, name, fn, fn == nil, "backoff needs a name and a function", nil)
}

// register stores v under name in m, one of the engine's registries, then
// calls locked unless it is nil, both with the engine's lock held. A
// missing name or value (missing) is a VALIDATION_ERROR saying needs.
func register[V any](e *Engine, m map[string]V, name string, v V, missing bool, needs string, locked func()) error {
	if name == "" || missing {
		return NewError(CodeValidation, "%s", needs)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	m[name] = v
	if locked != nil {
		locked()
	}
	return nil
}

// DefineCollection defines (or redefines) a built-in document collection,
// stored as JSON records in the engine's store. opts may be nil.
func (e *Engine) DefineCollection(name string, opts *CollectionOptions) error {
	if !collectionName.MatchString(name) {
		return NewError(CodeValidation, "invalid collection name %q: use 1 to 64 letters, digits, '_', '-' or '.'", name)
	}
	var indexes []string
	if opts != nil {
		indexes = opts.Indexes
	}
	for _, f := range indexes {
		if err := checkIndexField(f); err != nil {
			return err
		}
	}
	ix, err := e.indexes(name)
	if err != nil {
		return fmt.Errorf("batch: collection %s: reading its indexes: %w", name, err)
	}
	c := &Collection{name: name, bucket: collectionsRoot + "/" + name, store: e.store, e: e, idx: ix}
	if opts != nil {
		c.validate = opts.Validate
	}
	for _, f := range indexes {
		if err := c.AddIndex(context.Background(), f); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.collections[name] = c
	delete(e.resources, name)
	return nil
}

// Collection returns the built-in collection name, or a NOT_FOUND *Error.
func (e *Engine) Collection(name string) (*Collection, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.collections[name]
	if !ok {
		return nil, notFound("collection", name)
	}
	return c, nil
}

// resource returns the resource or collection registered as name.
func (e *Engine) resource(name string) (Resource, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.collections[name]; ok {
		return c, true
	}
	r, ok := e.resources[name]
	return r, ok
}

func (e *Engine) operation(name string) (Operation, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	op, ok := e.ops[name]
	return op, ok
}

func (e *Engine) backoff(name string) (BackoffFunc, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn, ok := e.backoffs[name]
	return fn, ok
}

// notifyLocked wakes everything waiting on a job state change. e.mu is held.
func (e *Engine) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *Engine) notify() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notifyLocked()
}

// errorf logs an internal error with the job id.
func (e *Engine) errorf(jobID string, format string, args ...any) {
	e.log.Error(fmt.Sprintf(format, args...), "job_id", jobID)
}

package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// The tests of issue 8, one (or more) per numbered observation.

// countingStore counts write transactions and records what each wrote.
type countingStore struct {
	batch.Store
	mu      sync.Mutex
	updates int
	txs     [][]string // per committed Update: "bucket" or "jobs:<status>"
	hold    *writeHold // holds the next Update, when set
}

// writeHold holds a write before it reaches the store: entered is closed
// when the write waits, release lets it go on.
type writeHold struct {
	entered, release chan struct{}
}

// holdNext makes the next write wait before it reaches the store until
// release is closed.
func (s *countingStore) holdNext() *writeHold {
	h := &writeHold{entered: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	return h
}

func (s *countingStore) Update(fn func(batch.Tx) error) error {
	s.mu.Lock()
	h := s.hold
	s.hold = nil
	s.mu.Unlock()
	if h != nil {
		close(h.entered)
		<-h.release
	}
	var wrote []string
	err := s.Store.Update(func(tx batch.Tx) error {
		wrote = wrote[:0]
		return fn(&recordingTx{Tx: tx, wrote: &wrote})
	})
	if err == nil {
		s.mu.Lock()
		s.updates++
		s.txs = append(s.txs, append([]string(nil), wrote...))
		s.mu.Unlock()
	}
	return err
}

func (s *countingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates
}

// writes returns what the write transaction number i (from 0) wrote.
func (s *countingStore) writes(i int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txs[i]
}

type recordingTx struct {
	batch.Tx
	wrote *[]string
}

func (t *recordingTx) Put(bucket string, key, value []byte) error {
	name := bucket
	if bucket == "jobs" {
		var j struct{ Status string }
		_ = json.Unmarshal(value, &j)
		name += ":" + j.Status
	}
	*t.wrote = append(*t.wrote, name)
	return t.Tx.Put(bucket, key, value)
}

func (t *recordingTx) Delete(bucket string, key []byte) error {
	*t.wrote = append(*t.wrote, "delete:"+bucket)
	return t.Tx.Delete(bucket, key)
}

func noopOp() batch.Operation {
	return countingOp(func(context.Context, *batch.Item) error { return nil })
}

// Observation 1: the operations of a batch run in order, each selecting
// its records when it starts.
func TestRunner_OperationsRunInOrder(t *testing.T) {
	t.Parallel()
	onEachStore(t, nil, func(t *testing.T, tb *testBundle) {
		b, err := batch.DecodeBatch([]byte(`{"type":"t","operations":[
			{"type":"create","resource":"fields","records":[{"id":"aa-0","kind":"zz"},{"id":"aa-1","kind":"zz"}]},
			{"type":"update","resource":"fields","filter":{"kind":"zz"},"update":{"seen":true}},
			{"type":"export","resource":"fields","filter":{"kind":"zz","seen":true}}],
			"options":{"parallel":false}}`))
		require.NoError(t, err)
		job := tb.submit(t, b)
		require.Equal(t, int64(3), job.Progress.TotalOperations, "at creation: the 2 records to create, no record to update yet, 1 export")
		job = tb.wait(t, job.ID)
		require.Equal(t, batch.StateCompleted, job.Status)
		require.Equal(t, int64(5), job.Progress.TotalOperations, "exact once every operation selected")
		require.Equal(t, int64(5), job.Progress.Completed)
		require.Equal(t, 100, job.Progress.Percentage)
		require.Len(t, job.Results, 1)
		summary := job.Results[0].Summary.(map[string]any)
		require.EqualValues(t, 2, summary["records"], "the export sees both records the create made and the update touched")
		for _, id := range []string{"aa-0", "aa-1"} {
			rec, err := tb.fields.Get(t.Context(), id)
			require.NoError(t, err)
			require.Equal(t, true, rec["seen"], "[create X, update X] updates X")
		}
	})
}

// Observation 2: a where on a custom operation's Query selects; a bad one
// is rejected.
func TestQuery_WhereIsCompiledWhereverItIsBuilt(t *testing.T) {
	t.Parallel()
	require.False(t, (&batch.Query{Where: "record.amount > 140"}).Match(batch.Record{"amount": 100.0}))
	require.True(t, (&batch.Query{Where: "record.amount > 140"}).Match(batch.Record{"amount": 150.0}))
	require.False(t, (&batch.Query{Where: "record.amount >"}).Match(batch.Record{"amount": 150.0}), "a where that does not compile matches nothing")
	q, err := batch.NewQuery(nil, "record.amount > 140")
	require.NoError(t, err)
	require.False(t, q.Match(batch.Record{"amount": 100.0}))
	_, err = batch.NewQuery(nil, "record.amount >")
	require.Equal(t, batch.CodeValidation, batch.CodeOf(err))

	var seen atomic.Int64
	custom := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		res, err := env.Resource("fields")
		if err != nil {
			return nil, err
		}
		return &batch.Plan{Resource: res, Query: &batch.Query{Where: spec.Where},
			Run: func(context.Context, *batch.Item) error { seen.Add(1); return nil }}, nil
	})
	var seenBare atomic.Int64
	bare := batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		res, err := env.Resource("fields")
		if err != nil {
			return nil, err
		}
		return &batch.Plan{Resource: res, Run: func(context.Context, *batch.Item) error { seenBare.Add(1); return nil }}, nil
	})
	tb := setup(t, "memory", &batch.Options{Operations: map[string]batch.Operation{"touch": custom, "bare": bare, "noop": noopOp()}})
	recs := make([]batch.Record, 1000)
	for i := range recs {
		recs[i] = batch.Record{"id": fmt.Sprintf("r%04d", i), "amount": float64(i % 200)}
	}
	require.NoError(t, tb.fields.PutMany(t.Context(), recs))

	err = tb.e.Validate(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "touch", Where: "record.amount >"}}})
	require.Equal(t, batch.CodeInvalidBatch, batch.CodeOf(err))
	var be *batch.Error
	require.ErrorAs(t, err, &be)
	require.Equal(t, "operations[0].where", be.Details[0].Field)

	custom1 := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "touch", Where: "record.amount > 140"}}}).ID)
	builtin := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "update", Resource: "fields", Where: "record.amount > 140", Update: map[string]any{"x": 1}}}}).ID)
	require.Equal(t, int64(295), builtin.Progress.Completed)
	require.Equal(t, builtin.Progress.Completed, custom1.Progress.Completed)
	require.Equal(t, int64(295), seen.Load())

	// A plan over a resource without a query of its own gets the
	// operation's filter and where.
	bareJob := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "bare", Where: "record.amount > 140", Filter: map[string]any{"amount": 150}}}}).ID)
	require.Equal(t, int64(5), bareJob.Progress.Completed)
	require.Equal(t, int64(5), seenBare.Load())
	// A where is checked for any operation, even one that ignores it.
	err = tb.e.Validate(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "noop", Params: map[string]any{"count": 1}, Where: "x >"}}})
	require.Equal(t, batch.CodeInvalidBatch, batch.CodeOf(err))
}

// Observation 3: the retry budget survives Close.
func TestRunner_RetryBudgetSurvivesClose(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "batch.db")
	var calls sync.Map // item -> *atomic.Int64
	calledTwice := make(chan struct{}, 8)
	fail := countingOp(func(ctx context.Context, it *batch.Item) error {
		n, _ := calls.LoadOrStore(it.ResourceID, new(atomic.Int64))
		if n.(*atomic.Int64).Add(1) == 2 {
			calledTwice <- struct{}{}
		}
		return batch.NewError(batch.CodeResource, "always down")
	})
	opts := func() *batch.Options {
		return &batch.Options{Operations: map[string]batch.Operation{"fail": fail}}
	}
	e, err := batch.Open(path, opts())
	require.NoError(t, err)
	job, err := e.Submit(t.Context(), opBatch("fail", 2, batch.BatchOptions{
		Retry: batch.RetryOptions{Attempts: 3, Backoff: batch.BackoffLinear, Delay: batch.Duration(300 * time.Millisecond)}}), nil)
	require.NoError(t, err)
	for range 2 {
		select {
		case <-calledTwice:
		case <-time.After(10 * time.Second):
			t.Fatal("items were not tried twice")
		}
	}
	require.NoError(t, e.Close(t.Context()))

	e, err = batch.Open(path, opts())
	require.NoError(t, err)
	defer e.Close(context.Background())
	job = waitJob(t, e, job.ID)
	require.Equal(t, int64(2), job.Progress.Failed)
	for _, id := range []string{"item0", "item1"} {
		n, _ := calls.Load(id)
		require.Equal(t, int64(3), n.(*atomic.Int64).Load(), "%s is tried 3 times in all, across the restart", id)
	}
	for _, ie := range job.Errors {
		require.Equal(t, 3, ie.Attempts)
	}
}

// Observation 4: an attempt abandoned at item_timeout owns its item, and
// Close waits for it. Run with -race. In a bubble the attempts' sleep is
// exact: Close waits for it, or returns before the bubble's time moves.
func TestRunner_AbandonedAttemptOwnsItsItem(t *testing.T) {
	t.Parallel()
	synctest.Test(t, abandonedAttemptOwnsItsItem)
}

func abandonedAttemptOwnsItsItem(t *testing.T) {
	var finished atomic.Int64
	slow := countingOp(func(ctx context.Context, it *batch.Item) error {
		time.Sleep(250 * time.Millisecond) // ignores ctx, 50 times the item timeout
		it.Record = batch.Record{"id": it.ResourceID, "late": true}
		it.Result = &batch.Result{Summary: "late"}
		finished.Add(1)
		return nil
	})
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Operations: map[string]batch.Operation{"slow": slow}})
	require.NoError(t, err)
	job, err := e.Submit(t.Context(), opBatch("slow", 4, batch.BatchOptions{MaxConcurrent: 4, ItemTimeout: batch.Duration(5 * time.Millisecond),
		Retry: batch.RetryOptions{Attempts: 2, Backoff: batch.BackoffImmediate}}), nil)
	require.NoError(t, err)
	job = waitJob(t, e, job.ID)
	require.Equal(t, int64(4), job.Progress.Failed)
	require.Equal(t, batch.CodeTimeout, job.Errors[0].Error.Code)
	require.NoError(t, e.Close(t.Context()))
	require.Equal(t, int64(8), finished.Load(), "Close waits for attempts left behind")
}

// Observation 5: status reads do not wait behind job-control writes, and
// a collection's Validate hook runs outside the commit.
func TestRunner_NoStoreWriteUnderTheEngineLock(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: batch.NewMemoryStore()}
	block := make(chan struct{})
	blocker := countingOp(func(ctx context.Context, it *batch.Item) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil
	})
	// One running slot: the second job stays queued, so that it can be
	// paused and resumed whatever the timing. No retention sweep writes.
	e, err := batch.New(cs, &batch.Options{MaxRunningJobs: 1, Retention: -1,
		Operations: map[string]batch.Operation{"noop": noopOp(), "block": blocker}})
	require.NoError(t, err)
	defer e.Close(context.Background())
	running, err := e.Submit(t.Context(), opBatch("block", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	queued, err := e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)

	// Each control call's write is held before it reaches the store; a
	// status read is answered meanwhile.
	whileHeld := func(name string, control func(ctx context.Context, id string) error, wrote string) {
		t.Helper()
		before := cs.count()
		hold := cs.holdNext()
		done := make(chan error, 1)
		go func() { done <- control(context.Background(), queued.ID) }()
		<-hold.entered
		read := make(chan error, 1)
		go func() {
			_, err := e.Job(t.Context(), running.ID)
			read <- err
		}()
		select {
		case err := <-read:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("a status read waits for %s's write", name)
		}
		require.Empty(t, done, "%s is still writing", name)
		close(hold.release)
		require.NoError(t, <-done)
		require.Contains(t, cs.writes(before), wrote, "the write held was %s's", name)
	}
	jobControl := func(f func(context.Context, string) (*batch.Job, error)) func(context.Context, string) error {
		return func(ctx context.Context, id string) error { _, err := f(ctx, id); return err }
	}
	whileHeld("Pause", jobControl(e.Pause), "jobs:paused")
	whileHeld("Resume", jobControl(e.Resume), "jobs:queued")
	whileHeld("Cancel", jobControl(e.Cancel), "jobs:cancelled")
	whileHeld("Delete", e.Delete, "delete:jobs")
	close(block)

	var inCommit atomic.Bool
	require.NoError(t, e.DefineCollection("checked", &batch.CollectionOptions{Validate: func(ctx context.Context, rec batch.Record) error {
		buf := make([]byte, 1<<16)
		if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "(*committer).commit") {
			inCommit.Store(true)
		}
		return nil
	}}))
	b, err := batch.DecodeBatch([]byte(`{"operations":[{"type":"create","resource":"checked","records":[{"id":"a","n":1}]},
		{"type":"update","resource":"checked","where":"true","update":{"n":2}}],"options":{"validation":{"mode":"lenient"}}}`))
	require.NoError(t, err)
	job, err := e.Submit(t.Context(), b, nil)
	require.NoError(t, err)
	job = waitJob(t, e, job.ID)
	require.Equal(t, int64(2), job.Progress.Completed)
	require.False(t, inCommit.Load(), "validators run outside the commit")
}

// Observation 6: events are written in the transaction of the change;
// observation 7: a one-item job with no webhooks costs at most 3 write
// transactions.
func TestRunner_OneItemJobWriteTransactions(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var inner batch.Store = batch.NewMemoryStore()
			if kind == "bolt" {
				var err error
				inner, err = batch.OpenBoltStore(filepath.Join(t.TempDir(), "batch.db"), nil)
				require.NoError(t, err)
			}
			cs := &countingStore{Store: inner}
			e, err := batch.New(cs, &batch.Options{Operations: map[string]batch.Operation{"noop": noopOp()}})
			require.NoError(t, err)
			defer e.Close(context.Background())
			before := cs.count()
			job, err := e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
			require.NoError(t, err)
			job = waitJob(t, e, job.ID)
			require.Equal(t, batch.StateCompleted, job.Status)
			require.LessOrEqual(t, cs.count()-before, 3, "write transactions of a one-item job")

			cs.mu.Lock()
			defer cs.mu.Unlock()
			var states []string
			for _, tx := range cs.txs {
				for _, w := range tx {
					if status, ok := strings.CutPrefix(w, "jobs:"); ok {
						require.Contains(t, tx, "audit_log", "the %s transition and its audit entry share a transaction", status)
						states = append(states, status)
					}
				}
			}
			require.Equal(t, []string{"queued", "running", "completed"}, states)
			for _, tx := range cs.txs {
				for _, w := range tx {
					require.False(t, strings.HasPrefix(w, "deliveries/") || w == "outbox", "nothing is written for webhooks that do not exist")
				}
			}
		})
	}
}

// Observation 8: honest statistics and exact durations.
func TestRunner_HonestStatistics(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	tb.seedFields(t, 2000)
	job := tb.wait(t, tb.submit(t, &batch.Batch{Operations: []batch.OperationSpec{{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"x": 1}}}}).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	avg := job.Statistics.AverageOperationTime
	require.Positive(t, int64(avg), "built-ins do their work in the commit; its share counts")
	b, err := json.Marshal(job)
	require.NoError(t, err)
	for _, r := range string(b) {
		require.Less(t, r, rune(128), "ASCII only: %s", b)
	}
	require.Nil(t, job.EstimatedCompletion, "a finished job has nothing left to estimate")

	// Durations round-trip exactly.
	for _, s := range []string{"1ns", "1.25s", "40us", "1h30m", "850ms"} {
		var d batch.Duration
		require.NoError(t, json.Unmarshal([]byte(`"`+s+`"`), &d))
		out, err := json.Marshal(d)
		require.NoError(t, err)
		var back batch.Duration
		require.NoError(t, json.Unmarshal(out, &back))
		require.Equal(t, d, back, s)
	}
	bt, err := batch.DecodeBatch([]byte(`{"operations":[{"type":"slow","params":{"count":2}}],"options":{"item_timeout":"1ns"}}`))
	require.NoError(t, err)
	require.NoError(t, tb.e.RegisterOperation("slow", countingOp(func(ctx context.Context, it *batch.Item) error {
		<-ctx.Done()
		return ctx.Err()
	})))
	job = tb.wait(t, tb.submit(t, bt).ID)
	require.Equal(t, int64(2), job.Progress.Failed, "item_timeout 1ns is a limit, not \"no limit\"")
	require.Equal(t, batch.CodeTimeout, job.Errors[0].Error.Code)
}

// Observation 8: estimates come from the live rate at each read. Items
// take 20ms each on the engine clock, one at a time, let through one by one.
func TestRunner_LiveEstimates(t *testing.T) {
	t.Parallel()
	clock := newOpsClock()
	next := make(chan struct{})
	step := countingOp(func(ctx context.Context, it *batch.Item) error {
		select {
		case <-next:
			clock.Add(20 * time.Millisecond)
		case <-ctx.Done():
		}
		return nil
	})
	tb := setup(t, "memory", &batch.Options{Now: clock.Now, Operations: map[string]batch.Operation{"step": step}})
	job := tb.submit(t, opBatch("step", 40, batch.BatchOptions{MaxConcurrent: 1}))
	for range 5 {
		next <- struct{}{}
	}
	var first *batch.Job
	require.Eventually(t, func() bool {
		var err error
		first, err = tb.e.Job(t.Context(), job.ID)
		require.NoError(t, err)
		return first.Progress.Completed == 5
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, batch.StateRunning, first.Status)
	// 5 items in 100ms: the other 35 take 700ms at that rate.
	require.Equal(t, batch.Duration(700*time.Millisecond), first.Statistics.EstimatedRemainingTime)
	require.NotNil(t, first.EstimatedCompletion)
	require.Equal(t, clock.Now().Add(700*time.Millisecond), first.EstimatedCompletion.In(time.UTC))

	// 100ms later with no item done the rate has halved.
	clock.Add(100 * time.Millisecond)
	second, err := tb.e.Job(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.Duration(1400*time.Millisecond), second.Statistics.EstimatedRemainingTime, "recomputed at each read")
	require.Equal(t, clock.Now().Add(1400*time.Millisecond), second.EstimatedCompletion.In(time.UTC))

	close(next)
	done := tb.wait(t, job.ID)
	require.Nil(t, done.EstimatedCompletion)
	require.Equal(t, 100, done.Progress.Percentage)
}

// Strict validation checks an operation's items before any of them runs;
// an item that failed validation is not run afterwards.
func TestRunner_StrictValidationPerOperation(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	require.NoError(t, tb.e.DefineCollection("strict", &batch.CollectionOptions{Validate: func(ctx context.Context, rec batch.Record) error {
		if n, _ := rec["n"].(float64); n < 0 {
			return batch.ValidationError("n must not be negative")
		}
		return nil
	}}))
	b, err := batch.DecodeBatch([]byte(`{"operations":[
		{"type":"create","resource":"strict","records":[{"id":"a","n":1},{"id":"b","n":-1},{"id":"c","n":2}]},
		{"type":"update","resource":"strict","where":"true","update":{"n":-5}}],
		"options":{"validation":{"mode":"strict","on_error":"skip"}}}`))
	require.NoError(t, err)
	job := tb.wait(t, tb.submit(t, b).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(5), job.Progress.TotalOperations)
	require.Equal(t, int64(2), job.Progress.Completed)
	require.Equal(t, int64(3), job.Progress.Failed, "b fails validation once; both updates would break the rule")
	coll, err := tb.e.Collection("strict")
	require.NoError(t, err)
	_, err = coll.Get(t.Context(), "b")
	require.ErrorIs(t, err, batch.ErrNotFound)
	a, err := coll.Get(t.Context(), "a")
	require.NoError(t, err)
	require.Equal(t, 1.0, a["n"])
}

// A job that finishes in its last commit hands its slot to the next queued
// job, started in that same transaction: one write transaction per job.
func TestRunner_SlotHandoff(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: batch.NewMemoryStore()}
	gate := make(chan struct{})
	held := countingOp(func(ctx context.Context, it *batch.Item) error {
		<-gate
		return nil
	})
	e, err := batch.New(cs, &batch.Options{MaxRunningJobs: 1, Operations: map[string]batch.Operation{"noop": noopOp(), "held": held}})
	require.NoError(t, err)
	defer e.Close(context.Background())
	first, err := e.Submit(t.Context(), opBatch("held", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	var queued []*batch.Job
	for range 4 {
		j, err := e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
		require.NoError(t, err)
		queued = append(queued, j)
	}
	_, err = e.Pause(t.Context(), queued[2].ID)
	require.NoError(t, err)
	before := cs.count()
	close(gate)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, j := range []*batch.Job{first, queued[0], queued[1], queued[3]} {
		got, err := e.Wait(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StateCompleted, got.Status)
	}
	paused, err := e.Job(t.Context(), queued[2].ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, paused.Status)
	require.LessOrEqual(t, cs.count()-before, 4, "each job's last commit starts the next")
}

// A job whose final state is stored but whose last event is still being
// reported is not "running": Delete waits for it instead of answering 409.
func TestRunner_DeleteRightAfterCompletion(t *testing.T) {
	t.Parallel()
	e, err := batch.New(batch.NewMemoryStore(), &batch.Options{Operations: map[string]batch.Operation{"noop": noopOp()}})
	require.NoError(t, err)
	defer e.Close(context.Background())
	release := make(chan struct{})
	completed := make(chan struct{})
	defer e.Subscribe(func(ev batch.Event) {
		if ev.Type == batch.EventJobCompleted {
			close(completed)
			<-release // hold the job in the live set while it reports
		}
	})()
	job, err := e.Submit(t.Context(), opBatch("noop", 1, batch.BatchOptions{}), nil)
	require.NoError(t, err)
	<-completed
	got, err := e.Job(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, got.Status)
	// Release the report a little later: Delete must wait for it, not
	// refuse the job as running.
	time.AfterFunc(50*time.Millisecond, func() { close(release) })
	require.NoError(t, e.Delete(t.Context(), job.ID))
	_, err = e.Job(t.Context(), job.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)
}

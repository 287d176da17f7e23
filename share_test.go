package batch_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

// TestScaleOut_RecordDrivenShared runs one update over selected records on
// two processes at once: both run items, every record is updated once.
func TestScaleOut_RecordDrivenShared(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	obs := []*ranObserver{{}, {}}
	es := make([]*batch.Engine, 2)
	for i := range es {
		s, err := scaleStore(t.Context(), url, schema)
		require.NoError(t, err)
		es[i], err = batch.New(s, &batch.Options{Observer: obs[i], ClaimPoll: 20 * time.Millisecond, CommitBatchSize: 16, CommitDelay: -1})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, es[i].Close(context.Background())) })
	}
	fields, err := es[0].Collection("fields")
	require.NoError(t, err)
	const n = 4000
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{"id": fmt.Sprintf("f%05d", i), "status": []string{"active", "inactive"}[i%2], "hits": 0}
	}
	require.NoError(t, fields.PutMany(t.Context(), recs))
	job, err := es[0].Submit(t.Context(), &batch.Batch{Operations: []batch.OperationSpec{{Type: "update", Resource: "fields",
		Where: `record.status == "active"`, Update: map[string]any{"seen": true}}}, Options: batch.BatchOptions{MaxConcurrent: 2}}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done, err := es[1].Wait(ctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateCompleted, done.Status)
	require.Equal(t, int64(n/2), done.Progress.Completed)
	require.Zero(t, done.Progress.Failed)
	t.Logf("items per process: %d, %d", obs[0].n.Load(), obs[1].n.Load())
	require.Positive(t, obs[0].n.Load())
	require.Positive(t, obs[1].n.Load(), "the second process helped")
	// The helper let go of the pass's plan (and with it the job's batch)
	// once the pass was over.
	require.Eventually(t, func() bool { return !batch.KeepsHelpPlan(es[1]) }, 10*time.Second, 5*time.Millisecond,
		"the helper keeps no plan of a finished pass")
	var seen int
	require.NoError(t, fields.Scan(t.Context(), nil, func(r batch.Record) error {
		if r["seen"] == true {
			seen++
			require.Equal(t, "active", r["status"])
		}
		return nil
	}))
	require.Equal(t, n/2, seen)
}

// itemRuns records which processes ran each item to the end.
type itemRuns struct {
	mu sync.Mutex
	by map[int64][]int
}

// op is the custom operation of process proc. Its first run of item stall
// (none when stall < 0) closes blocked and waits for release: the process
// stalls in the middle of a range it leased.
func (r *itemRuns) op(proc int, stall int64, blocked chan<- struct{}, release <-chan struct{}) batch.Operation {
	var once sync.Once
	return countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index == stall {
			first := false
			once.Do(func() { first = true })
			if first {
				close(blocked)
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		r.mu.Lock()
		r.by[it.Index] = append(r.by[it.Index], proc)
		r.mu.Unlock()
		return nil
	})
}

// twice returns the items that ran in more than one process.
func (r *itemRuns) twice() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	for i, procs := range r.by {
		if len(procs) > 1 {
			out = append(out, i)
		}
	}
	return out
}

// TestScaleOut_StalledRangeIsFenced stalls a process in the middle of a
// range it leased until its lease runs out (the test ages the lease row
// instead of waiting: the state is the same) and another process takes the
// range over and runs its items; then it lets the stalled process go on.
// The stalled process's outcomes for the range are refused in their
// commit, which checks the lease's fencing token in the same transaction:
// the stored counts hold every item exactly once, and each item that ran
// twice had exactly one of its outcomes refused. Once with the job's holder
// stalled (a helper takes its range over), once with a helper stalled (a
// third process takes its range over while the holder, stalled in another
// range, keeps the job running).
func TestScaleOut_StalledRangeIsFenced(t *testing.T) {
	t.Parallel()
	const n = 1024 // 16 ranges of 64 items
	for _, tc := range []struct {
		name    string
		stalls  []int64 // the item each process stalls on; -1 for none
		stalled int     // the process whose range is taken over
		rangeLo int64   // the first item of that range
	}{
		{name: "holder", stalls: []int64{0, -1}, stalled: 0, rangeLo: 0},
		{name: "helper", stalls: []int64{0, n - 1, -1}, stalled: 1, rangeLo: n - 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, schema := pgtest.URL(t), pgtest.Schema(t)
			procs := len(tc.stalls)
			runs := &itemRuns{by: map[int64][]int{}}
			blocked := make([]chan struct{}, procs)
			release := make([]chan struct{}, procs)
			logs := make([]*logRecords, procs)
			stores := make([]*pgstore.Store, procs)
			es := make([]*batch.Engine, procs)
			releaseOnce := make([]sync.Once, procs)
			let := func(i int) { releaseOnce[i].Do(func() { close(release[i]) }) }
			// Each process starts once the one before it stalled, so
			// process 0 holds the job and process 1 helps first.
			start := func(i int) {
				blocked[i], release[i], logs[i] = make(chan struct{}), make(chan struct{}), &logRecords{}
				var err error
				stores[i], err = scaleStore(t.Context(), url, schema)
				require.NoError(t, err)
				es[i], err = batch.New(stores[i], &batch.Options{ClaimPoll: 20 * time.Millisecond, Logger: slog.New(logs[i]),
					Operations: map[string]batch.Operation{"op": runs.op(i, tc.stalls[i], blocked[i], release[i])}})
				require.NoError(t, err)
				t.Cleanup(func() {
					let(i)
					require.NoError(t, es[i].Close(context.Background()))
				})
			}
			wait := func(ch <-chan struct{}, what string) {
				t.Helper()
				select {
				case <-ch:
				case <-time.After(30 * time.Second):
					t.Fatalf("timed out waiting for %s", what)
				}
			}
			start(0)
			job, err := es[0].Submit(t.Context(), opBatch("op", n, batch.BatchOptions{MaxConcurrent: 4}), nil)
			require.NoError(t, err)
			wait(blocked[0], "the holder to stall")
			if tc.stalled == 1 {
				start(1)
				wait(blocked[1], "the helper to stall")
			}
			// The stalled process's lease on the range runs out.
			tag, err := stores[0].Pool().Exec(t.Context(), "UPDATE "+schema+".batch_leases SET expires_at = now() - interval '1 hour' WHERE name = $1 AND owner = $2",
				fmt.Sprintf("%s/0/%d", job.ID, tc.rangeLo), stores[tc.stalled].Owner())
			require.NoError(t, err)
			require.Equal(t, int64(1), tag.RowsAffected(), "the stalled process holds the range")
			start(procs - 1)
			last := es[procs-1]
			stored := func() batch.Progress {
				j, err := last.Job(t.Context(), job.ID)
				require.NoError(t, err)
				return j.Progress
			}
			// Every item has a stored outcome, but for the holder's own
			// stalled item when a helper stalled.
			want := int64(n)
			if tc.stalled != 0 {
				want--
			}
			require.Eventually(t, func() bool { return stored().Completed == want }, 30*time.Second, 5*time.Millisecond,
				"the range was taken over and finished")

			// The stalled process goes on; its commit is refused.
			let(tc.stalled)
			refused := func() (total int64) {
				for _, m := range logs[tc.stalled].find("range lease taken over by another process; outcomes refused", job.ID) {
					total += m["outcomes"].(int64)
				}
				return total
			}
			require.Eventually(t, func() bool { return refused() > 0 || stored().Completed != want }, 30*time.Second, 5*time.Millisecond,
				"the stalled process commits")
			require.Equal(t, want, stored().Completed, "the stalled outcomes are not counted")
			require.Positive(t, refused(), "the stalled commit is refused")

			for i := range procs {
				let(i)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			done, err := last.Wait(ctx, job.ID)
			require.NoError(t, err)
			require.Equal(t, batch.StateCompleted, done.Status)
			require.Equal(t, int64(n), done.Progress.Completed, "every item counted once")
			require.Zero(t, done.Progress.Failed)
			// Close every process, so every outcome was stored or refused.
			for _, e := range es {
				require.NoError(t, e.Close(context.Background()))
			}
			twice := runs.twice()
			t.Logf("items run twice: %d; outcomes refused: %d", len(twice), refused())
			require.Contains(t, twice, tc.stalls[tc.stalled], "the stalled item ran again in the process that took the range over")
			require.Equal(t, int64(len(twice)), refused(), "each item run twice had one outcome refused")
			runs.mu.Lock()
			defer runs.mu.Unlock()
			require.Len(t, runs.by, n, "every item ran")
		})
	}
}

// TestScaleOut_HelperItemsSeeStopping: a paused job's items running in a
// helper process see batch.Stopping close, as the holder's do.
func TestScaleOut_HelperItemsSeeStopping(t *testing.T) {
	t.Parallel()
	holding, helping := make(chan struct{}, 1024), make(chan struct{}, 1024)
	saw := make(chan bool, 1024) // whether a helper's item saw Stopping close
	es := scaleEngines(t, 2, batch.Options{})
	require.NoError(t, es[0].RegisterOperation("op", countingOp(func(ctx context.Context, it *batch.Item) error {
		holding <- struct{}{}
		<-batch.Stopping(ctx)
		return context.Canceled
	})))
	require.NoError(t, es[1].RegisterOperation("op", countingOp(func(ctx context.Context, it *batch.Item) error {
		helping <- struct{}{}
		select {
		case <-batch.Stopping(ctx):
			saw <- true
		case <-time.After(20 * time.Second):
			saw <- false
		}
		return context.Canceled
	})))
	job, err := es[0].Submit(t.Context(), opBatch("op", 1024, batch.BatchOptions{MaxConcurrent: 2}), nil)
	require.NoError(t, err)
	<-holding // the holder is busy: the second process helps
	<-helping
	paused, err := es[0].Pause(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatePaused, paused.Status)
	require.True(t, <-saw, "the helper's item saw the job stop")
}

// TestScaleOut_NotifiedHelpAndControl runs two processes whose claim loops
// would poll only once a minute: the store's notifications alone make the
// second help with the shared pass of a job submitted on the first, and
// carry a pause asked on the second to the first, which runs the job.
func TestScaleOut_NotifiedHelpAndControl(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	var ran [2]atomic.Int64
	es := make([]*batch.Engine, 2)
	for i := range es {
		// The default lease TTL: no lease expires during the test.
		s, err := pgstore.Open(t.Context(), url, &pgstore.Options{Schema: schema, MaxConns: 6})
		require.NoError(t, err)
		op := countingOp(func(ctx context.Context, _ *batch.Item) error {
			ran[i].Add(1)
			select {
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		})
		es[i], err = batch.New(s, &batch.Options{ClaimPoll: time.Minute, Operations: map[string]batch.Operation{"io": op}})
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, es[i].Close(ctx))
		})
	}
	job, err := es[0].Submit(t.Context(), opBatch("io", 4000, batch.BatchOptions{MaxConcurrent: 8}), nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ran[1].Load() > 0 }, 4*time.Second, 10*time.Millisecond,
		"the second process did not help with the shared pass")
	require.NotZero(t, ran[0].Load())

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	paused, err := es[1].Pause(ctx, job.ID)
	require.NoError(t, err, "the pause did not reach the running process")
	require.Equal(t, batch.StatePaused, paused.Status)
}

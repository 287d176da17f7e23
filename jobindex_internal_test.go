package batch

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// countingStore counts the job records read and the write transactions.
type countingStore struct {
	Store
	jobReads atomic.Int64
	updates  atomic.Int64
}

func (s *countingStore) View(fn func(Tx) error) error {
	return s.Store.View(func(tx Tx) error { return fn(&countingTx{Tx: tx, s: s}) })
}

func (s *countingStore) Update(fn func(Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(func(tx Tx) error { return fn(&countingTx{Tx: tx, s: s}) })
}

type countingTx struct {
	Tx
	s *countingStore
}

func (t *countingTx) Get(bucket string, key []byte) []byte {
	if bucket == bucketJobs {
		t.s.jobReads.Add(1)
	}
	return t.Tx.Get(bucket, key)
}

func (t *countingTx) count(bucket string, fn func(k, v []byte) bool) func(k, v []byte) bool {
	if bucket != bucketJobs {
		return fn
	}
	return func(k, v []byte) bool { t.s.jobReads.Add(1); return fn(k, v) }
}

func (t *countingTx) Scan(bucket string, from []byte, fn func(k, v []byte) bool) error {
	return t.Tx.Scan(bucket, from, t.count(bucket, fn))
}

func (t *countingTx) ScanReverse(bucket string, from []byte, fn func(k, v []byte) bool) error {
	return t.Tx.ScanReverse(bucket, from, t.count(bucket, fn))
}

// openCounting seeds n finished jobs (see seedJobs) at path and opens an
// engine over them through a countingStore.
func openCounting(t *testing.T, n int, finished time.Time, opts *Options) (*Engine, *countingStore) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "batch.db")
	seedJobs(t, path, n, finished)
	bs, err := OpenBoltStore(path, nil)
	require.NoError(t, err)
	cs := &countingStore{Store: bs}
	if opts == nil {
		opts = &Options{Retention: -1}
	}
	e, err := New(cs, opts)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, cs
}

// Issue 18, observation 1: a list filtered by owner or state reads only
// the jobs of its page, and pages through exactly the matching jobs.
func TestJobs_FilteredPageReadsOnlyItsJobs(t *testing.T) {
	t.Parallel()
	const n = 1000 // job i: owner i%10, failed when i%20 == 0
	e, cs := openCounting(t, n, time.Now(), nil)
	tests := []struct {
		opts ListOptions
		want func(i int) bool
	}{
		{ListOptions{Owner: "owner3", Limit: 7}, func(i int) bool { return i%10 == 3 }},
		{ListOptions{State: StateFailed, Limit: 7}, func(i int) bool { return i%20 == 0 }},
		{ListOptions{State: StateCompleted, Owner: "owner0", Limit: 7}, func(i int) bool { return i%10 == 0 && i%20 != 0 }},
		{ListOptions{State: StateRunning}, func(int) bool { return false }},
		{ListOptions{Owner: "nobody"}, func(int) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.opts.Owner, tt.opts.State), func(t *testing.T) {
			var want []string
			for i := n - 1; i >= 0; i-- {
				if tt.want(i) {
					want = append(want, formatJobID(uint64(i+1)))
				}
			}
			var got []string
			o := tt.opts
			for {
				before := cs.jobReads.Load()
				page, err := e.Jobs(t.Context(), &o)
				require.NoError(t, err)
				require.LessOrEqual(t, cs.jobReads.Load()-before, int64(len(page.Items)), "job records read for one page")
				for _, j := range page.Items {
					got = append(got, j.ID)
				}
				if page.NextCursor == "" {
					break
				}
				o.Cursor = page.NextCursor
			}
			require.Equal(t, want, got)
		})
	}
}

// Issue 18, observation 7: Open reads only unfinished jobs.
func TestOpen_ReadsOnlyUnfinishedJobs(t *testing.T) {
	t.Parallel()
	// In a bubble, synctest.Wait returns once the engine is idle: the
	// retention sweep that starts at Open is done by then, and counted.
	synctest.Test(t, func(t *testing.T) {
		e, cs := openCounting(t, 2000, time.Now(), &Options{})
		synctest.Wait()
		require.Zero(t, cs.jobReads.Load(), "job records read at Open, retention sweep included")
		page, err := e.Jobs(t.Context(), &ListOptions{Owner: "owner1", Limit: 3})
		require.NoError(t, err)
		require.Len(t, page.Items, 3)
	})
}

// A store written before the indexes existed gets them at Open.
func TestJobIndex_BuiltForAnOlderStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "batch.db")
	seedJobs(t, path, 120, time.Now())
	s, err := OpenBoltStore(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Update(func(tx Tx) error {
		for _, b := range []string{bucketJobIndex, bucketJobsByState, bucketJobsByOwner, bucketJobsByOwnerSt, bucketJobsFinished, bucketJobsUndoDue, bucketStoreMeta} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}))
	e, err := New(s, &Options{Retention: -1})
	require.NoError(t, err)
	defer e.Close(context.Background())
	page, err := e.Jobs(t.Context(), &ListOptions{State: StateFailed})
	require.NoError(t, err)
	require.Len(t, page.Items, 6) // jobs 0, 20, ... 100
	st, err := e.Cleanup(t.Context(), time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(120), st.Jobs)
}

// Issue 18, observation 4: cleanup deletes jobs in transactions of many
// jobs, leaves jobs that finished after the cutoff, and adds no
// job_deleted entries.
func TestCleanup_InBulk(t *testing.T) {
	t.Parallel()
	old := time.Now().Add(-48 * time.Hour)
	e, cs := openCounting(t, 1200, old, nil)
	recent, err := e.Submit(t.Context(), &Batch{Operations: []OperationSpec{{Type: "export", Resource: "fields"}}}, nil)
	require.NoError(t, err)
	_, err = e.Wait(t.Context(), recent.ID)
	require.NoError(t, err)
	before := cs.updates.Load()
	st, err := e.Cleanup(t.Context(), time.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1200), st.Jobs)
	require.Equal(t, int64(1200*3*2), st.AuditEvents, "each job's trail of three, and the same three in the log")
	require.LessOrEqual(t, cs.updates.Load()-before, int64(5), "write transactions for 1,200 jobs and their 3,600 log entries")
	page, err := e.Jobs(t.Context(), nil)
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	require.Equal(t, recent.ID, page.Items[0].ID)
	ev, err := e.AuditEvents(t.Context(), &PageOptions{Limit: 1000})
	require.NoError(t, err)
	for _, a := range ev.Items {
		require.NotEqual(t, EventJobDeleted, a.Type)
	}
}

func TestFinishedBefore_ByOwner(t *testing.T) {
	t.Parallel()
	e, _ := openCounting(t, 100, time.Now().Add(-time.Hour), nil)
	ids, err := e.finishedBefore(time.Now(), "owner4")
	require.NoError(t, err)
	require.Len(t, ids, 10)
	require.Equal(t, "batch5", ids[0]) // job i=4
	all, err := e.finishedBefore(time.Now(), "")
	require.NoError(t, err)
	require.Len(t, all, 100)
	none, err := e.finishedBefore(time.Now().Add(-2*time.Hour), "")
	require.NoError(t, err)
	require.Empty(t, none)
}

// indexedJobs lists the jobs an index holds under prefix, newest first.
func indexedJobs(t *testing.T, tx Tx, bucket string, prefix []byte) []uint64 {
	t.Helper()
	var seqs []uint64
	require.NoError(t, scanIndexReverse(tx, bucket, prefix, 0, func(seq uint64) bool { seqs = append(seqs, seq); return true }))
	return seqs
}

// The indexes follow a job through its changes and its deletion; one
// owner's entries never show under another whose name is its prefix.
func TestIndexJob_FollowsTheJob(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore()
	defer s.Close()
	finished := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, s.Update(func(tx Tx) error {
		require.NoError(t, indexJob(tx, 1, &jobRecord{Job: Job{Status: StateRunning, Owner: "a"}}))
		require.NoError(t, indexJob(tx, 2, &jobRecord{Job: Job{Status: StateRunning, Owner: "ab"}}))
		require.NoError(t, indexJob(tx, 3, &jobRecord{Job: Job{Status: StateCompleted, Owner: "a", FinishedAt: &finished}, UndoRetention: Duration(time.Hour)}))

		by := func(state State, owner string) []uint64 {
			bucket, prefix := jobListIndex(state, owner)
			return indexedJobs(t, tx, bucket, prefix)
		}
		require.Equal(t, []uint64{3, 1}, by("", "a"))
		require.Equal(t, []uint64{2}, by("", "ab"))
		require.Equal(t, []uint64{2, 1}, by(StateRunning, ""))
		require.Equal(t, []uint64{1}, by(StateRunning, "a"))
		require.Equal(t, []uint64{3}, by(StateCompleted, "a"))

		var before []uint64
		collect := func(seq uint64) bool { before = append(before, seq); return true }
		require.NoError(t, finishedJobsBefore(tx, finished, collect))
		require.Empty(t, before, "finished at the cutoff is not before it")
		require.NoError(t, finishedJobsBefore(tx, finished.Add(time.Nanosecond), collect))
		require.Equal(t, []uint64{3}, before)
		var undoDue []uint64
		require.NoError(t, undoDueBy(tx, finished.Add(time.Hour-time.Nanosecond), func(seq uint64) bool { undoDue = append(undoDue, seq); return true }))
		require.Empty(t, undoDue, "before-images kept until their retention ends")
		require.NoError(t, undoDueBy(tx, finished.Add(time.Hour), func(seq uint64) bool { undoDue = append(undoDue, seq); return true }))
		require.Equal(t, []uint64{3}, undoDue)

		// Job 1 finishes and changes hands; job 3 is deleted.
		require.NoError(t, indexJob(tx, 1, &jobRecord{Job: Job{Status: StateFailed, Owner: "b", FinishedAt: &finished}}))
		require.NoError(t, deleteJobRecord(tx, 3))
		require.Empty(t, by("", "a"))
		require.Equal(t, []uint64{1}, by(StateFailed, "b"))
		require.Empty(t, by(StateCompleted, ""))
		require.Equal(t, []uint64{2}, by(StateRunning, ""))
		before = nil
		require.NoError(t, finishedJobsBefore(tx, finished.Add(time.Hour), collect))
		require.Equal(t, []uint64{1}, before)
		require.Nil(t, tx.Get(bucketJobIndex, u64key(3)))
		require.NoError(t, undoDueBy(tx, finished.Add(1000*time.Hour), func(seq uint64) bool { t.Errorf("job %d still due", seq); return true }))
		return nil
	}))
	bucket, prefix := jobListIndex("", "")
	require.Empty(t, bucket)
	require.Empty(t, prefix)
}

func TestIndexEntry_Encoding(t *testing.T) {
	t.Parallel()
	for _, ie := range []indexEntry{
		{state: StateQueued},
		{state: StateCompleted, owner: "owner with ünïcode", finished: 1 << 62},
		{state: StateCompleted, owner: "x", finished: 1, undoDue: 2},
	} {
		got, ok := decodeIndexEntry(ie.encode())
		require.True(t, ok)
		require.Equal(t, ie, got)
	}
	good := indexEntry{state: StateRunning, owner: "alice"}.encode()
	for _, bad := range [][]byte{nil, good[:len(good)-1], append(good, 0), {0xff, 0xff}} {
		_, ok := decodeIndexEntry(bad)
		require.False(t, ok, "%x", bad)
	}
}

// The record cache serves a finished job's record only while its stored
// bytes are the same, and always a copy.
func TestRecCache(t *testing.T) {
	t.Parallel()
	var c recCache
	raw := []byte(`{"id":"batch1","status":"completed","type":"a"}`)
	r1, err := c.get(1, raw)
	require.NoError(t, err)
	r1.Type = "changed by a caller"
	r2, err := c.get(1, raw)
	require.NoError(t, err)
	require.Equal(t, "a", r2.Type, "a copy each time")
	r3, err := c.get(1, []byte(`{"id":"batch1","status":"completed","type":"b"}`))
	require.NoError(t, err)
	require.Equal(t, "b", r3.Type, "other bytes are decoded anew")
	_, err = c.get(2, []byte(`{`))
	require.Error(t, err)
}

// Pruning before-images reads only the jobs whose retention ended: the
// jobs_undo_due index, not every job record.
func TestPruneUndo_ReadsOnlyDueJobs(t *testing.T) {
	t.Parallel()
	e, cs := openCounting(t, 2000, time.Now(), nil)
	now := time.Now()
	var due, kept []uint64
	require.NoError(t, e.store.Update(func(tx Tx) error {
		for i, age := range []time.Duration{3 * time.Hour, 2 * time.Hour, 30 * time.Minute, 90 * time.Minute, 10 * time.Minute} {
			seq, err := tx.NextSequence(bucketJobs)
			if err != nil {
				return err
			}
			id := formatJobID(seq)
			finished := now.Add(-age)
			rec := &jobRecord{
				Job:           Job{ID: id, Status: StateCompleted, Owner: "owner1", CreatedAt: finished, FinishedAt: &finished},
				UndoRetention: Duration(time.Hour),
			}
			if err := putJob(tx, seq, rec); err != nil {
				return err
			}
			if err := tx.Put(undoBucket(id), []byte(fmt.Sprint(i)), []byte{undoBefore}); err != nil {
				return err
			}
			if age > time.Hour {
				due = append(due, seq)
			} else {
				kept = append(kept, seq)
			}
		}
		return nil
	}))
	cs.jobReads.Store(0)
	n, err := e.pruneUndo(t.Context(), now)
	require.NoError(t, err)
	require.Equal(t, int64(len(due)), n)
	require.LessOrEqual(t, cs.jobReads.Load(), int64(2*len(due)), "job records read to prune %d jobs among 2,005", len(due))
	require.NoError(t, e.store.View(func(tx Tx) error {
		for _, seq := range due {
			rec, err := getJob(tx, seq)
			require.NoError(t, err)
			require.True(t, rec.UndoPurged)
			require.Nil(t, tx.Get(undoBucket(rec.ID), []byte("0")))
		}
		for _, seq := range kept {
			rec, err := getJob(tx, seq)
			require.NoError(t, err)
			require.False(t, rec.UndoPurged)
		}
		return nil
	}))
	// Purged jobs left the index: a second pass finds nothing.
	n, err = e.pruneUndo(t.Context(), now)
	require.NoError(t, err)
	require.Zero(t, n)
}

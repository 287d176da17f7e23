package batch

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// heldElsewhere is a countingStore shared with other processes that hold
// every lease: the claim loop looks at the jobs nobody runs here and takes
// none.
type heldElsewhere struct{ *countingStore }

func (heldElsewhere) Claim(context.Context, string) (uint64, bool, error) { return 0, false, nil }
func (heldElsewhere) Renew(context.Context) (map[string]bool, error)      { return nil, nil }
func (heldElsewhere) Release(context.Context, string) error               { return nil }

// putJobs stores a job record in each of states.
func putJobs(t *testing.T, s Store, states ...State) {
	t.Helper()
	now := time.Now()
	require.NoError(t, s.Update(func(tx Tx) error {
		for _, st := range states {
			seq, err := tx.NextSequence(bucketJobs)
			if err != nil {
				return err
			}
			rec := &jobRecord{Job: Job{ID: formatJobID(seq), Status: st, CreatedAt: now, Progress: Progress{TotalOperations: 1}},
				Ops: []opRange{{Count: 1, Selected: true}}, Options: BatchOptions{}.withDefaults()}
			if st.Final() {
				rec.StartedAt, rec.FinishedAt, rec.Progress.Completed = &now, &now, 1
			}
			if err := putJob(tx, seq, rec); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Issue 15: one poll of the claim loop reads the queued and running jobs
// through the jobs_by_state index, not every job record: with 10 or 10,000
// finished jobs beside 3 queued and 2 running ones it reads the same 5
// records.
func TestClaimLoop_ReadsOnlyActiveJobs(t *testing.T) {
	t.Parallel()
	reads := map[int]int64{}
	for _, finished := range []int{10, 10000} {
		bs := NewMemoryStore()
		putJobs(t, bs, slices.Repeat([]State{StateCompleted}, finished)...)
		cs := &countingStore{Store: bs}
		// The loop's own ticks wait an hour: the test polls by hand.
		e, err := New(heldElsewhere{cs}, &Options{Retention: -1, ClaimPoll: time.Hour})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close(context.Background()) })
		// Jobs other processes submitted and run.
		putJobs(t, bs, StateQueued, StateRunning, StateQueued, StateRunning, StateQueued)
		before := cs.jobReads.Load()
		e.claimTick()
		e.helpWG.Wait()
		reads[finished] = cs.jobReads.Load() - before
	}
	t.Logf("job records read by one claim poll: %v (by finished jobs)", reads)
	require.Equal(t, int64(5), reads[10], "the queued and running jobs")
	require.Equal(t, reads[10], reads[10000], "finished jobs cost nothing")
}

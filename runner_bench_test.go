package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// smallJobs is how many one-item jobs BenchmarkSmallJobs submits.
const smallJobs = 2000

// submitters is how many goroutines submit them.
const submitters = 8

// floorSmallJobs does one fsync'd bbolt Update per job from 8 goroutines,
// each writing a job record the size of the engine's, and returns how long
// it took.
func floorSmallJobs(b *testing.B, n int) time.Duration {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rec, _ := json.Marshal(&jobRecord{Job: Job{ID: "batch1234", Status: StateCompleted, CreatedAt: time.Now(), Progress: Progress{TotalOperations: 1, Completed: 1}},
		Options: BatchOptions{}.withDefaults()})
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range submitters {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				err := db.Update(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists([]byte("jobs"))
					if err != nil {
						return err
					}
					seq, _ := bk.NextSequence()
					return bk.Put(u64key(seq), rec)
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkSmallJobs submits 2,000 one-item no-op jobs from 8 goroutines
// on a bbolt file and measures submit to all completed, beside the floor:
// raw bbolt doing one fsync'd Update per job from 8 goroutines; the ratio
// wanted is at least 1.0 with the default MaxRunningJobs (16). "running=64"
// lets 64 jobs run at once (one-item jobs spend their life waiting for a
// commit); "running=4" shows what too few slots cost.
func BenchmarkSmallJobs(b *testing.B) {
	for _, running := range []int{64, DefaultMaxRunningJobs, 4} {
		b.Run(fmt.Sprintf("running=%d", running), func(b *testing.B) { benchSmallJobs(b, running) })
	}
}

func benchSmallJobs(b *testing.B, running int) {
	n := smallJobs
	if testing.Short() {
		n = 200
	}
	var engine, floor time.Duration
	for b.Loop() {
		floor += floorSmallJobs(b, n)
		e := openBench(b, &Options{MaxRunningJobs: running})
		bt := &Batch{Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": 1}}}}
		ids := make(chan string, n)
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range submitters {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					job, err := e.Submit(context.Background(), bt, nil)
					if err != nil {
						b.Error(err)
						return
					}
					ids <- job.ID
				}
			})
		}
		wg.Wait()
		close(ids)
		for id := range ids {
			job, err := e.Wait(context.Background(), id)
			if err != nil || job.Status != StateCompleted {
				b.Fatalf("job %s: %v %v", id, job.Status, err)
			}
		}
		engine += time.Since(start)
		e.Close(context.Background())
	}
	jobs := float64(b.N * n)
	b.ReportMetric(jobs/engine.Seconds(), "engine_jobs/s")
	b.ReportMetric(jobs/floor.Seconds(), "floor_jobs/s")
	b.ReportMetric(floor.Seconds()/engine.Seconds(), "ratio")
}

// bytesPerItem measures what running a job allocates per item.
func bytesPerItem(b *testing.B, e *Engine, bt *Batch, items int) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runToEnd(b, e, bt)
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(items)
}

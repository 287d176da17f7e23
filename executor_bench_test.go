package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The benchmarks here report rates with b.ReportMetric and compare the
// engine with raw bbolt doing the same writes in the same run, because
// machines are noisy: read the ratios, not the absolute figures.

const benchItems = 100_000

// noopOperation has params.count items that do nothing.
var noopOperation = OperationFunc(func(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	n, _ := spec.Params["count"].(float64)
	return &Plan{
		Count: int64(n),
		Item: func(i int64) (Item, error) {
			return Item{ResourceID: "item" + strconv.FormatInt(i, 10)}, nil
		},
		Run: func(context.Context, *Item) error { return nil },
	}, nil
})

func openBench(b *testing.B, opts *Options) *Engine {
	b.Helper()
	e, err := Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.RegisterOperation("noop", noopOperation); err != nil {
		b.Fatal(err)
	}
	return e
}

func runToEnd(b *testing.B, e *Engine, bt *Batch) *Job {
	b.Helper()
	job, err := e.Submit(context.Background(), bt, nil)
	if err != nil {
		b.Fatal(err)
	}
	job, err = e.Wait(context.Background(), job.ID)
	if err != nil {
		b.Fatal(err)
	}
	if job.Status != StateCompleted || job.Progress.Failed != 0 {
		b.Fatalf("job %s: %s, %d failed", job.ID, job.Status, job.Progress.Failed)
	}
	return job
}

// floorOutcomes writes n successful item outcomes with raw bbolt, one
// record per item in 1,000-record transactions (the floor the issue
// names), and returns how long it took. The engine itself stores a
// success as a bit in a bitmap block, so it writes far less than this
// floor does.
func floorOutcomes(b *testing.B, n int) time.Duration {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	for base := 0; base < n; base += 1000 {
		err := db.Update(func(tx *bolt.Tx) error {
			items, err := tx.CreateBucketIfNotExists([]byte("items"))
			if err != nil {
				return err
			}
			job, err := items.CreateBucketIfNotExists([]byte("batch1"))
			if err != nil {
				return err
			}
			for i := base; i < min(base+1000, n); i++ {
				rec := itemRecord{State: itemSucceeded, Attempts: 1, Duration: time.Microsecond, ResourceID: "item" + strconv.Itoa(i)}
				if err := job.Put(u64key(uint64(i)), appendItem(nil, &rec)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkNoop runs a job of 100,000 no-op items on the bbolt store (fsync
// on, max_concurrent 8) beside the floor: raw bbolt writing the same
// outcomes in 1,000-record transactions. The issue asks for a ratio of at
// least 0.5 and at most 300 bytes allocated per item (B/item: everything the
// process allocated while the job ran, bbolt included).
func BenchmarkNoop(b *testing.B) {
	var engine, floor time.Duration
	var perItem, floorPerItem float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		floor += floorOutcomes(b, benchItems)
		runtime.ReadMemStats(&after)
		floorPerItem += float64(after.TotalAlloc-before.TotalAlloc) / benchItems
		e := openBench(b, nil)
		start := time.Now()
		perItem += bytesPerItem(b, e, &Batch{
			Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": benchItems}}},
			Options:    BatchOptions{MaxConcurrent: 8},
		}, benchItems)
		engine += time.Since(start)
		e.Close(context.Background())
	}
	n := float64(b.N * benchItems)
	b.ReportMetric(perItem/float64(b.N), "B/item")
	b.ReportMetric(floorPerItem/float64(b.N), "floor_B/item")
	b.ReportMetric(n/engine.Seconds(), "engine_items/s")
	b.ReportMetric(n/floor.Seconds(), "floor_items/s")
	b.ReportMetric(floor.Seconds()/engine.Seconds(), "ratio")
}

// benchFields makes n fields like the tests' seedFields: a quarter match the
// document's filter (active and irrigation enabled).
func benchFields(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			"id":                 fmt.Sprintf("field%07d", i),
			"name":               "Field " + strconv.Itoa(i),
			"status":             []string{"active", "inactive"}[i%2],
			"irrigation_enabled": i%4 < 2,
			"crop_type":          []string{"rice", "corn", "wheat"}[i%3],
			"area":               float64(i%50 + 1),
		}
	}
	return recs
}

// docUpdate is the API document's Create Batch Job request.
func docUpdate() *Batch {
	return &Batch{
		Type: "field_update",
		Operations: []OperationSpec{{
			Type: "update", Resource: "fields",
			Filter: map[string]any{"status": "active", "irrigation_enabled": true},
			Update: map[string]any{"irrigation_schedule": map[string]any{"frequency": "daily", "start_time": "06:00", "duration_minutes": 30}},
		}},
		Options: BatchOptions{
			MaxConcurrent: 5,
			Retry:         RetryOptions{Attempts: 3, Backoff: BackoffExponential},
			Validation:    ValidationOptions{Mode: ModeStrict, OnError: OnErrorSkip},
		},
	}
}

// floorUpdate does the document's update with raw bbolt: scan the
// collection, decode, match, merge, encode and write, 1,000 updates per
// transaction.
func floorUpdate(b *testing.B, recs []Record) (time.Duration, int) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for base := 0; base < len(recs); base += 1000 {
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("fields"))
			if err != nil {
				return err
			}
			for _, r := range recs[base:min(base+1000, len(recs))] {
				v, _ := json.Marshal(r)
				if err := bk.Put([]byte(r.ID()), v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	q := docUpdate().Operations[0]
	filter, _ := normalizeJSON(q.Filter)
	patch, _ := normalizeJSON(q.Update)
	query := &Query{Filter: filter}
	start := time.Now()
	var from []byte
	updated := 0
	for {
		type kv struct {
			k []byte
			v []byte
		}
		var batch []kv
		if err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte("fields")).Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
				if k != nil && string(k) == string(from) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(batch) < 1000; k, v = c.Next() {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
				from = append(from[:0], k...)
				if query.Match(r) {
					nv, _ := json.Marshal(mergePatch(r, patch))
					batch = append(batch, kv{append([]byte(nil), k...), nv})
				}
			}
			if k == nil {
				from = nil
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if len(batch) > 0 {
			if err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket([]byte("fields"))
				for _, x := range batch {
					if err := bk.Put(x.k, x.v); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			updated += len(batch)
		}
		if from == nil {
			break
		}
	}
	return time.Since(start), updated
}

// BenchmarkUpdate runs the document's update request over 100,000 built-in
// records of which 25,000 match, beside raw bbolt doing the same updates
// (scan, decode, match, merge, encode, write) in the same run. "indexed"
// declares indexes on status and crop_type (the issue asks for a ratio of
// at least 1.0), "unindexed" none (at least 0.75). It also reports the
// engine's heap allocations per updated record.
func BenchmarkUpdate(b *testing.B) {
	recs := benchFields(benchItems)
	for _, tt := range []struct {
		name    string
		indexes []string
	}{{"indexed", []string{"status", "crop_type"}}, {"unindexed", nil}} {
		b.Run(tt.name, func(b *testing.B) {
			var engine, floor time.Duration
			var allocs, bytes uint64
			for b.Loop() {
				d, n := floorUpdate(b, recs)
				if n != benchItems/4 {
					b.Fatalf("floor updated %d records", n)
				}
				floor += d
				e := openBench(b, nil)
				if err := e.DefineCollection("fields", &CollectionOptions{Indexes: tt.indexes}); err != nil {
					b.Fatal(err)
				}
				fields, _ := e.Collection("fields")
				if err := fields.PutMany(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
				if err := fields.WaitIndexes(context.Background()); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				start := time.Now()
				job := runToEnd(b, e, docUpdate())
				engine += time.Since(start)
				runtime.ReadMemStats(&after)
				allocs += after.Mallocs - before.Mallocs
				bytes += after.TotalAlloc - before.TotalAlloc
				if job.Progress.Completed != benchItems/4 {
					b.Fatalf("engine updated %d records", job.Progress.Completed)
				}
				e.Close(context.Background())
			}
			n := float64(b.N * benchItems / 4)
			b.ReportMetric(n/engine.Seconds(), "engine_items/s")
			b.ReportMetric(n/floor.Seconds(), "floor_items/s")
			b.ReportMetric(floor.Seconds()/engine.Seconds(), "ratio")
			b.ReportMetric(float64(allocs)/n, "allocs/record")
			b.ReportMetric(float64(bytes)/n, "B/record")
		})
	}
}

// heapSampler records the peak Go heap (live and unswept objects) while it
// runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	h.done.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
	return h
}

func (h *heapSampler) finish() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak.Load()
}

// BenchmarkMillionRecords runs an update over 1,000,000 built-in records (a
// tenth of that with -short) and reports the peak Go heap while the job
// runs. The issue asks for under 100 MiB.
func BenchmarkMillionRecords(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	for b.Loop() {
		e := openBench(b, nil)
		fields, _ := e.Collection("fields")
		for base := 0; base < n; base += 50_000 {
			recs := benchFields(min(50_000, n-base))
			for i := range recs {
				recs[i]["id"] = fmt.Sprintf("field%07d", base+i)
			}
			if err := fields.PutMany(context.Background(), recs); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		h := startHeapSampler()
		start := time.Now()
		job := runToEnd(b, e, &Batch{
			Operations: []OperationSpec{{Type: "update", Resource: "fields", Where: "true", Update: map[string]any{"checked": true}}},
			Options:    BatchOptions{MaxConcurrent: 8, Validation: ValidationOptions{Mode: ModeLenient}},
		})
		elapsed := time.Since(start)
		peak := h.finish()
		if job.Progress.Completed != int64(n) {
			b.Fatalf("updated %d of %d", job.Progress.Completed, n)
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "items/s")
		e.Close(context.Background())
	}
}

// BenchmarkStatusRead reads a running job's status in a loop while a
// 100,000-item job runs and reports the 99th percentile. The issue asks for
// under a millisecond.
func BenchmarkStatusRead(b *testing.B) {
	for b.Loop() {
		e := openBench(b, nil)
		job, err := e.Submit(context.Background(), &Batch{
			Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": benchItems}}},
			Options:    BatchOptions{MaxConcurrent: 8},
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var lat []time.Duration
		for {
			start := time.Now()
			j, err := e.Job(context.Background(), job.ID)
			lat = append(lat, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if j.Status.Final() {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_µs")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max_µs")
		b.ReportMetric(float64(len(lat)), "reads")
		e.Close(context.Background())
	}
}

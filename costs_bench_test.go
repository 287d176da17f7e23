package batch

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The benchmarks here measure how costs grow with the store: each reports
// the figure at a small size beside the same figure at a large one, in the
// same run. The large sizes are skipped with -short.

// seedJobs writes n finished jobs straight into the store at path, as the
// engine lays them out: job record (with its indexes), batch, a done bitmap
// and an audit trail of three entries. Job i belongs to owner i%10 and is
// completed, except every 20th, which failed.
func seedJobs(b testing.TB, path string, n int, finished time.Time) {
	b.Helper()
	s, err := OpenBoltStore(path, &BoltOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batchJSON := []byte(`{"operations":[{"type":"noop","params":{"count":1}}]}`)
	if err := s.Update(func(tx Tx) error { return tx.Put(bucketStoreMeta, jobIndexVersionKey, jobIndexVersion) }); err != nil {
		b.Fatal(err)
	}
	for base := 0; base < n; base += 5000 {
		err := s.Update(func(tx Tx) error {
			for i := base; i < min(base+5000, n); i++ {
				seq, err := tx.NextSequence(bucketJobs)
				if err != nil {
					return err
				}
				id := formatJobID(seq)
				started := finished.Add(-time.Millisecond)
				rec := &jobRecord{
					Job: Job{ID: id, Status: StateCompleted, Owner: fmt.Sprintf("owner%d", i%10),
						CreatedAt: started, StartedAt: &started, FinishedAt: &finished,
						Progress: Progress{TotalOperations: 1, Completed: 1}},
					Ops:     []opRange{{Count: 1, Selected: true}},
					Options: BatchOptions{}.withDefaults(),
				}
				if i%20 == 0 {
					rec.Status, rec.Progress.Completed, rec.Progress.Failed = StateFailed, 0, 1
				}
				if err := tx.Put(bucketBatches, u64key(seq), batchJSON); err != nil {
					return err
				}
				if err := putJob(tx, seq, rec); err != nil {
					return err
				}
				if err := tx.Put(doneBucket(id), u64key(0), []byte{1}); err != nil {
					return err
				}
				for _, t := range []EventType{EventJobCreated, EventJobStarted, EventJobCompleted} {
					if err := writeAudit(tx, Event{Type: t, At: finished, JobID: id, Job: &rec.Job}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// openSeeded opens an engine over a seeded file, retention off.
// sized is full, or short with -short.
func sized(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// seededJobs seeds n finished jobs (see seedJobs) in a new store file and
// returns its path.
func seededJobs(b *testing.B, n int, finished time.Time) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "jobs.db")
	seedJobs(b, path, n, finished)
	return path
}

func openSeeded(b *testing.B, path string) *Engine {
	b.Helper()
	e, err := Open(path, &Options{Retention: -1})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func p99(lat []time.Duration) time.Duration {
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}

// BenchmarkJobsList reads the first page (50 jobs) of Jobs filtered by
// owner, by state (failed: one job in 20) and by both, full pages at both sizes, with 1,000 and
// 100,000 stored jobs, and reports the 99th percentile of each. The two
// stores are open together and read in turn, so that the machine's noise
// falls on both alike. The issue asks for under 2 ms at 100,000, within 2x
// of the same page at 1,000 (ratio_* = p99 at 100,000 over p99 at 1,000).
func BenchmarkJobsList(b *testing.B) {
	sizes := []int{1000, 100_000}
	if testing.Short() {
		sizes = []int{1000, 5000}
	}
	filters := []struct {
		name string
		opts ListOptions
	}{
		{"owner", ListOptions{Owner: "owner3"}},
		{"state", ListOptions{State: StateFailed}},
		{"owner_state", ListOptions{Owner: "owner0", State: StateFailed}},
	}
	engines := make([]*Engine, len(sizes))
	for i, n := range sizes {
		path := seededJobs(b, n, time.Now())
		engines[i] = openSeeded(b, path)
		defer engines[i].Close(context.Background())
	}
	runtime.GC()
	const reads = 1000
	for b.Loop() {
		for _, f := range filters {
			lat := make([][]time.Duration, len(sizes))
			for range reads {
				for i, e := range engines {
					start := time.Now()
					page, err := e.Jobs(context.Background(), &f.opts)
					lat[i] = append(lat[i], time.Since(start))
					if err != nil || len(page.Items) == 0 {
						b.Fatalf("%s: %d jobs, %v", f.name, len(page.Items), err)
					}
				}
			}
			small, big := p99(lat[0]), p99(lat[1])
			b.ReportMetric(float64(small.Microseconds()), fmt.Sprintf("p99_%s_%d_µs", f.name, sizes[0]))
			b.ReportMetric(float64(big.Microseconds()), fmt.Sprintf("p99_%s_%d_µs", f.name, sizes[1]))
			b.ReportMetric(float64(big)/float64(max(small, 1)), "ratio_"+f.name)
		}
	}
}

// BenchmarkOpen opens a store of finished jobs (100,000; 5,000 with -short)
// and reports the time Open takes, beside opening the same file with bbolt
// alone. The issue asks for under 50 ms at 100,000.
func BenchmarkOpen(b *testing.B) {
	n := sized(100_000, 5000)
	path := seededJobs(b, n, time.Now())
	openSeeded(b, path).Close(context.Background()) // builds nothing: seeded with indexes
	var engine, floor time.Duration
	for b.Loop() {
		start := time.Now()
		s, err := OpenBoltStore(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		floor += time.Since(start)
		s.Close()
		start = time.Now()
		e := openSeeded(b, path)
		engine += time.Since(start)
		e.Close(context.Background())
	}
	b.ReportMetric(float64(engine.Microseconds())/float64(b.N), "open_µs")
	b.ReportMetric(float64(floor.Microseconds())/float64(b.N), "bolt_open_µs")
	b.ReportMetric(float64(n), "jobs")
}

// BenchmarkCleanup deletes finished one-item jobs (20,000; 2,000 with
// -short), each with its batch, done bitmap and audit trail, and reports
// jobs deleted per second. The issue asks for at least 5,000.
func BenchmarkCleanup(b *testing.B) {
	n := sized(20_000, 2000)
	var elapsed time.Duration
	var before, after int64
	for b.Loop() {
		b.StopTimer()
		path := seededJobs(b, n, time.Now().Add(-48*time.Hour))
		e := openSeeded(b, path)
		fi, _ := os.Stat(path)
		before = fi.Size()
		b.StartTimer()
		start := time.Now()
		st, err := e.Cleanup(context.Background(), time.Now().Add(-24*time.Hour))
		elapsed += time.Since(start)
		if err != nil || st.Jobs != int64(n) {
			b.Fatalf("cleaned %d of %d: %v", st.Jobs, n, err)
		}
		e.Close(context.Background())
		fi, _ = os.Stat(path)
		after = fi.Size()
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N*((n+cleanupChunk-1)/cleanupChunk)), "ms/transaction")
	b.ReportMetric(float64(before)/(1<<20), "file_before_MiB")
	b.ReportMetric(float64(after)/(1<<20), "file_after_MiB")
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWaiters submits one-item no-op jobs and waits for each: one by
// one, then all at once with a Wait per job (3,000; 300 with -short), and
// reports the CPU time per job of each. The issue asks that waiting all at
// once costs no more per job (ratio = concurrent over one by one, <= 1).
func BenchmarkWaiters(b *testing.B) {
	n := sized(3000, 100)
	bt := &Batch{Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": 1}}}}
	var seqCPU, concCPU time.Duration
	for b.Loop() {
		e := openBench(b, &Options{MaxRunningJobs: 64})
		start := cpuTime()
		for range n {
			runToEnd(b, e, bt)
		}
		seqCPU += cpuTime() - start
		e.Close(context.Background())

		e = openBench(b, &Options{MaxRunningJobs: 64})
		release := make(chan struct{})
		if err := e.RegisterOperation("gate", OperationFunc(func(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
			return &Plan{Count: 1, Item: func(int64) (Item, error) { return Item{}, nil },
				Run: func(context.Context, *Item) error { <-release; return nil }}, nil
		})); err != nil {
			b.Fatal(err)
		}
		// The jobs wait queued behind 64 held ones, so every Wait is in
		// place before the first job ends.
		var held []string
		for range 64 {
			j, err := e.Submit(context.Background(), &Batch{Operations: []OperationSpec{{Type: "gate"}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, j.ID)
		}
		start = cpuTime()
		ids := make([]string, n)
		for i := range ids {
			j, err := e.Submit(context.Background(), bt, nil)
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = j.ID
		}
		var wg sync.WaitGroup
		var ready sync.WaitGroup
		ready.Add(n)
		for _, id := range ids {
			wg.Go(func() {
				ready.Done()
				if _, err := e.Wait(context.Background(), id); err != nil {
					b.Error(err)
				}
			})
		}
		ready.Wait()
		close(release)
		wg.Wait()
		concCPU += cpuTime() - start
		for _, id := range held {
			e.Wait(context.Background(), id)
		}
		e.Close(context.Background())
	}
	jobs := float64(b.N * n)
	b.ReportMetric(float64(seqCPU.Microseconds())/jobs, "one_by_one_cpu_µs/job")
	b.ReportMetric(float64(concCPU.Microseconds())/jobs, "concurrent_cpu_µs/job")
	b.ReportMetric(float64(concCPU)/float64(seqCPU), "ratio")
}

// BenchmarkNoopDisk runs one all-succeeding no-op job (10,000,000 items;
// 100,000 with -short) and reports the bytes on disk it left per item: the
// file's growth over the same engine's file before the job, and the whole
// file over the items (an upper bound). The issue asks for at most 20
// bytes per item at 10,000,000.
func BenchmarkNoopDisk(b *testing.B) {
	n := sized(10_000_000, 100_000)
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "bench.db")
		e, err := Open(path, &Options{Retention: -1})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.RegisterOperation("noop", noopOperation); err != nil {
			b.Fatal(err)
		}
		fi, _ := os.Stat(path)
		before := fi.Size()
		start := time.Now()
		runToEnd(b, e, &Batch{
			Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": n}}},
			Options:    BatchOptions{MaxConcurrent: 8},
		})
		elapsed := time.Since(start)
		e.Close(context.Background())
		fi, _ = os.Stat(path)
		b.ReportMetric(float64(fi.Size()-before)/float64(n), "growth_B/item")
		b.ReportMetric(float64(fi.Size())/float64(n), "file_B/item")
		b.ReportMetric(float64(fi.Size())/(1<<20), "file_MiB")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "items/s")
	}
}

// ndjsonFields writes n field records as ndjson, about 100 bytes each,
// without holding them.
func ndjsonFields(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for i := range n {
		fmt.Fprintf(bw, `{"id":"field%07d","name":"Field %d","status":%q,"irrigation_enabled":%t,"crop_type":%q,"area":%d}`+"\n",
			i, i, []string{"active", "inactive"}[i%2], i%4 < 2, []string{"rice", "corn", "wheat"}[i%3], i%50+1)
	}
	return bw.Flush()
}

// slowestSmallSubmit submits 20 one-item jobs to e and returns the
// slowest submission.
func slowestSmallSubmit(b *testing.B, e *Engine) time.Duration {
	small := &Batch{Operations: []OperationSpec{{Type: "noop", Params: map[string]any{"count": 1}}}}
	var worst time.Duration
	for range 20 {
		start := time.Now()
		if _, err := e.Submit(context.Background(), small, nil); err != nil {
			b.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	return worst
}

// BenchmarkImportUpload uploads an ndjson file of 1,000,000 field records
// (about 100 MB; 20,000 with -short) from a stream, imports it and reports
// the peak Go heap from the upload to the job's end, then times small
// submissions (a one-item job each, submitted and run to its end) after
// the import beside the same before it. The issue asks for a peak heap
// under 100 MiB and a small Submit under 50 ms after the import.
func BenchmarkImportUpload(b *testing.B) {
	n := sized(1_000_000, 20_000)
	for b.Loop() {
		e := openBench(b, &Options{Retention: -1})
		before := slowestSmallSubmit(b, e)
		runtime.GC()
		h := startHeapSampler()
		start := time.Now()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(ndjsonFields(pw, n)) }()
		up, err := e.Upload(context.Background(), pr)
		if err != nil {
			b.Fatal(err)
		}
		uploaded := time.Since(start)
		job := runToEnd(b, e, &Batch{
			Operations: []OperationSpec{{Type: "import", Resource: "fields", Source: &Source{Format: "ndjson", Upload: up.ID}}},
			Options:    BatchOptions{MaxConcurrent: 8},
		})
		elapsed := time.Since(start)
		peak := h.finish()
		if job.Progress.Completed != int64(n) {
			b.Fatalf("imported %d of %d", job.Progress.Completed, n)
		}
		after := slowestSmallSubmit(b, e)
		b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
		b.ReportMetric(float64(up.Size)/(1<<20), "upload_MiB")
		b.ReportMetric(uploaded.Seconds(), "upload_s")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(before.Microseconds()), "max_submit_before_µs")
		b.ReportMetric(float64(after.Microseconds()), "max_submit_after_µs")
		e.Close(context.Background())
	}
}

// BenchmarkOptimizeStatusReads runs the optimize operation on a store of
// finished jobs of about 200 MB (8 MB with -short) while a reader reads the
// status of stored jobs in a loop, and reports the reads' 99th percentile
// and worst case beside the same reads with nothing else running. The issue
// asks for a p99 under 50 ms.
func BenchmarkOptimizeStatusReads(b *testing.B) {
	n := sized(72_000, 2000)
	path := seededJobs(b, n, time.Now())
	e := openSeeded(b, path)
	defer e.Close(context.Background())
	read := func(stop <-chan struct{}, count int) []time.Duration {
		var lat []time.Duration
		for i := 0; ; i++ {
			select {
			case <-stop:
				return lat
			default:
			}
			if count > 0 && i == count {
				return lat
			}
			start := time.Now()
			if _, err := e.Job(context.Background(), formatJobID(uint64(1+(i*7919)%n))); err != nil {
				b.Error(err)
				return lat
			}
			lat = append(lat, time.Since(start))
			time.Sleep(100 * time.Microsecond)
		}
	}
	for b.Loop() {
		idle := read(nil, 2000)
		fi, _ := os.Stat(path)
		stop := make(chan struct{})
		var busy []time.Duration
		var wg sync.WaitGroup
		wg.Go(func() { busy = read(stop, 0) })
		start := time.Now()
		job := runToEnd(b, e, &Batch{Operations: []OperationSpec{{Type: "optimize"}}})
		took := time.Since(start)
		close(stop)
		wg.Wait()
		if job.Status != StateCompleted {
			b.Fatalf("optimize: %s", job.Status)
		}
		slices.Sort(busy)
		b.ReportMetric(float64(fi.Size())/(1<<20), "store_MiB")
		b.ReportMetric(took.Seconds(), "optimize_s")
		b.ReportMetric(float64(p99(idle).Microseconds()), "idle_p99_µs")
		b.ReportMetric(float64(p99(busy).Microseconds()), "p99_µs")
		b.ReportMetric(float64(busy[len(busy)-1].Microseconds()), "max_µs")
		b.ReportMetric(float64(len(busy)), "reads")
	}
}

// BenchmarkSubmitAfterBigBatch submits an import with 300,000 records
// inline (about 30 MB, under the API's request limit; 5,000 with -short)
// and reports the slowest of 20 small submissions after it beside the
// slowest of 20 before it. A big batch is stored in chunks, so later
// submissions do not rewrite it.
func BenchmarkSubmitAfterBigBatch(b *testing.B) {
	n := sized(300_000, 5000)
	var nd bytes.Buffer
	if err := ndjsonFields(&nd, n); err != nil {
		b.Fatal(err)
	}
	data := nd.String()
	for b.Loop() {
		e := openBench(b, &Options{Retention: -1})
		before := slowestSmallSubmit(b, e)
		big, err := e.Submit(context.Background(), &Batch{Operations: []OperationSpec{{Type: "import", Resource: "fields", Source: &Source{Format: "ndjson", Data: data}}}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Pause(context.Background(), big.ID); err != nil {
			b.Fatal(err)
		}
		after := slowestSmallSubmit(b, e)
		b.ReportMetric(float64(len(data))/(1<<20), "batch_MiB")
		b.ReportMetric(float64(before.Microseconds()), "max_submit_before_µs")
		b.ReportMetric(float64(after.Microseconds()), "max_submit_after_µs")
		e.Close(context.Background())
	}
}

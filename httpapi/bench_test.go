package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// countOp is a custom operation of params.count items that each run run.
func countOp(run func(context.Context) error) batch.Operation {
	return batch.OperationFunc(func(ctx context.Context, spec *batch.OperationSpec, env *batch.Env) (*batch.Plan, error) {
		n, _ := spec.Params["count"].(float64)
		return &batch.Plan{
			Count: int64(n),
			Item:  func(i int64) (batch.Item, error) { return batch.Item{ResourceID: strconv.FormatInt(i, 10)}, nil },
			Run:   func(ctx context.Context, _ *batch.Item) error { return run(ctx) },
		}, nil
	})
}

// noop is an operation of params.count items that do nothing.
var noop = countOp(func(context.Context) error { return nil })

// wait is an operation of params.count items that each wait 200µs, like a
// call to another service: the job is not CPU-bound.
var wait = countOp(func(context.Context) error {
	time.Sleep(200 * time.Microsecond)
	return nil
})

// drain reads and closes the body of a response and returns its status.
func drain(res *http.Response, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, err
}

// statusClients is how many clients read a job's status at once.
const statusClients = 32

// statusLoad has 32 clients read a job's status over loopback HTTP, each
// every pace (0: back to back), while 100,000-item jobs of op run one after
// another. The clients poll from before the first job is submitted to after
// the last one completed; only the reads that started while a job ran
// (from its submission until it completed) count, each reading that job.
// Jobs run until at least 1,000 reads were taken that way (at least 3
// jobs; 1 with -short). op "idle" is the floor: the same clients reading a
// finished job for a second while nothing runs. It returns the counted
// reads' latencies, sorted, the time they were taken over, and how many
// jobs ran.
func statusLoad(b *testing.B, op string, pace time.Duration) (lat []time.Duration, over time.Duration, jobs int) {
	tb := setup(b, &httpapi.Options{DisableRateLimits: true}, &batch.Options{Operations: map[string]batch.Operation{"noop": noop, "wait": wait}})
	submit := func(op string, count int) string {
		res := tb.do(b, "POST", "/jobs", `{"batch": {"operations": [{"type": "`+op+`", "params": {"count": `+strconv.Itoa(count)+`}}], "options": {"max_concurrent": 32}}}`)
		if res.status != http.StatusCreated {
			b.Fatalf("submit: %d %s", res.status, res.body)
		}
		return res.data["job_id"].(string)
	}
	wait := func(id string) {
		if job, err := tb.e.Wait(context.Background(), id); err != nil || job.Status != batch.StateCompleted {
			b.Fatalf("job %s: %v", id, err)
		}
	}
	jobURL := func(id string) *string { u := tb.srv.URL + httpapi.Prefix + "/jobs/" + id; return &u }
	// Until the first job runs, the clients read a finished one.
	done := submit("noop", 1)
	wait(done)
	var target atomic.Pointer[string]
	target.Store(jobURL(done))
	p := startPolling(b, func() string { return *target.Load() }, statusClients, pace)
	var windows [][2]time.Time
	if op == "idle" {
		from := time.Now()
		time.Sleep(time.Second)
		windows = append(windows, [2]time.Time{from, time.Now()})
	} else {
		minJobs := 3
		if testing.Short() {
			minJobs = 1
		}
		for jobs = 0; jobs < minJobs || p.count(windows) < 1000 && jobs < 50; jobs++ {
			from := time.Now()
			id := submit(op, 100_000)
			target.Store(jobURL(id))
			wait(id)
			windows = append(windows, [2]time.Time{from, time.Now()})
		}
	}
	reads := p.stop()
	for _, r := range reads {
		if inWindow(r.at, windows) {
			lat = append(lat, r.lat)
		}
	}
	for _, w := range windows {
		over += w[1].Sub(w[0])
	}
	slices.Sort(lat)
	return lat, over, jobs
}

// read is one status read: when it started and how long it took.
type read struct {
	at  time.Time
	lat time.Duration
}

// polling is a set of clients reading a URL until stopped.
type polling struct {
	mu    sync.Mutex
	reads []read
	done  chan struct{}
	wg    sync.WaitGroup
	close func()
}

// startPolling opens a connection per client, then has each client GET
// url() every pace (0: back to back), the clients spread over the pace.
func startPolling(b *testing.B, url func() string, clients int, pace time.Duration) *polling {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr}
	get := func() (time.Duration, error) {
		t0 := time.Now()
		_, err := drain(client.Get(url()))
		return time.Since(t0), err
	}
	// Polling clients keep their connections: open them before measuring.
	var warm sync.WaitGroup
	for range clients {
		warm.Go(func() { get() })
	}
	warm.Wait()
	p := &polling{done: make(chan struct{}), close: tr.CloseIdleConnections}
	start := time.Now()
	for c := range clients {
		p.wg.Go(func() {
			var mine []read
			defer func() { p.mu.Lock(); p.reads = append(p.reads, mine...); p.mu.Unlock() }()
			next := start.Add(pace * time.Duration(c) / time.Duration(clients))
			for {
				if pace > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(pace)
				}
				select {
				case <-p.done:
					return
				default:
				}
				at := time.Now()
				lat, err := get()
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, read{at, lat})
				if len(mine) == 8 { // let count see them
					p.mu.Lock()
					p.reads = append(p.reads, mine...)
					p.mu.Unlock()
					mine = mine[:0]
				}
			}
		})
	}
	return p
}

// count returns how many reads so far started within windows.
func (p *polling) count(windows [][2]time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.reads {
		if inWindow(r.at, windows) {
			n++
		}
	}
	return n
}

// stop ends the polling and returns every read.
func (p *polling) stop() []read {
	close(p.done)
	p.wg.Wait()
	p.close()
	return p.reads
}

func inWindow(t time.Time, windows [][2]time.Time) bool {
	for _, w := range windows {
		if !t.Before(w[0]) && t.Before(w[1]) {
			return true
		}
	}
	return false
}

// BenchmarkStatusReads reads a running job's status over loopback HTTP with
// 32 concurrent clients while 100,000-item jobs run (the issue asks for a
// p99 under 5 ms). "polling" clients read every 10 ms each (3,200 reads/s
// offered); "saturated" clients read back to back, which measures the
// throughput ceiling (its latency is then set by queueing: 32 requests in
// flight divided by the throughput). The jobs' items either wait 200µs
// each ("io", like calls to another service) or do nothing ("noop": the
// engine's own overhead then keeps both cores busy). "idle/polling" is the
// floor: the same reads of a finished job while nothing runs, for a second.
// Only reads taken while a job ran count ("reads"); jobs run until there
// are at least 1,000 of them ("jobs", each taking "job_s" on average).
func BenchmarkStatusReads(b *testing.B) {
	for _, tt := range []struct {
		name, op string
		pace     time.Duration
	}{{"idle/polling", "idle", 10 * time.Millisecond}, {"io/polling", "wait", 10 * time.Millisecond}, {"io/saturated", "wait", 0},
		{"noop/polling", "noop", 10 * time.Millisecond}, {"noop/saturated", "noop", 0}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				lat, over, jobs := statusLoad(b, tt.op, tt.pace)
				if len(lat) == 0 {
					b.Fatal("no reads were taken while the jobs ran")
				}
				b.ReportMetric(float64(len(lat)), "reads")
				b.ReportMetric(float64(len(lat))/over.Seconds(), "reads/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
				if jobs > 0 {
					b.ReportMetric(float64(jobs), "jobs")
					b.ReportMetric(over.Seconds()/float64(jobs), "job_s")
				}
			}
		})
	}
}

// BenchmarkSubmit submits small jobs over loopback HTTP (rate limits off)
// from 16 concurrent clients and reports jobs per second.
func BenchmarkSubmit(b *testing.B) {
	tb := setup(b, &httpapi.Options{DisableRateLimits: true}, nil)
	body := `{"batch": {"operations": [{"type": "create", "resource": "fields", "records": [{"crop": "rice"}]}]}}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.SetParallelism(8) // 8 x GOMAXPROCS clients
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", tb.srv.URL+httpapi.Prefix+"/jobs", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if status, err := drain(client.Do(req)); err != nil || status != http.StatusCreated {
				b.Errorf("status %d, %v", status, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// BenchmarkSubmitOverMillion stores 1,000,000 records (100,000 with -short)
// with status and crop_type indexed, then submits the API document's
// update over HTTP and reports how long the request took (the issue asks
// for under 50 ms). Meanwhile 4 clients read another running job's status
// every 5 ms; the p99 of those reads while the update is submitted and
// selects its records (until its first item is done) is reported beside
// the p99 measured just before, in the same run, with nothing submitted.
func BenchmarkSubmitOverMillion(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	for b.Loop() {
		tb := setup(b, &httpapi.Options{DisableRateLimits: true}, &batch.Options{Operations: map[string]batch.Operation{"wait": wait}})
		if err := tb.e.DefineCollection("fields", &batch.CollectionOptions{Indexes: []string{"status", "crop_type"}}); err != nil {
			b.Fatal(err)
		}
		fields, _ := tb.e.Collection("fields")
		if err := fields.DropIndex(context.Background(), "irrigation_enabled"); err != nil { // declared by setup
			b.Fatal(err)
		}
		for base := 0; base < n; base += 50_000 {
			recs := make([]batch.Record, min(50_000, n-base))
			for i := range recs {
				j := base + i
				recs[i] = batch.Record{"id": fmt.Sprintf("field%07d", j), "name": "Field " + strconv.Itoa(j),
					"status": []string{"active", "inactive"}[j%2], "irrigation_enabled": j%4 < 2,
					"crop_type": []string{"rice", "corn", "wheat"}[j%3], "area": float64(j%50 + 1)}
			}
			if err := fields.PutMany(context.Background(), recs); err != nil {
				b.Fatal(err)
			}
		}
		if err := fields.WaitIndexes(context.Background()); err != nil {
			b.Fatal(err)
		}
		other := tb.do(b, "POST", "/jobs", `{"batch": {"operations": [{"type": "wait", "params": {"count": 10000000}}], "options": {"max_concurrent": 1}}}`)
		url := tb.srv.URL + httpapi.Prefix + "/jobs/" + other.data["job_id"].(string)
		idle := pacedReads(b, url, 4, 5*time.Millisecond, func() { time.Sleep(time.Second) })
		var took, selected time.Duration
		var id string
		busy := pacedReads(b, url, 4, 5*time.Millisecond, func() {
			start := time.Now()
			res := tb.do(b, "POST", "/jobs", docUpdateRequest)
			took = time.Since(start)
			if res.status != http.StatusCreated {
				b.Fatalf("submit: %d %s", res.status, res.body)
			}
			id = res.data["job_id"].(string)
			// Read on while the job selects its records and starts.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				j, err := tb.e.Job(context.Background(), id)
				if err != nil {
					b.Fatal(err)
				}
				if j.Progress.Completed > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			selected = time.Since(start)
		})
		b.ReportMetric(float64(took.Microseconds())/1000, "submit_ms")
		b.ReportMetric(float64(idle[len(idle)*99/100].Microseconds())/1000, "idle_read_p99_ms")
		b.ReportMetric(float64(busy[len(busy)*99/100].Microseconds())/1000, "busy_read_p99_ms")
		b.ReportMetric(float64(len(busy)), "busy_reads")
		b.ReportMetric(selected.Seconds(), "until_first_item_s")
		tb.e.Cancel(context.Background(), id)
		tb.e.Cancel(context.Background(), other.data["job_id"].(string))
	}
}

// docUpdateRequest is the API document's Create Batch Job request.
const docUpdateRequest = `{"batch": {"type": "field_update", "operations": [{"type": "update", "resource": "fields",
	"filter": {"status": "active", "irrigation_enabled": true},
	"update": {"irrigation_schedule": {"frequency": "daily", "start_time": "06:00", "duration_minutes": 30}}}],
	"options": {"max_concurrent": 5, "retry": {"attempts": 3, "backoff": "exponential"}, "validation": {"mode": "strict", "on_error": "skip"}}}}`

// pacedReads has clients GET url every pace each while during runs, and
// returns the latencies, sorted.
func pacedReads(b *testing.B, url string, clients int, pace time.Duration, during func()) []time.Duration {
	p := startPolling(b, func() string { return url }, clients, pace)
	during()
	var lat []time.Duration
	for _, r := range p.stop() {
		lat = append(lat, r.lat)
	}
	slices.Sort(lat)
	return lat
}

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

// statusLoad has 32 clients read a job's status over loopback HTTP while a
// 100,000-item job of op runs. Each client waits pace between reads (0:
// back to back). It returns the latencies, sorted, and the reads per second.
func statusLoad(b *testing.B, op string, pace time.Duration) ([]time.Duration, float64, time.Duration) {
	tb := setup(b, &httpapi.Options{DisableRateLimits: true}, &batch.Options{Operations: map[string]batch.Operation{"noop": noop, "wait": wait}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	// Polling clients keep their connections: open them before measuring.
	var warm sync.WaitGroup
	for range 32 {
		warm.Go(func() {
			_, _ = drain(client.Get(tb.srv.URL + httpapi.Prefix + "/jobs?limit=1"))
		})
	}
	warm.Wait()
	count, idle := 100000, op == "idle"
	if idle {
		// The floor: the same clients reading a finished job for a second
		// while no job runs, on the same machine at the same time.
		op, count = "noop", 1
	}
	res := tb.do(b, "POST", "/jobs", `{"batch": {"operations": [{"type": "`+op+`", "params": {"count": `+strconv.Itoa(count)+`}}], "options": {"max_concurrent": 32}}}`)
	id := res.data["job_id"].(string)
	var until time.Time
	if idle {
		if _, err := tb.e.Wait(context.Background(), id); err != nil {
			b.Fatal(err)
		}
		until = time.Now().Add(time.Second)
	}
	url := tb.srv.URL + httpapi.Prefix + "/jobs/" + id
	var mu sync.Mutex
	var lat []time.Duration
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for c := range 32 {
		wg.Go(func() {
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			next := time.Now().Add(pace * time.Duration(c) / 32) // spread the clients out
			for {
				if pace > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(pace)
				}
				select {
				case <-done:
					return
				default:
				}
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
				if err != nil {
					b.Error(err)
					return
				}
				if idle && time.Now().After(until) || !idle && strings.Contains(string(body), `"status":"completed"`) {
					once.Do(func() { close(done) })
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return lat, float64(len(lat)) / elapsed.Seconds(), elapsed
}

// BenchmarkStatusReads reads a running job's status over loopback HTTP with
// 32 concurrent clients while a 100,000-item job runs (the issue asks for a
// p99 under 5 ms). "polling" clients read every 10 ms each (3,200 reads/s
// offered); "saturated" clients read back to back, which measures the
// throughput ceiling (its latency is then set by queueing: 32 requests in
// flight divided by the throughput). The job's items either wait 200µs
// each ("io", like calls to another service) or do nothing ("noop": the
// engine's own overhead then keeps both cores busy). "idle/polling" is the
// floor: the same reads of a finished job while nothing runs, for a second.
func BenchmarkStatusReads(b *testing.B) {
	for _, tt := range []struct {
		name, op string
		pace     time.Duration
	}{{"idle/polling", "idle", 10 * time.Millisecond}, {"io/polling", "wait", 10 * time.Millisecond}, {"io/saturated", "wait", 0},
		{"noop/polling", "noop", 10 * time.Millisecond}, {"noop/saturated", "noop", 0}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				lat, rate, elapsed := statusLoad(b, tt.op, tt.pace)
				b.ReportMetric(rate, "reads/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
				b.ReportMetric(elapsed.Seconds(), "job_s")
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
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			t := time.NewTicker(pace)
			defer t.Stop()
			time.Sleep(pace * time.Duration(c) / time.Duration(clients))
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				t0 := time.Now()
				if _, err := drain(client.Get(url)); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	during()
	close(done)
	wg.Wait()
	slices.Sort(lat)
	return lat
}

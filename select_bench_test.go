package batch

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkSelection selects the document's records (status active and
// irrigation enabled: 25,000 of 100,000) from a bbolt collection the way a
// job lists them, and reports the time and heap allocations per selected
// record beside the floor of the same run: the former selection, which
// decoded every record into a map to match it.
func BenchmarkSelection(b *testing.B) {
	e := openBench(b, nil)
	defer e.Close(context.Background())
	if err := e.DefineCollection("fields", &CollectionOptions{Indexes: []string{"status", "crop_type"}}); err != nil {
		b.Fatal(err)
	}
	c, _ := e.Collection("fields")
	if err := c.PutMany(context.Background(), benchFields(benchItems)); err != nil {
		b.Fatal(err)
	}
	if err := c.WaitIndexes(context.Background()); err != nil {
		b.Fatal(err)
	}
	docFilter := map[string]any{"status": "active", "irrigation_enabled": true}
	measure := func(b *testing.B, fn func() int) (time.Duration, float64) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		n := fn()
		d := time.Since(start)
		runtime.ReadMemStats(&after)
		if n != benchItems/4 {
			b.Fatalf("selected %d records", n)
		}
		return d, float64(after.Mallocs-before.Mallocs) / float64(n)
	}
	floor := func() int {
		n := 0
		q := &Query{Filter: docFilter}
		_ = e.store.View(func(tx Tx) error {
			return tx.Scan(c.bucket, nil, func(k, v []byte) bool {
				rec, err := decodeRecord(c.name, k, v)
				if err == nil && q.Match(rec) {
					n++
				}
				return true
			})
		})
		return n
	}
	for _, tt := range []struct {
		name string
		q    *Query
		drop string
	}{
		{"indexed", &Query{Filter: docFilter}, ""},
		{"unindexed", &Query{Filter: docFilter}, "status"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var sel, fl time.Duration
			var allocs, floorAllocs float64
			for b.Loop() {
				if tt.drop != "" {
					_ = c.DropIndex(context.Background(), tt.drop)
				} else {
					_ = c.AddIndex(context.Background(), "status")
					_ = c.WaitIndexes(context.Background())
				}
				d, a := measure(b, func() int {
					n := 0
					if err := selectIDs(context.Background(), c, tt.q, func(string) error { n++; return nil }); err != nil {
						b.Fatal(err)
					}
					return n
				})
				sel, allocs = sel+d, allocs+a
				d, a = measure(b, floor)
				fl, floorAllocs = fl+d, floorAllocs+a
			}
			n := float64(b.N)
			b.ReportMetric(float64(sel.Nanoseconds())/n/float64(benchItems/4), "ns/selected")
			b.ReportMetric(float64(fl.Nanoseconds())/n/float64(benchItems/4), "floor_ns/selected")
			b.ReportMetric(fl.Seconds()/sel.Seconds(), "ratio")
			b.ReportMetric(allocs/n, "allocs/selected")
			b.ReportMetric(floorAllocs/n, "floor_allocs/selected")
		})
	}
}

package otelbatch_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/otelbatch"
)

// Install otelbatch as the engine's Observer with the providers of the
// program's OpenTelemetry SDK; here a meter provider with a manual reader
// reads what one job recorded.
func ExampleNew() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	obs, err := otelbatch.New(&otelbatch.Options{MeterProvider: mp})
	if err != nil {
		panic(err)
	}
	engine, err := batch.New(batch.NewMemoryStore(), &batch.Options{Observer: obs})
	if err != nil {
		panic(err)
	}
	fields, _ := engine.Collection("fields")
	fields.Put(ctx, batch.Record{"id": "f1", "status": "active"})
	fields.Put(ctx, batch.Record{"id": "f2", "status": "active"})
	job, err := engine.Submit(ctx, &batch.Batch{Type: "touch", Operations: []batch.OperationSpec{{
		Type: "update", Resource: "fields", Filter: map[string]any{"status": "active"}, Update: map[string]any{"checked": true},
	}}}, nil)
	if err != nil {
		panic(err)
	}
	engine.Wait(ctx, job.ID)
	engine.Close(ctx)
	obs.Close()

	var rm metricdata.ResourceMetrics
	reader.Collect(ctx, &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "batch.items.processed" {
			for _, dp := range s.DataPoints {
				op, _ := dp.Attributes.Value("operation")
				outcome, _ := dp.Attributes.Value("outcome")
				fmt.Println(m.Name, op.AsString(), outcome.AsString(), dp.Value)
			}
		}
	}
	// Output: batch.items.processed update succeeded 2
}

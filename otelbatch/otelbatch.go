// Package otelbatch turns what a [batch.Engine] does into OpenTelemetry
// metrics and traces. It uses only the OpenTelemetry API: install the SDK
// (or any other implementation) in the program and hand its providers
// over, or leave them nil to use the global ones.
//
//	obs, err := otelbatch.New(&otelbatch.Options{MeterProvider: mp, TracerProvider: tp})
//	engine, err := batch.Open("batch.db", &batch.Options{Observer: obs})
//
// # Metrics
//
// No metric carries a job id; attributes are bounded: the batch's type,
// operation types, states, outcomes and error codes.
//
//	batch.jobs.submitted        counter    {job}    type
//	batch.jobs.finished         counter    {job}    type, status
//	batch.jobs                  gauge      {job}    status (queued, running, paused: live jobs of this process)
//	batch.job.duration          histogram  s        type, status (from the first start to the end)
//	batch.job.queue_wait        histogram  s        type (queued until running)
//	batch.items.processed       counter    {item}   operation, outcome (succeeded, retried, failed), error.type
//	batch.item.retries          counter    {item}   operation (failed attempts that will be tried again)
//	batch.item.panics           counter    {item}   operation
//	batch.item.duration         histogram  s        operation, outcome, error.type (one attempt; see below)
//	batch.commit.duration       histogram  s        error.type on a failed commit
//	batch.commit.size           histogram  {write}
//	batch.webhook.deliveries    counter    {delivery} event, outcome (delivered, retry, failed)
//	batch.webhook.duration      histogram  s        event, outcome
//	batch.schedule.fires        counter    {fire}   outcome (submitted, skipped, failed)
//
// Item counters cost an atomic add per attempt and are read when the SDK
// collects. batch.item.duration records every attempt of an operation,
// outcome and error type up to 1,000 per 100ms; past that, within the same
// 100ms, it records none, so a job running faster than 10,000 items a
// second gets a sample in time of its durations (the distribution, not the
// count: batch.items.processed counts). This keeps the observer's cost per
// item to a few tens of nanoseconds where an SDK measurement costs a few
// hundred.
//
// # Traces
//
// Each job has one span, "batch.job <type>", from its submission to its
// final state, kept open while the job is paused. Its parent is the span
// of the context given to [batch.Engine.Submit]; over HTTP, wrap the API
// handler with [Observer.Handler] (or any OpenTelemetry HTTP middleware) and
// the request's traceparent header becomes that parent. The job's trace context is
// stored with the job, so its work runs under the job span: the contexts
// that Plan and Run get carry it, and spans a handler starts are children
// of the job span. After a restart the job's work goes on under a new
// "batch.job" span (attribute batch.job.resumed) with the same parent and
// a link to the first one. With [Options].ItemSpans, each item attempt of
// a sampled job also gets a span, "batch.item <operation>".
package otelbatch

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/batchworks/batch"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/batchworks/batch/otelbatch"

// parentKey is the carrier key of the submitter's traceparent, so a job
// resumed after a restart can hang its new span under the same parent.
const parentKey = "batch-parent"

// durationBuckets returns the histogram boundaries for durations, in
// seconds: from 100µs to an hour.
func durationBuckets() []float64 {
	return []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}
}

// Options configures an [Observer]. A nil *Options or a zero field means
// the default given on the field.
type Options struct {
	// MeterProvider makes the meter. nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the tracer. nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator writes a job's trace context into the carrier stored with
	// the job and reads it back. nil means W3C trace context and baggage.
	Propagator propagation.TextMapPropagator
	// ItemSpans, when true, records a span for each item attempt of a job
	// whose span is sampled. Off by default: a job of a million items
	// would make a million spans.
	ItemSpans bool
	// Now is the clock that ends abandoned submission spans, a seam for
	// tests. nil means time.Now.
	Now func() time.Time
}

// Observer is a [batch.Observer] and [batch.TracePropagator] that records
// OpenTelemetry metrics and spans. Make one with [New] and set it as
// [batch.Options].Observer. It is safe for concurrent use.
type Observer struct {
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	itemSpans bool
	now       func() time.Time

	jobsSubmitted  metric.Int64Counter
	jobsFinished   metric.Int64Counter
	jobDuration    metric.Float64Histogram
	queueWait      metric.Float64Histogram
	itemsProcessed metric.Int64ObservableCounter
	itemRetries    metric.Int64ObservableCounter
	itemPanics     metric.Int64ObservableCounter
	itemDuration   metric.Float64Histogram
	commitDuration metric.Float64Histogram
	commitSize     metric.Int64Histogram
	deliveries     metric.Int64Counter
	deliveryTime   metric.Float64Histogram
	fires          metric.Int64Counter

	// ops holds the item counts (*opStats) by operation type. Item
	// counters are counted here and read by the SDK when it collects: an
	// atomic add per item instead of an SDK measurement.
	ops sync.Map
	// spans holds the open job spans (*openSpan) by the traceparent of
	// their carrier.
	spans sync.Map
	// resumed holds the spans of jobs resumed after a restart (*openSpan)
	// by the span id of the job's first span, for item spans made under a
	// context extracted before the resumed span existed.
	resumed sync.Map
	// lastSpan is the open span Extract found last; it may be stale
	// (ended), so Extract uses it only while the span is still open.
	lastSpan atomic.Pointer[spanCache]
	// lastOp is the opStats last used, looked at before ops.
	lastOp atomic.Pointer[opStats]
	// epoch is the start of the observer's monotonic clock.
	epoch time.Time
	// swept is when (Unix nanoseconds) abandoned spans were last looked for.
	swept atomic.Int64

	// mu guards live.
	mu   sync.Mutex
	live map[string]batch.State // live jobs of this process by id
}

var (
	_ batch.Observer        = (*Observer)(nil)
	_ batch.TracePropagator = (*Observer)(nil)
)

// New returns an Observer over the providers in opts (nil for the
// defaults). It fails only when an instrument cannot be made.
func New(opts *Options) (*Observer, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Propagator == nil {
		o.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	ob := &Observer{
		tracer:    o.TracerProvider.Tracer(ScopeName),
		prop:      o.Propagator,
		itemSpans: o.ItemSpans,
		now:       o.Now,
		epoch:     time.Now(),
		live:      make(map[string]batch.State),
	}
	m := o.MeterProvider.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(durationBuckets()...))
		errs = append(errs, err)
		return h
	}
	ob.jobsSubmitted = counter("batch.jobs.submitted", "{job}", "Jobs submitted.")
	ob.jobsFinished = counter("batch.jobs.finished", "{job}", "Jobs that reached a final state, by status.")
	ob.jobDuration = seconds("batch.job.duration", "How long finished jobs ran, from their first start.")
	ob.queueWait = seconds("batch.job.queue_wait", "How long jobs waited queued before they ran.")
	observed := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit("{item}"), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	ob.itemsProcessed = observed("batch.items.processed", "Item attempts, by operation and outcome.")
	ob.itemRetries = observed("batch.item.retries", "Failed item attempts that will be tried again.")
	ob.itemPanics = observed("batch.item.panics", "Item attempts whose handler panicked.")
	ob.itemDuration = seconds("batch.item.duration", "How long one item attempt took.")
	ob.commitDuration = seconds("batch.commit.duration", "How long one group commit took.")
	var err error
	ob.commitSize, err = m.Int64Histogram("batch.commit.size", metric.WithUnit("{write}"), metric.WithDescription("Writes carried by one group commit."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))
	errs = append(errs, err)
	ob.deliveries = counter("batch.webhook.deliveries", "{delivery}", "Webhook delivery attempts, by outcome.")
	ob.deliveryTime = seconds("batch.webhook.duration", "How long one webhook delivery attempt took.")
	ob.fires = counter("batch.schedule.fires", "{fire}", "Schedules falling due, by outcome.")
	jobs, err := m.Int64ObservableGauge("batch.jobs", metric.WithUnit("{job}"), metric.WithDescription("Live jobs of this process, by status."))
	errs = append(errs, err)
	if err == nil {
		_, err = m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
			for state, n := range ob.counts() {
				obs.ObserveInt64(jobs, n, metric.WithAttributeSet(attribute.NewSet(attribute.String("status", string(state)))))
			}
			ob.ops.Range(func(_, v any) bool {
				v.(*opStats).observe(ob, obs)
				return true
			})
			return nil
		}, jobs, ob.itemsProcessed, ob.itemRetries, ob.itemPanics)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ob, nil
}

// openSpan is the open span of a job.
type openSpan struct {
	span  trace.Span
	named sync.Once // the job's name and attributes are set once
	// injected is when Inject started the span; seen is set once a
	// transition of its job was observed.
	injected time.Time
	seen     atomic.Bool
	// first is the span id of the job's first span when this one resumes
	// it after a restart.
	first trace.SpanID
	// id is span's id; ended is set when the span ends.
	id    trace.SpanID
	ended atomic.Bool
}

func newOpenSpan(span trace.Span, injected time.Time, first trace.SpanID) *openSpan {
	return &openSpan{span: span, injected: injected, first: first, id: span.SpanContext().SpanID()}
}

// end ends the span.
func (os *openSpan) end(opts ...trace.SpanEndOption) {
	os.ended.Store(true)
	os.span.End(opts...)
}

// abandonAfter is how long a span started by Inject waits for its job's
// first transition. A submission that stored nothing (refused, or replayed
// by its idempotency key) never reports one; its span is ended by a later
// Inject.
const abandonAfter = time.Minute

// sweep ends the spans of submissions that never became jobs.
func (ob *Observer) sweep(now time.Time) {
	ob.spans.Range(func(k, v any) bool {
		os := v.(*openSpan)
		if !os.injected.IsZero() && !os.seen.Load() && now.Sub(os.injected) > abandonAfter {
			if ob.spans.CompareAndDelete(k, v) {
				os.span.SetAttributes(attribute.Bool("batch.job.abandoned", true))
				os.end()
			}
		}
		return true
	})
}

// counts returns how many live jobs are in each live state.
func (ob *Observer) counts() map[batch.State]int64 {
	n := map[batch.State]int64{batch.StateQueued: 0, batch.StateRunning: 0, batch.StatePaused: 0}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, s := range ob.live {
		n[s]++
	}
	return n
}

// Close ends the spans of jobs still open (marked batch.job.interrupted):
// call it after the engine is closed. The metrics stay readable.
func (ob *Observer) Close() error {
	ob.spans.Range(func(k, v any) bool {
		os := v.(*openSpan)
		os.span.SetAttributes(attribute.Bool("batch.job.interrupted", true))
		os.end()
		ob.spans.Delete(k)
		return true
	})
	return nil
}

// Inject starts the job's span under ctx's span and returns the carrier
// the engine stores with the job. It implements [batch.TracePropagator].
func (ob *Observer) Inject(ctx context.Context) map[string]string {
	carrier := propagation.MapCarrier{}
	if parent := trace.SpanContextFromContext(ctx); parent.IsValid() {
		pc := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, pc)
		if tp := pc.Get("traceparent"); tp != "" {
			carrier[parentKey] = tp
		}
	}
	ctx, span := ob.tracer.Start(ctx, "batch.job")
	ob.prop.Inject(ctx, carrier)
	if span.IsRecording() {
		if tp := carrier.Get("traceparent"); tp != "" {
			now := ob.now()
			ob.spans.Store(tp, newOpenSpan(span, now, trace.SpanID{}))
			if last := ob.swept.Load(); now.UnixNano()-last > int64(abandonAfter) && ob.swept.CompareAndSwap(last, now.UnixNano()) {
				ob.sweep(now)
			}
		} else {
			span.End()
		}
	}
	if len(carrier) == 0 {
		return nil
	}
	return carrier
}

// Extract returns ctx under the job's span. It implements
// [batch.TracePropagator].
func (ob *Observer) Extract(ctx context.Context, carrier map[string]string) context.Context {
	tp := carrier["traceparent"]
	var os *openSpan
	if c := ob.lastSpan.Load(); c != nil && c.tp == tp && !c.os.ended.Load() {
		os = c.os
	} else if v, ok := ob.spans.Load(tp); ok {
		os = v.(*openSpan)
		ob.lastSpan.Store(&spanCache{tp: tp, os: os})
	}
	if os != nil {
		if trace.SpanContextFromContext(ctx).SpanID() == os.id {
			return ctx // already under the job's span (an item of a running job)
		}
		return trace.ContextWithSpan(ctx, os.span)
	}
	return ob.prop.Extract(ctx, propagation.MapCarrier(carrier))
}

// spanCache remembers the open span of the carrier Extract saw last.
type spanCache struct {
	tp string
	os *openSpan
}

// ObserveJob implements [batch.Observer].
func (ob *Observer) ObserveJob(ctx context.Context, o batch.JobObservation) {
	typ := attribute.String("type", o.Type)
	if o.From == "" {
		ob.jobsSubmitted.Add(ctx, 1, metric.WithAttributes(typ))
	}
	if o.From == batch.StateQueued && o.To == batch.StateRunning {
		ob.queueWait.Record(ctx, o.QueueWait.Seconds(), metric.WithAttributes(typ))
	}
	if o.To.Final() {
		status := metric.WithAttributes(typ, attribute.String("status", string(o.To)))
		ob.jobsFinished.Add(ctx, 1, status)
		if o.Job != nil && o.Job.StartedAt != nil {
			ob.jobDuration.Record(ctx, o.Duration.Seconds(), status)
		}
	}
	ob.mu.Lock()
	if o.To.Final() {
		delete(ob.live, o.JobID)
	} else {
		ob.live[o.JobID] = o.To
	}
	ob.mu.Unlock()
	ob.jobSpan(o)
}

// jobSpan records a transition on the job's span: its attributes at the
// first transition, an event per transition, and its end at the final one.
// A live job without an open span (resumed after a restart) gets one.
func (ob *Observer) jobSpan(o batch.JobObservation) {
	tp := o.Trace["traceparent"]
	if tp == "" {
		return
	}
	var os *openSpan
	if v, ok := ob.spans.Load(tp); ok {
		os = v.(*openSpan)
	} else if !o.To.Final() {
		if os = ob.resumeSpan(o); os == nil {
			return
		}
	} else {
		return
	}
	os.seen.Store(true)
	span := os.span
	os.named.Do(func() {
		span.SetName("batch.job " + o.Type)
		span.SetAttributes(attribute.String("batch.job.id", o.JobID), attribute.String("batch.job.type", o.Type))
	})
	attrs := []attribute.KeyValue{attribute.String("batch.job.from", string(o.From))}
	if o.Principal != "" {
		attrs = append(attrs, attribute.String("batch.principal", o.Principal))
	}
	span.AddEvent("batch.job."+string(o.To), trace.WithTimestamp(o.At), trace.WithAttributes(attrs...))
	if !o.To.Final() {
		return
	}
	if j := o.Job; j != nil {
		span.SetAttributes(attribute.String("batch.job.status", string(j.Status)),
			attribute.Int64("batch.job.items", j.Progress.TotalOperations),
			attribute.Int64("batch.job.items.completed", j.Progress.Completed),
			attribute.Int64("batch.job.items.failed", j.Progress.Failed))
		if j.Status == batch.StateFailed {
			msg := "job failed"
			if j.Error != nil {
				msg = j.Error.Message
			}
			span.SetStatus(codes.Error, msg)
		}
	}
	os.end(trace.WithTimestamp(o.At))
	ob.spans.Delete(tp)
	if os.first.IsValid() {
		ob.resumed.Delete(os.first)
	}
}

// resumeSpan starts the span of a job this process did not submit, under
// the submitter's parent, linked to the job's first span.
func (ob *Observer) resumeSpan(o batch.JobObservation) *openSpan {
	first := trace.SpanContextFromContext(ob.prop.Extract(context.Background(), propagation.MapCarrier(o.Trace)))
	if !first.IsValid() {
		return nil
	}
	parent := trace.ContextWithRemoteSpanContext(context.Background(), first)
	if tp, ok := o.Trace[parentKey]; ok {
		pctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
		if trace.SpanContextFromContext(pctx).IsValid() {
			parent = pctx
		}
	}
	_, span := ob.tracer.Start(parent, "batch.job "+o.Type, trace.WithTimestamp(o.At), trace.WithLinks(trace.Link{SpanContext: first}),
		trace.WithAttributes(attribute.String("batch.job.id", o.JobID), attribute.String("batch.job.type", o.Type),
			attribute.Bool("batch.job.resumed", true)))
	if !span.IsRecording() {
		return nil
	}
	v, loaded := ob.spans.LoadOrStore(o.Trace["traceparent"], newOpenSpan(span, time.Time{}, first.SpanID()))
	if loaded {
		span.End()
	} else {
		ob.resumed.Store(first.SpanID(), v)
	}
	return v.(*openSpan)
}

// Item counts are kept by outcome (succeeded, retried, failed) and error
// type ("", the four item codes, and "other" for any other).
const (
	numOutcomes = 3
	numErrors   = 6
)

func outcomeName(i int) batch.ItemOutcome {
	return [numOutcomes]batch.ItemOutcome{batch.ItemSucceeded, batch.ItemRetried, batch.ItemFailed}[i]
}

func errorName(i int) string {
	return [numErrors]string{"", string(batch.CodeValidation), string(batch.CodeResource), string(batch.CodeSystem), string(batch.CodeTimeout), "other"}[i]
}

// counterShards spreads an operation's item counters over cache lines,
// so workers on different cores rarely touch the same one.
const counterShards = 8

// Item durations are recorded up to durationBudget per durationWindow for
// each operation, outcome and error type (shared out among the counter
// shards): every attempt of a job that runs fewer than 10,000 a second, a
// sample in time of a faster one.
const (
	durationWindow = 100 * time.Millisecond
	durationBudget = 1000
)

// opStats counts the item attempts of one operation type.
type opStats struct {
	name   string
	shards [counterShards]counterShard
	// attrs are the attribute options of each cell; opAttrs has the
	// operation alone.
	attrs   [numOutcomes][numErrors][]metric.RecordOption
	opAttrs metric.MeasurementOption
}

// counterShard is one share of an operation's item counters.
type counterShard struct {
	processed [numOutcomes][numErrors]atomic.Int64
	retries   atomic.Int64
	panics    atomic.Int64
	// budget limits, per cell, the durations this shard records per
	// window.
	budget [numOutcomes][numErrors]durationBudgetCell
	_      [64]byte // keeps the next shard off this one's cache lines
}

func newOpStats(op string) *opStats {
	s := &opStats{name: op, opAttrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("operation", op)))}
	for i := range numOutcomes {
		outcome := outcomeName(i)
		for j := range numErrors {
			et := errorName(j)
			kv := []attribute.KeyValue{attribute.String("operation", op), attribute.String("outcome", string(outcome))}
			if et != "" {
				kv = append(kv, attribute.String("error.type", et))
			}
			s.attrs[i][j] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
		}
	}
	return s
}

// observe reports the counts to the SDK.
func (s *opStats) observe(ob *Observer, obs metric.Observer) {
	var retries, panics int64
	for i := range numOutcomes {
		for j := range numErrors {
			var n int64
			for k := range s.shards {
				n += s.shards[k].processed[i][j].Load()
			}
			if n > 0 {
				obs.ObserveInt64(ob.itemsProcessed, n, s.attrs[i][j][0].(metric.ObserveOption))
			}
		}
	}
	for k := range s.shards {
		retries += s.shards[k].retries.Load()
		panics += s.shards[k].panics.Load()
	}
	obs.ObserveInt64(ob.itemRetries, retries, s.opAttrs)
	obs.ObserveInt64(ob.itemPanics, panics, s.opAttrs)
}

func (ob *Observer) opStats(op string) *opStats {
	if s := ob.lastOp.Load(); s != nil && s.name == op {
		return s
	}
	v, ok := ob.ops.Load(op)
	if !ok {
		v, _ = ob.ops.LoadOrStore(op, newOpStats(op))
	}
	s := v.(*opStats)
	ob.lastOp.Store(s)
	return s
}

// durationBudgetCell counts the durations recorded in the current window
// of one cell. It reads the clock only once the window's budget is spent,
// and then only every 64th attempt: a job within the budget costs no clock
// read at all.
type durationBudgetCell struct {
	count atomic.Int64 // durations recorded in the window
	start atomic.Int64 // when the window began, in ns since the epoch
	skips atomic.Int64 // attempts not recorded
}

// take reports whether to record one more duration.
func (c *durationBudgetCell) take(epoch time.Time) bool {
	if c.count.Add(1) <= durationBudget/counterShards {
		return true
	}
	if c.skips.Add(1)&63 != 0 {
		return false
	}
	now, st := int64(time.Since(epoch)), c.start.Load()
	if now-st >= int64(durationWindow) && c.start.CompareAndSwap(st, now) {
		c.count.Store(1)
		return true
	}
	return false
}

func outcomeIndex(o batch.ItemOutcome) int {
	switch o {
	case batch.ItemRetried:
		return 1
	case batch.ItemFailed:
		return 2
	}
	return 0
}

func errorIndex(et string) int {
	if et == "" {
		return 0
	}
	for i := range numErrors - 1 {
		if errorName(i) == et {
			return i
		}
	}
	return numErrors - 1
}

// ObserveItem implements [batch.Observer].
func (ob *Observer) ObserveItem(ctx context.Context, o batch.ItemObservation) {
	s := ob.opStats(o.Operation)
	oi, ei := outcomeIndex(o.Outcome), errorIndex(o.ErrorType)
	sh := &s.shards[o.ItemIndex&(counterShards-1)]
	sh.processed[oi][ei].Add(1)
	if o.Outcome == batch.ItemRetried {
		sh.retries.Add(1)
	}
	if o.Panicked {
		sh.panics.Add(1)
	}
	// Durations are sampled in time (see the package doc). No exemplars
	// per item: the background context keeps the SDK from sampling.
	if sh.budget[oi][ei].take(ob.epoch) {
		ob.itemDuration.Record(context.Background(), o.Duration.Seconds(), s.attrs[oi][ei]...)
	}
	if !ob.itemSpans || !trace.SpanContextFromContext(ctx).IsSampled() {
		return
	}
	if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
		if v, ok := ob.resumed.Load(parent.SpanContext().SpanID()); ok {
			ctx = trace.ContextWithSpan(ctx, v.(*openSpan).span)
		}
	}
	end := time.Now()
	_, span := ob.tracer.Start(ctx, "batch.item "+o.Operation, trace.WithTimestamp(end.Add(-o.Duration)),
		trace.WithAttributes(attribute.String("batch.job.id", o.JobID), attribute.Int("batch.operation.index", o.OperationIndex),
			attribute.String("batch.operation.type", o.Operation), attribute.Int64("batch.item.index", o.ItemIndex),
			attribute.Int("batch.item.attempt", o.Attempt), attribute.String("batch.item.outcome", string(o.Outcome))))
	if o.ErrorType != "" {
		span.SetAttributes(attribute.String("error.type", o.ErrorType), attribute.Bool("batch.item.panicked", o.Panicked))
		span.SetStatus(codes.Error, o.ErrorType)
	}
	span.End(trace.WithTimestamp(end))
}

// ObserveCommit implements [batch.Observer].
func (ob *Observer) ObserveCommit(o batch.CommitObservation) {
	ctx := context.Background()
	var opts []metric.RecordOption
	if o.Err != nil {
		opts = append(opts, metric.WithAttributes(attribute.String("error.type", "store")))
	}
	ob.commitDuration.Record(ctx, o.Duration.Seconds(), opts...)
	ob.commitSize.Record(ctx, int64(o.Size), opts...)
}

// ObserveDelivery implements [batch.Observer].
func (ob *Observer) ObserveDelivery(o batch.DeliveryObservation) {
	ctx := context.Background()
	attrs := metric.WithAttributes(attribute.String("event", o.Event), attribute.String("outcome", o.Outcome))
	ob.deliveries.Add(ctx, 1, attrs)
	ob.deliveryTime.Record(ctx, o.Duration.Seconds(), attrs)
}

// ObserveScheduleFire implements [batch.Observer].
func (ob *Observer) ObserveScheduleFire(o batch.ScheduleFireObservation) {
	ob.fires.Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", o.Outcome)))
}

// Handler returns next with each request's trace context (the
// traceparent, tracestate and baggage headers, read by the Observer's
// propagator) in the request's context, so a job submitted through the
// HTTP API has the caller's span as its parent. A server already
// instrumented with OpenTelemetry does not need it.
func (ob *Observer) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := ob.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

package batch

import (
	"runtime"
	"sync/atomic"
	"time"
)

// A job whose items are quick (a no-op handler, a computation of a few
// microseconds) is bound by the engine's own per-item work: every worker
// is always runnable, and max_concurrent of them keep every processor's
// run queue full. The Go scheduler polls the network only when a processor
// finds nothing else to run, or else every 10 ms from its monitor thread
// (runtime/proc.go: findRunnable, sysmon; golang/go#51651), so a server in
// the same process answered late: status reads over HTTP took ~10 ms at
// the 99th percentile while a 100,000-item no-op job ran.
//
// A pass's workers therefore pace themselves. They run items in bursts;
// while the last burst a worker of the pass finished was quick, each runs
// its next burst holding one of the engine's CPU tokens (one processor
// fewer than GOMAXPROCS, at least one, shared by every pass of every job),
// and the others wait for one, blocked. A processor is left for the
// committer, the server and the network poller, however many jobs run.
// Items that wait on something (a call to another service) make slow
// bursts: their workers run ungated, all max_concurrent of them at once.

// burstItems is how many items a worker runs between two looks at its pace.
const burstItems = 32

// quickItem is the mean time per item under which a burst counts as quick:
// the items then mostly use the processor.
const quickItem = 25 * time.Microsecond

// cpuTokens makes the engine's CPU tokens: one processor fewer than the
// program may use, at least one.
func cpuTokens() chan struct{} {
	return make(chan struct{}, max(runtime.GOMAXPROCS(0)-1, 1))
}

// paceGate is what the workers of one pass share: the engine's CPU tokens
// and whether the last burst a worker of the pass finished was quick.
type paceGate struct {
	cpu   chan struct{}
	quick atomic.Bool
}

// paceGate returns the gate of a new pass.
func (e *Engine) paceGate() *paceGate {
	return &paceGate{cpu: e.cpu}
}

// pacer is one worker's pace.
type pacer struct {
	g     *paceGate
	n     int
	start time.Time
	held  bool
}

func (g *paceGate) pacer() *pacer {
	return &pacer{g: g, start: time.Now()}
}

// tick counts an item about to run. At the end of a burst it tells the
// pass whether the burst was quick and lets go of its token; while the
// pass's items are quick, it runs the next items holding one.
func (p *pacer) tick() {
	if p.n++; p.n > burstItems {
		p.g.quick.Store(time.Since(p.start) < burstItems*quickItem)
		p.release()
		p.n, p.start = 1, time.Now()
	}
	if !p.held && p.g.quick.Load() {
		p.g.cpu <- struct{}{}
		p.held = true
		p.n, p.start = 1, time.Now()
	}
}

// release lets go of the token, if held: at the end of a burst and when
// the worker stops.
func (p *pacer) release() {
	if p.held {
		<-p.g.cpu
		p.held = false
	}
}

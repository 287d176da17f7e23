package batch

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A burst of quick items gates the pass: the next items run holding a CPU
// token, and a worker without one waits until a token is let go.
func TestPacer_QuickItemsTakeTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &paceGate{cpu: cpuTokens()}
		for range cap(g.cpu) - 1 {
			g.cpu <- struct{}{} // other workers hold the rest
		}
		a := g.pacer()
		for range burstItems + 1 {
			a.tick() // the fake clock stands still: a quick burst
		}
		require.True(t, g.quick.Load())
		require.True(t, a.held)

		requireWaitsForToken(t, g, a.release, "a worker runs a quick item only with a token")
	})
}

// requireWaitsForToken checks, in a synctest bubble, that a new worker of
// g's pass runs its next quick item only once free lets a token go.
func requireWaitsForToken(t *testing.T, g *paceGate, free func(), msg string) {
	t.Helper()
	var ran atomic.Bool
	go func() {
		p := g.pacer()
		p.tick()
		ran.Store(true)
		p.release()
	}()
	synctest.Wait()
	require.False(t, ran.Load(), msg)
	free()
	synctest.Wait()
	require.True(t, ran.Load())
}

// Items that take their time (calls to another service) run ungated, and a
// gated pass whose items turn slow lets go of its tokens.
func TestPacer_SlowItemsRunUngated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &paceGate{cpu: cpuTokens()}
		a := g.pacer()
		for range 3 * burstItems {
			a.tick()
			time.Sleep(2 * quickItem)
		}
		require.False(t, g.quick.Load())
		require.False(t, a.held)
		require.Zero(t, len(g.cpu))

		g.quick.Store(true) // another worker's burst was quick
		b := g.pacer()
		b.tick()
		require.True(t, b.held)
		for range burstItems {
			time.Sleep(2 * quickItem)
			b.tick()
		}
		require.False(t, g.quick.Load())
		require.False(t, b.held, "a slow burst lets go of its token")
		require.Zero(t, len(g.cpu))
	})
}

// Two passes of one engine (two quick jobs at once) take turns on the same
// tokens: a processor stays free however many jobs run.
func TestPacer_PassesShareTheEnginesTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &Engine{cpu: cpuTokens()}
		first := e.paceGate()
		var holders []*pacer
		for range cap(e.cpu) {
			p := first.pacer()
			for range burstItems + 1 {
				p.tick()
			}
			require.True(t, p.held)
			holders = append(holders, p)
		}

		second := e.paceGate()
		second.quick.Store(true)
		requireWaitsForToken(t, second, holders[0].release, "the other job's quick worker waits for a token")
		for _, p := range holders[1:] {
			p.release()
		}
	})
}

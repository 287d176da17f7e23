package batch

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr"
)

// A custom retry strategy is either a [BackoffFunc] registered in Go and
// named by retry.function, or a formula given in the batch itself:
//
//	"retry": {"attempts": 5, "backoff": "custom", "formula": "error_type == 'timeout' ? 30 : delay * attempt", "max_delay": "1m"}
//
// The formula is an expr expression whose number is the delay in seconds
// before the next try. It sees:
//
//   - attempt: the number of the try that just failed, from 1
//   - error_type: validation, resource, system or timeout (the API
//     document's error types)
//   - error_code: the error's code, such as "RESOURCE_ERROR"
//   - delay, max_delay: retry.delay and retry.max_delay in seconds
//
// The delay is never below 0 nor above retry.max_delay; a formula that
// fails for some error waits retry.delay.

// backoffEnvShape is what a retry formula can name.
var backoffEnvShape = map[string]any{"attempt": 0, "error_type": "", "error_code": "", "delay": 0.0, "max_delay": 0.0}

// compileBackoffFormula compiles a retry formula through the one bounded
// compile (see compileExpr).
func compileBackoffFormula(src string) (*exprProgram, error) {
	return compileExpr(src, backoffEnvShape, expr.AsFloat64())
}

// formulaBackoff returns the delay the formula src gives after a failed
// attempt, bounded by [0, ro.MaxDelay].
func (e *Engine) formulaBackoff(ro RetryOptions, attempt int, err error) time.Duration {
	base, ceiling := time.Duration(ro.Delay), time.Duration(ro.MaxDelay)
	var prog *exprProgram
	if p, ok := e.formulas.Load(ro.Formula); ok {
		prog = p.(*exprProgram)
	} else {
		p, cerr := compileBackoffFormula(ro.Formula)
		if cerr != nil {
			return base // checked at submission; a stored job cannot get here
		}
		prog = p
		e.formulas.Store(ro.Formula, p)
	}
	code := CodeOf(err)
	if code == "" {
		code = CodeSystem
	}
	out, rerr := prog.runOwned(context.Background(), map[string]any{
		"attempt":    attempt,
		"error_type": strings.ToLower(strings.TrimSuffix(string(code), "_ERROR")),
		"error_code": string(code),
		"delay":      base.Seconds(),
		"max_delay":  ceiling.Seconds(),
	}, exprTimeLimit)
	secs, _ := out.(float64)
	switch {
	case rerr != nil:
		return base
	case math.IsNaN(secs) || secs <= 0:
		return 0
	case secs >= ceiling.Seconds():
		return ceiling
	}
	return time.Duration(secs * float64(time.Second))
}

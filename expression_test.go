package batch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Observation 1 and 2: expressions that used to exhaust memory, overflow the
// stack or burn CPU are refused at compile time or stopped by their budget.
func TestExpressionBombsAreBounded(t *testing.T) {
	rec := map[string]any{"record": map[string]any{"s": strings.Repeat("y", 1000), "n": 3.0}}
	for _, tc := range []struct {
		name, src     string
		compileErrHas string
	}{
		{name: "repeat", src: `len(repeat(repeat("x",1000),999999))`},
		{name: "nested repeat", src: `len(repeat(repeat(repeat("x",1000),1000),1000))`},
		{name: "replace", src: `len(replace(replace(record.s, "", record.s), "", record.s))`},
		{name: "reduce concat", src: `reduce(1..999999, #acc + "ab", "") != ""`},
		{name: "doubling arrays", src: `len(reduce(1..40, concat(#acc, #acc), [1]))`},
		{name: "doubling flatten", src: `len(flatten(reduce(1..60, [#acc, #acc], [1])))`},
		{name: "doubling toJSON", src: `len(toJSON(reduce(1..60, [#acc, #acc], [1])))`},
		{name: "doubling string", src: `len(string(reduce(1..60, [#acc, #acc], [1])))`},
		{name: "nested loops", src: `count(1..1000, count(1..1000, count(1..1000, true) > 0) > 0)`},
		{name: "big range", src: `len(1..999999999)`},
		{name: "doubling result", src: `reduce(1..60, [#acc, #acc], [1])`},
		{name: "deep parens", src: strings.Repeat("(", 1_000_000) + "1" + strings.Repeat(")", 1_000_000), compileErrHas: "bytes long"},
		{name: "deep brackets", src: strings.Repeat("[", 100) + strings.Repeat("]", 100), compileErrHas: "deeper than"},
		{name: "long", src: strings.Repeat("1+", 3000) + "1", compileErrHas: "bytes long"},
		{name: "reserved", src: `string(__batch_meter)`, compileErrHas: "reserved"},
		{name: "unbalanced", src: strings.Repeat(")", 10) + strings.Repeat("(", 100), compileErrHas: "unbalanced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p, err := compileExpr(tc.src, map[string]any{"record": map[string]any{}})
			if tc.compileErrHas != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.compileErrHas)
				return
			}
			require.NoError(t, err)
			_, err = p.run(context.Background(), rec)
			require.Error(t, err)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

func TestExpressionsStillWork(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want any
	}{
		{`record.n * 2 + 1`, 7.0},
		{`"a" + "b" + upper("c")`, "abC"},
		{`len(repeat("ab", 3))`, 6},
		{`replace("a-b-c", "-", "+")`, "a+b+c"},
		{`join(["a","b"], ",")`, "a,b"},
		{`len(concat([1], [2, 3]))`, 3},
		{`filter(1..5, # > 3)`, []any{4, 5}},
		{`reduce(1..4, #acc + #, 0)`, 10},
		{`toJSON([1])`, "[\n  1\n]"},
		{`string(1)`, "1"},
		{`"__batch_x" + "y"`, "__batch_xy"},
		{`all(1..3, # > 0) && any(["x"], # == "x")`, true},
	} {
		p, err := compileExpr(tc.src, recordEnvShape)
		require.NoError(t, err, tc.src)
		out, err := p.run(context.Background(), map[string]any{"record": map[string]any{"n": 3.0}})
		require.NoError(t, err, tc.src)
		assert.Equal(t, tc.want, out, tc.src)
	}
	_, err := compileExpr(`record.n > 1`, recordEnvShape, expr.AsBool())
	require.NoError(t, err)
	_, err = compileExpr(`1 + 1`, recordEnvShape, expr.AsBool())
	require.Error(t, err)
}

func TestExpressionStopsWithItsContext(t *testing.T) {
	p, err := compileExpr(`all(1..100000, all(1..5, true))`, recordEnvShape)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.run(ctx, map[string]any{"record": map[string]any{}})
	require.ErrorIs(t, err, context.Canceled)
}

// An evaluation that stays within its memory and step budgets but would run
// for minutes is stopped by its time budget.
func TestExpressionTimeBudget(t *testing.T) {
	p, err := compileExpr(`all(1..100000, !(record.s contains "zzz"))`, recordEnvShape)
	require.NoError(t, err)
	rec := map[string]any{"record": map[string]any{"s": strings.Repeat("y", 1<<20)}}
	start := time.Now()
	_, err = p.run(context.Background(), rec)
	require.ErrorIs(t, err, ErrExpressionLimit)
	require.ErrorContains(t, err, "out of time")
	require.Less(t, time.Since(start), 3*time.Second)
}

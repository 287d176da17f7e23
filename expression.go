package batch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// This file is the one place where expressions (filters' where, calculate's
// set, validate's rules, template placeholders) are compiled and run. expr
// alone is not a sandbox: its parser recurses once per nesting level, some
// builtins allocate before they charge their memory budget, and nothing
// bounds the time a run takes. So every expression here is bounded:
//
//   - at compile time by its length ([MaxExpressionLength]), its bracket
//     nesting ([MaxExpressionDepth], checked before the parser sees it) and
//     its node count;
//   - at run time by a budget per evaluation: the VM's memory budget for
//     ranges and literals, a byte budget that every builtin able to build a
//     large value (string +, repeat, replace, join, concat, flatten, toJSON,
//     string) is charged before it allocates, a step budget charged once per
//     iteration of every predicate (map, filter, reduce, all, ...), and a
//     wall-clock limit checked at those same points, which also stops the
//     evaluation when its context ends;
//   - by the size of its result.
//
// A bad expression is found at submission (INVALID_BATCH); one that blows a
// budget on a record fails that item, never the process.

// Expression limits.
const (
	// MaxExpressionLength is the longest expression source accepted, in
	// bytes.
	MaxExpressionLength = 4096
	// MaxExpressionDepth is the deepest nesting of brackets ((, [ and {)
	// accepted in an expression.
	MaxExpressionDepth = 64

	// maxExprNodes bounds the number of syntax nodes of an expression.
	maxExprNodes = 1000
	// exprMemoryBudget is the VM's own budget (elements of ranges, array
	// and map literals) per evaluation.
	exprMemoryBudget = 1_000_000
	// exprByteBudget bounds the bytes (or elements) that the metered
	// builtins may build in one evaluation, and the size of its result.
	exprByteBudget = 8 << 20
	// exprStepBudget bounds the predicate iterations of one evaluation.
	exprStepBudget = 1_000_000
	// exprTimeLimit bounds the wall-clock time of one evaluation.
	exprTimeLimit = 250 * time.Millisecond
)

// ErrExpressionLimit is matched (errors.Is) by the error of an evaluation
// that went over one of its budgets.
var ErrExpressionLimit = errors.New("expression limit exceeded")

// reservedPrefix starts the names of the hidden variable and functions;
// expressions may not use them.
const reservedPrefix = "__batch_"

// meterVar is the hidden variable through which the metered functions reach
// the budget of the evaluation that calls them.
const meterVar = "__batch_meter"

// exprMeter is the budget of one evaluation.
type exprMeter struct {
	ctx      context.Context
	deadline time.Time
	bytes    int
	steps    int
}

func newMeter(ctx context.Context, limit time.Duration) *exprMeter {
	return &exprMeter{ctx: ctx, deadline: time.Now().Add(limit)}
}

// charge takes n bytes (or elements) from the budget before they are built.
func (m *exprMeter) charge(n int) error {
	if n < 0 || n > exprByteBudget-m.bytes {
		return fmt.Errorf("%w: the expression would build more than %d bytes", ErrExpressionLimit, exprByteBudget)
	}
	m.bytes += n
	return m.check()
}

// step counts one predicate iteration.
func (m *exprMeter) step() error {
	m.steps++
	if m.steps > exprStepBudget {
		return fmt.Errorf("%w: the expression takes more than %d steps", ErrExpressionLimit, exprStepBudget)
	}
	if m.steps%64 == 0 {
		return m.check()
	}
	return nil
}

// check ends the evaluation when its time is up or its context ended.
func (m *exprMeter) check() error {
	if err := m.ctx.Err(); err != nil {
		return err
	}
	if time.Now().After(m.deadline) {
		return fmt.Errorf("%w: the expression runs out of time", ErrExpressionLimit)
	}
	return nil
}

// exprProgram is a compiled, bounded expression. It is safe for concurrent
// use.
type exprProgram struct {
	src  string
	prog *vm.Program
}

// compileExpr compiles src against env, the shape of the variables it may
// use (their names and example values), with extra expr options such as
// expr.AsBool(). It rejects sources over the length, nesting and node
// limits before or while parsing.
func compileExpr(src string, env map[string]any, opts ...expr.Option) (*exprProgram, error) {
	if err := checkExprShape(src); err != nil {
		return nil, err
	}
	shape := make(map[string]any, len(env)+1)
	for k, v := range env {
		shape[k] = v
	}
	shape[meterVar] = (*exprMeter)(nil)
	all := append([]expr.Option{expr.Env(shape), expr.MaxNodes(maxExprNodes), expr.Patch(meterPatch{})}, meteredFunctions...)
	prog, err := expr.Compile(src, append(all, opts...)...)
	if err != nil {
		return nil, err
	}
	return &exprProgram{src: src, prog: prog}, nil
}

// run evaluates p with vars (not modified) within the budgets; ctx ending
// stops it.
func (p *exprProgram) run(ctx context.Context, vars map[string]any) (any, error) {
	env := make(map[string]any, len(vars)+1)
	for k, v := range vars {
		env[k] = v
	}
	return p.runOwned(ctx, env, exprTimeLimit)
}

// runOwned is run with an env map the caller made for this one call: the
// meter is added to it. limit is the evaluation's time budget.
func (p *exprProgram) runOwned(ctx context.Context, env map[string]any, limit time.Duration) (out any, err error) {
	env[meterVar] = newMeter(ctx, limit)
	machine := vm.VM{MemoryBudget: exprMemoryBudget}
	out, err = machine.Run(p.prog, env)
	if err != nil {
		return nil, err
	}
	if _, ok := measure(out, exprByteBudget); !ok {
		return nil, fmt.Errorf("%w: the result is larger than %d bytes", ErrExpressionLimit, exprByteBudget)
	}
	return out, nil
}

// checkExprShape rejects a source that is too long or nests too deeply, by
// a scan that, unlike the parser, does not recurse.
func checkExprShape(src string) error {
	if len(src) > MaxExpressionLength {
		return fmt.Errorf("the expression is %d bytes long; the limit is %d", len(src), MaxExpressionLength)
	}
	depth, quote := 0, byte(0)
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '_' && strings.HasPrefix(src[i:], reservedPrefix):
			return fmt.Errorf("names starting with %s are reserved (at offset %d)", reservedPrefix, i)
		case c == '(' || c == '[' || c == '{':
			depth++
			if depth > MaxExpressionDepth {
				return fmt.Errorf("the expression nests brackets deeper than %d levels (at offset %d)", MaxExpressionDepth, i)
			}
		case c == ')' || c == ']' || c == '}':
			if depth--; depth < 0 {
				return fmt.Errorf("unbalanced %q at offset %d", c, i)
			}
		}
	}
	return nil
}

// meterPatch rewrites a checked syntax tree so that the evaluation's budget
// is charged: non-numeric +, the builtins that can build large values, and
// every predicate body go through the metered functions below.
type meterPatch struct{}

// meteredBuiltins maps builtins to their metered replacements.
var meteredBuiltins = map[string]string{
	"repeat":  "__batch_repeat",
	"replace": "__batch_replace",
	"join":    "__batch_join",
	"concat":  "__batch_concat",
	"flatten": "__batch_flatten",
	"toJSON":  "__batch_toJSON",
	"string":  "__batch_string",
}

func meterCall(fn string, args ...ast.Node) ast.Node {
	return &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fn},
		Arguments: append([]ast.Node{&ast.IdentifierNode{Value: meterVar}}, args...),
	}
}

func (meterPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator == "+" && !(isNumber(n.Left.Type()) && isNumber(n.Right.Type())) {
			ast.Patch(node, meterCall("__batch_add", n.Left, n.Right))
		}
	case *ast.BuiltinNode:
		if fn, ok := meteredBuiltins[n.Name]; ok {
			ast.Patch(node, meterCall(fn, n.Arguments...))
		}
	case *ast.PredicateNode:
		if c, ok := n.Node.(*ast.CallNode); ok {
			if id, ok := c.Callee.(*ast.IdentifierNode); ok && id.Value == "__batch_step" {
				return // already metered
			}
		}
		n.Node = meterCall("__batch_step", n.Node)
	}
}

func isNumber(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// builtinFunc returns expr's own implementation of a builtin.
func builtinFunc(name string) func(args ...any) (any, error) {
	for _, b := range builtin.Builtins {
		if b.Name != name {
			continue
		}
		switch {
		case b.Func != nil:
			return b.Func
		case b.Safe != nil:
			safe := b.Safe
			return func(args ...any) (any, error) { out, _, err := safe(args...); return out, err }
		case b.Fast != nil:
			fast := b.Fast
			return func(args ...any) (any, error) {
				if len(args) != 1 {
					return nil, fmt.Errorf("%s takes one argument", name)
				}
				return fast(args[0]), nil
			}
		}
	}
	panic("batch: expr has no builtin " + name)
}

// metered returns the function for a metered name: it takes the meter as
// its first argument, lets size say what the call will build (from the
// remaining arguments), charges it and only then calls fn.
func metered(name string, size func(m *exprMeter, args []any) (int, error), fn func(args ...any) (any, error)) expr.Option {
	return expr.Function(name, func(args ...any) (any, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%s needs its meter", name)
		}
		m, ok := args[0].(*exprMeter)
		if !ok || m == nil {
			return nil, fmt.Errorf("%s needs its meter", name)
		}
		args = args[1:]
		n, err := size(m, args)
		if err != nil {
			return nil, err
		}
		if err := m.charge(n); err != nil {
			return nil, err
		}
		return fn(args...)
	})
}

// measured sizes a call by what its arguments hold.
func measured(_ *exprMeter, args []any) (int, error) {
	n, ok := measure(args, exprByteBudget)
	if !ok {
		return 0, fmt.Errorf("%w: the value is larger than %d bytes", ErrExpressionLimit, exprByteBudget)
	}
	return n, nil
}

// meteredFunctions are the metered replacements the patch calls.
var meteredFunctions = []expr.Option{
	metered("__batch_add", func(_ *exprMeter, args []any) (int, error) {
		if len(args) != 2 {
			return 0, errors.New("+ takes two operands")
		}
		a, aok := args[0].(string)
		b, bok := args[1].(string)
		if aok && bok {
			return len(a) + len(b), nil
		}
		la, lb := reflect.ValueOf(args[0]), reflect.ValueOf(args[1])
		if la.Kind() == reflect.Slice && lb.Kind() == reflect.Slice {
			return la.Len() + lb.Len(), nil
		}
		return 0, nil
	}, func(args ...any) (any, error) { return runtime.Add(args[0], args[1]), nil }),
	metered("__batch_step", func(m *exprMeter, _ []any) (int, error) { return 0, m.step() },
		func(args ...any) (any, error) {
			if len(args) != 1 {
				return nil, errors.New("a predicate has one body")
			}
			return args[0], nil
		}),
	metered("__batch_repeat", func(_ *exprMeter, args []any) (int, error) {
		if len(args) != 2 {
			return 0, errors.New("repeat takes a string and a count")
		}
		s, ok := args[0].(string)
		if !ok {
			return 0, fmt.Errorf("repeat needs a string, not %T", args[0])
		}
		n := runtime.ToInt(args[1])
		if n < 0 {
			return 0, fmt.Errorf("repeat needs a count of 0 or more, not %d", n)
		}
		if n > 0 && len(s) > exprByteBudget/n {
			return -1, nil
		}
		return len(s) * n, nil
	}, builtinFunc("repeat")),
	metered("__batch_replace", func(_ *exprMeter, args []any) (int, error) {
		if len(args) < 3 {
			return 0, errors.New("replace takes a string, what to replace and its replacement")
		}
		s, ok1 := args[0].(string)
		old, ok2 := args[1].(string)
		repl, ok3 := args[2].(string)
		if !ok1 || !ok2 || !ok3 {
			return 0, errors.New("replace needs strings")
		}
		count := strings.Count(s, old)
		if old == "" {
			count = utf8.RuneCountInString(s) + 1
		}
		if count > 0 && len(repl) > exprByteBudget/count {
			return -1, nil
		}
		return len(s) + count*len(repl), nil
	}, builtinFunc("replace")),
	metered("__batch_join", measured, builtinFunc("join")),
	metered("__batch_concat", measured, builtinFunc("concat")),
	metered("__batch_flatten", measured, builtinFunc("flatten")),
	metered("__batch_toJSON", func(m *exprMeter, args []any) (int, error) {
		n, err := measured(m, args)
		return 2 * n, err // indentation
	}, builtinFunc("toJSON")),
	metered("__batch_string", measured, builtinFunc("string")),
}

// measure estimates the bytes v takes when written out, walking it with a
// budget: it stops, returning false, as soon as the size passes limit, so
// even a value that shares its parts exponentially is measured quickly.
func measure(v any, limit int) (int, bool) {
	switch x := v.(type) {
	case nil:
		return 0, true
	case bool, int, float64:
		return 8, 8 <= limit
	case string:
		return 8 + len(x), 8+len(x) <= limit
	}
	n := 0
	var walk func(v reflect.Value, depth int) bool
	walk = func(v reflect.Value, depth int) bool {
		if depth > 2*MaxExpressionDepth {
			n = limit + 1
			return false
		}
		n += 8
		switch v.Kind() {
		case reflect.Interface, reflect.Pointer:
			if !v.IsNil() && !walk(v.Elem(), depth+1) {
				return false
			}
		case reflect.String:
			n += v.Len()
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len() && n <= limit; i++ {
				if !walk(v.Index(i), depth+1) {
					return false
				}
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() && n <= limit {
				if !walk(it.Key(), depth+1) || !walk(it.Value(), depth+1) {
					return false
				}
			}
		}
		return n <= limit
	}
	if v == nil {
		return 0, true
	}
	ok := walk(reflect.ValueOf(v), 0)
	return n, ok
}

// submitCountTimeout bounds the time checking a batch spends counting the
// records it selects, so that no submission holds its caller (an HTTP
// handler, say) for long.
const submitCountTimeout = 10 * time.Second

var errCountTimeout = errors.New("batch: counting the selected records took too long")

// countingContext is the context for counting a batch's records: ctx,
// ending after [submitCountTimeout].
func countingContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, submitCountTimeout, errCountTimeout)
}

// probeWhere evaluates operation i's where expression once, on an empty
// record, so that an expression that goes over its budgets whatever the
// record is refused at submission (INVALID_BATCH) without reading the
// collection: a submission no longer scans it to count. One that goes over
// them only on some records fails the job when its selection meets them.
func probeWhere(ctx context.Context, i int, p *Plan) error {
	if p.Query == nil || p.Query.where == nil {
		return nil
	}
	_, err := p.Query.match(ctx, Record{})
	if errors.Is(err, ErrExpressionLimit) {
		return invalidBatch([]Detail{{Field: fmt.Sprintf("operations[%d].where", i), Code: DetailInvalidExpr, Message: err.Error()}})
	}
	return nil
}

package batch

import (
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// maxExprNodes bounds the size of an expression in a batch.
const maxExprNodes = 1000

// recordEnv is the environment expressions over a record compile against:
// the only name they can reach is `record`.
var recordEnvShape = map[string]any{"record": map[string]any{}}

// predicate is a compiled boolean expression over `record`.
type predicate struct {
	prog *vm.Program
}

// compileRecordExpr compiles src over `record`. asBool demands a boolean
// result.
func compileRecordExpr(src string, asBool bool) (*vm.Program, error) {
	opts := []expr.Option{expr.Env(recordEnvShape), expr.MaxNodes(maxExprNodes)}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	return expr.Compile(src, opts...)
}

// evalRecordExpr runs a compiled expression against rec.
func evalRecordExpr(prog *vm.Program, rec Record) (any, error) {
	return expr.Run(prog, map[string]any{"record": map[string]any(rec)})
}

func (p *predicate) eval(rec Record) (bool, error) {
	out, err := evalRecordExpr(p.prog, rec)
	if err != nil {
		return false, err
	}
	ok, _ := out.(bool)
	return ok, nil
}

// compileQuery builds the Query an operation's filter and where select,
// reporting problems under "filter" and "where". required demands at least
// one of them.
func compileQuery(spec *OperationSpec, required bool, d *details) *Query {
	q := &Query{Where: spec.Where}
	if spec.Filter != nil {
		f, err := normalizeJSON(spec.Filter)
		if err != nil {
			d.add("filter", DetailInvalidValue, "filter is not valid JSON: %v", err)
		}
		q.Filter = f
	}
	if spec.Where != "" {
		prog, err := compileRecordExpr(spec.Where, true)
		if err != nil {
			d.add("where", DetailInvalidExpr, "invalid where expression: %v", exprMessage(err))
		} else {
			q.where, q.src = &predicate{prog: prog}, spec.Where
		}
	}
	if required && len(spec.Filter) == 0 && spec.Where == "" {
		d.add("filter", DetailRequired, "%s needs a filter or a where expression (use \"where\": \"true\" to select every record)", spec.Type)
	}
	return q
}

// exprMessage shortens expr's multi-line compile errors to their first line
// plus the position marker.
func exprMessage(err error) string {
	return fmt.Sprint(err)
}

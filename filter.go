package batch

import (
	"context"
	"fmt"
	"time"

	"github.com/expr-lang/expr"
)

// recordEnvShape is the environment expressions over a record compile
// against: `record` is the whole record, and any other name is the
// record's field of that name (nil when the record lacks it).
var recordEnvShape = map[string]any{"record": map[string]any{}}

// predicate is a compiled boolean expression over a record.
type predicate struct {
	prog *exprProgram
}

// compileRecordExpr compiles src over a record (see compileExpr): a bare
// name is the record's field of that name (nil when the record lacks it),
// and `record` is the whole record, so "area_ha > 2" and
// "record.area_ha > 2" mean the same. asBool demands a boolean result.
func compileRecordExpr(src string, asBool bool) (*exprProgram, error) {
	opts := []expr.Option{expr.AllowUndefinedVariables()}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	return compileExpr(src, recordEnvShape, opts...)
}

// evalRecordExpr runs a compiled expression against rec, within the
// expression budgets; it stops when ctx ends.
func evalRecordExpr(ctx context.Context, prog *exprProgram, rec Record) (any, error) {
	return evalRecordExprWithin(ctx, prog, rec, exprTimeLimit)
}

// evalRecordExprWithin is evalRecordExpr with its own time budget.
func evalRecordExprWithin(ctx context.Context, prog *exprProgram, rec Record, limit time.Duration) (any, error) {
	env := make(map[string]any, len(rec)+2)
	for k, v := range rec {
		env[k] = v
	}
	env["record"] = map[string]any(rec)
	return prog.runOwned(ctx, env, limit)
}

func (p *predicate) eval(ctx context.Context, rec Record) (bool, error) {
	out, err := evalRecordExpr(ctx, p.prog, rec)
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

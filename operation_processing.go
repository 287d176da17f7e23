package batch

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// This file holds the processing operations: calculate, validate, analyze
// and generate. Their expressions are expr programs over `record` (see
// filter.go): compiled once when the job is planned, never per record, and
// sandboxed (they reach only the record and expr's builtins, within a node
// and memory budget).
//
//   - calculate sets fields from expressions, one item per selected record.
//     Every expression sees the record as it was before the operation. On a
//     built-in collection the new values are computed and written inside
//     the transaction that stores the item's outcome, so the change is
//     exactly-once. An expression that fails on a record (a missing field
//     in arithmetic, a result that is not JSON such as 1/0) fails that item
//     with VALIDATION_ERROR.
//   - validate checks each selected record against named boolean rules; a
//     record that breaks any is a failed item (VALIDATION_ERROR) naming the
//     rules. Nothing is written.
//   - analyze computes aggregates (count, sum, avg, min, max) over the
//     selected records, optionally per value of group_by; one item, whose
//     summary is the result. sum, avg, min and max use the numbers in the
//     field and skip other values; count counts records, or with a field
//     the records where it is set and not null. avg, min and max of no
//     numbers are null.
//   - generate renders the same aggregates as a report artifact, CSV (a
//     header of "key" and the aggregate names in name order, one row per
//     group, or one row with an empty key without group_by) or JSON (the
//     analyze summary).

// applyExprTime bounds the expressions of one calculate item evaluated
// inside a commit transaction, so that no expression holds the store's
// writer for long.
const applyExprTime = 20 * time.Millisecond

// namedExpr is one compiled expression an operation gives by name: a field
// calculate sets, or a rule validate checks.
type namedExpr struct {
	name string
	prog *exprProgram
}

// exprOperation describes an operation that evaluates expressions it gives
// by name in one payload field, over the records it selects.
type exprOperation struct {
	field    string            // the payload field
	writes   bool              // the operation changes the records
	boolean  bool              // the expressions are rules, true or false
	missing  string            // the message when the field holds none
	noun     string            // what a name names, for an empty one
	invalid  string            // how the message about an expression that does not compile starts
	reserved map[string]string // names that cannot be used, with why
}

var (
	calculateOp = exprOperation{
		field:    "set",
		writes:   true,
		missing:  "calculate needs set: {\"field\": \"expression over record\"}",
		noun:     "field",
		invalid:  "invalid expression",
		reserved: map[string]string{"id": "calculate cannot change a record's id"},
	}
	validateOp = exprOperation{
		field:   "rules",
		boolean: true,
		missing: "validate needs rules: {\"rule name\": \"boolean expression over record\"}",
		noun:    "rule",
		invalid: "invalid rule",
	}
)

// exprPayload is the checked payload of an [exprOperation].
type exprPayload struct {
	res   Resource
	coll  *Collection // res, when the operation writes a built-in collection
	q     *Query
	exprs []namedExpr // in name order
}

// check checks spec, whose field o.field holds exprs, and compiles it.
func (o *exprOperation) check(spec *OperationSpec, env *Env, exprs map[string]string) (*exprPayload, error) {
	var d details
	checkFields(spec, &d, "resource", "filter", "where", o.field)
	x := &exprPayload{}
	if o.writes {
		x.res, x.coll = resolveWritable(spec, env, &d)
	} else {
		x.res, _ = resolveResource(spec, env, &d)
	}
	x.q = compileQuery(spec, true, &d)
	if len(exprs) == 0 {
		d.add(o.field, DetailRequired, "%s", o.missing)
	}
	x.exprs = make([]namedExpr, 0, len(exprs))
	for _, name := range sortedKeys(exprs) {
		path := o.field + "." + name
		why := o.reserved[name]
		if strings.TrimSpace(name) == "" {
			why = "a " + o.noun + " name must not be empty"
		}
		if why != "" {
			d.add(path, DetailInvalidValue, "%s", why)
			continue
		}
		prog, err := compileRecordExpr(exprs[name], o.boolean)
		if err != nil {
			d.add(path, DetailInvalidExpr, "%s: %v", o.invalid, exprMessage(err))
			continue
		}
		x.exprs = append(x.exprs, namedExpr{name: name, prog: prog})
	}
	return x, invalidBatch(d.list)
}

func planCalculate(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	x, err := calculateOp.check(spec, env, spec.Set)
	if err != nil {
		return nil, err
	}
	res, coll, q, sets := x.res.(WritableResource), x.coll, x.q, x.exprs
	compute := func(ctx context.Context, rec Record, limit time.Duration) (Record, error) {
		next := make(Record, len(rec)+len(sets))
		for k, v := range rec {
			next[k] = v
		}
		for _, s := range sets {
			out, err := evalRecordExprWithin(ctx, s.prog, rec, limit)
			if err != nil {
				return nil, ValidationError("set.%s: %v", s.name, err)
			}
			v, err := jsonValue(out)
			if err != nil {
				return nil, ValidationError("set.%s: %v", s.name, err)
			}
			next[s.name] = v
		}
		return next, nil
	}
	p := &Plan{
		Resource: res,
		Query:    q,
		preview:  func(rec Record) (Record, error) { return compute(context.Background(), rec, exprTimeLimit) },
		Validate: func(ctx context.Context, it *Item) error {
			next, err := compute(ctx, it.Record, exprTimeLimit)
			if err != nil {
				return err
			}
			return validateRecord(ctx, res, next)
		},
	}
	if coll != nil {
		p.coll = coll
		// The change is computed outside the commit when it must be
		// validated first; inside it, the expressions get a far smaller time
		// budget, so that none holds the store's writer for long.
		p.prepare = prepareChange(coll, func(rec Record) (Record, error) { return compute(context.Background(), rec, exprTimeLimit) })
		p.apply = applyChange(coll, func(rec Record) (Record, error) { return compute(context.Background(), rec, applyExprTime) })
		return p, nil
	}
	p.Run = func(ctx context.Context, it *Item) error {
		next, err := compute(ctx, it.Record, exprTimeLimit)
		if err != nil {
			return err
		}
		if err := validateRecord(ctx, res, next); err != nil {
			return err
		}
		return res.Put(ctx, next)
	}
	return p, nil
}

// jsonValue returns an expression's result as a decoded JSON value, or an
// error when it has no JSON form (NaN, infinities, functions).
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool:
		return v, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("result %v is not a JSON number", x)
		}
		return x, nil
	case int:
		return float64(x), nil
	}
	out, err := normalizeJSON(v)
	if err != nil {
		return nil, fmt.Errorf("result of type %T has no JSON form: %v", v, err)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func planValidate(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	x, err := validateOp.check(spec, env, spec.Rules)
	if err != nil {
		return nil, err
	}
	return &Plan{
		Resource: x.res,
		Query:    x.q,
		Run: func(ctx context.Context, it *Item) error {
			var failed []string
			for _, r := range x.exprs {
				out, err := evalRecordExpr(ctx, r.prog, it.Record)
				switch ok, _ := out.(bool); {
				case err != nil:
					failed = append(failed, fmt.Sprintf("%s (%s)", r.name, firstLine(err.Error())))
				case !ok:
					failed = append(failed, r.name)
				}
			}
			if len(failed) > 0 {
				return ValidationError("failed rules: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Aggregate functions.
const (
	AggCount = "count"
	AggSum   = "sum"
	AggAvg   = "avg"
	AggMin   = "min"
	AggMax   = "max"
)

// aggregation is a compiled analyze or generate operation.
type aggregation struct {
	res     Resource
	q       *Query
	names   []string    // aggregate names, sorted
	aggs    []Aggregate // by names
	paths   [][]string  // field paths, by names
	groupBy []string    // nil without group_by
}

// aggState accumulates one aggregate of one group.
type aggState struct {
	count    int64
	sum      float64
	nums     int64
	min, max float64
}

// compileAggregation checks the aggregates and group_by of spec.
func compileAggregation(spec *OperationSpec, env *Env, d *details) *aggregation {
	res, _ := resolveResource(spec, env, d)
	a := &aggregation{res: res, q: compileQuery(spec, false, d)}
	if len(spec.Aggregates) == 0 {
		d.add("aggregates", DetailRequired, "%s needs aggregates: {\"name\": {\"fn\": \"count\"|\"sum\"|\"avg\"|\"min\"|\"max\", \"field\": ...}}", spec.Type)
	}
	if spec.GroupBy != "" {
		a.groupBy = strings.Split(spec.GroupBy, ".")
		if slices.Contains(a.groupBy, "") {
			d.add("group_by", DetailInvalidValue, "group_by %q is not a field path", spec.GroupBy)
		}
	}
	for _, name := range sortedKeys(spec.Aggregates) {
		ag := spec.Aggregates[name]
		path := "aggregates." + name
		switch {
		case strings.TrimSpace(name) == "":
			d.add(path, DetailInvalidValue, "an aggregate name must not be empty")
			continue
		case name == "key" && a.groupBy != nil:
			d.add(path, DetailInvalidValue, "\"key\" names the group in grouped results; pick another name")
			continue
		}
		switch ag.Fn {
		case AggCount:
		case AggSum, AggAvg, AggMin, AggMax:
			if ag.Field == "" {
				d.add(path+".field", DetailRequired, "%s needs a field", ag.Fn)
				continue
			}
		case "":
			d.add(path+".fn", DetailRequired, "an aggregate needs fn: count, sum, avg, min or max")
			continue
		default:
			d.add(path+".fn", DetailInvalidValue, "unknown fn %q: use count, sum, avg, min or max", ag.Fn)
			continue
		}
		var fp []string
		if ag.Field != "" {
			fp = strings.Split(ag.Field, ".")
			if slices.Contains(fp, "") {
				d.add(path+".field", DetailInvalidValue, "%q is not a field path", ag.Field)
				continue
			}
		}
		a.names = append(a.names, name)
		a.aggs = append(a.aggs, ag)
		a.paths = append(a.paths, fp)
	}
	return a
}

// lookup follows a dotted field path into rec.
func lookup(rec map[string]any, path []string) (any, bool) {
	var cur any = rec
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// aggGroup is the running state of one group.
type aggGroup struct {
	key    any
	states []aggState
}

// run scans the selected records and returns the summary: {name: value},
// or {"groups": [{"key": k, name: value}, ...]} ordered by key.
func (a *aggregation) run(ctx context.Context) (map[string]any, error) {
	groups := map[string]*aggGroup{}
	get := func(key any) *aggGroup {
		kb, _ := json.Marshal(key)
		g := groups[string(kb)]
		if g == nil {
			g = &aggGroup{key: key, states: make([]aggState, len(a.aggs))}
			groups[string(kb)] = g
		}
		return g
	}
	if a.groupBy == nil {
		get(nil)
	}
	var fields []string
	for _, p := range append(slices.Clone(a.paths), a.groupBy) {
		if len(p) > 0 && !slices.Contains(fields, p[0]) {
			fields = append(fields, p[0])
		}
	}
	err := scanFields(ctx, a.res, a.q, fields, func(rec Record) error {
		var key any
		if a.groupBy != nil {
			key, _ = lookup(rec, a.groupBy)
		}
		g := get(key)
		for i, ag := range a.aggs {
			st := &g.states[i]
			if ag.Fn == AggCount {
				if a.paths[i] == nil {
					st.count++
				} else if v, ok := lookup(rec, a.paths[i]); ok && v != nil {
					st.count++
				}
				continue
			}
			v, _ := lookup(rec, a.paths[i])
			x, ok := v.(float64)
			if !ok {
				continue
			}
			if st.nums == 0 || x < st.min {
				st.min = x
			}
			if st.nums == 0 || x > st.max {
				st.max = x
			}
			st.sum += x
			st.nums++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	row := func(g *aggGroup) map[string]any {
		out := make(map[string]any, len(a.names)+1)
		for i, name := range a.names {
			st := g.states[i]
			var v any
			switch a.aggs[i].Fn {
			case AggCount:
				v = st.count
			case AggSum:
				v = st.sum
			case AggAvg:
				if st.nums > 0 {
					v = st.sum / float64(st.nums)
				}
			case AggMin:
				if st.nums > 0 {
					v = st.min
				}
			case AggMax:
				if st.nums > 0 {
					v = st.max
				}
			}
			out[name] = v
		}
		return out
	}
	if a.groupBy == nil {
		return row(get(nil)), nil
	}
	list := make([]*aggGroup, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	slices.SortFunc(list, func(x, y *aggGroup) int { return compareJSON(x.key, y.key) })
	rows := make([]any, len(list))
	for i, g := range list {
		r := row(g)
		r["key"] = g.key
		rows[i] = r
	}
	return map[string]any{"groups": rows}, nil
}

// compareJSON orders decoded JSON values: null, then false and true, then
// numbers, then strings, then anything else by its JSON text.
func compareJSON(x, y any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case bool:
			return 1
		case float64:
			return 2
		case string:
			return 3
		}
		return 4
	}
	if c := cmp.Compare(rank(x), rank(y)); c != 0 {
		return c
	}
	switch a := x.(type) {
	case bool:
		b := y.(bool)
		switch {
		case a == b:
			return 0
		case !a:
			return -1
		}
		return 1
	case float64:
		return cmp.Compare(a, y.(float64))
	case string:
		return cmp.Compare(a, y.(string))
	case nil:
		return 0
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return strings.Compare(string(xb), string(yb))
}

func planAnalyze(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "filter", "where", "aggregates", "group_by")
	a := compileAggregation(spec, env, &d)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		sum, err := a.run(ctx)
		if err != nil {
			return err
		}
		it.Result = &Result{Summary: jsonMap(sum)}
		return nil
	}}, spec.Resource), nil
}

// reportFormats maps a report format to its content type.
var reportFormats = map[string]string{
	"csv":  "text/csv",
	"json": "application/json",
}

func planGenerate(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "filter", "where", "aggregates", "group_by", "report")
	a := compileAggregation(spec, env, &d)
	format, contentType := outputFormat(spec.Report, reportFormats, "report.format", "unknown report format %q: use csv or json", &d)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("report-%d.%s", env.Operation, format)
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		sum, err := a.run(ctx)
		if err != nil {
			return err
		}
		rows := 1
		if g, ok := sum["groups"].([]any); ok && a.groupBy != nil {
			rows = len(g)
		}
		art, err := env.WriteArtifact(ctx, name, contentType, func(w io.Writer) error {
			if format == "json" {
				return json.NewEncoder(w).Encode(sum)
			}
			return a.writeCSV(w, sum)
		})
		if err != nil {
			return err
		}
		it.Result = &Result{Summary: jsonMap(map[string]any{"format": format, "rows": rows}), Artifact: art}
		return nil
	}}, spec.Resource), nil
}

// writeCSV writes an aggregation summary as CSV: "key" and the aggregate
// names, then one row per group.
func (a *aggregation) writeCSV(w io.Writer, sum map[string]any) error {
	bw := bufio.NewWriter(w)
	cw := csv.NewWriter(bw)
	if err := cw.Write(append([]string{"key"}, a.names...)); err != nil {
		return err
	}
	var rows []map[string]any
	if a.groupBy == nil {
		rows = []map[string]any{sum}
	} else {
		for _, r := range sum["groups"].([]any) {
			rows = append(rows, r.(map[string]any))
		}
	}
	line := make([]string, len(a.names)+1)
	for _, r := range rows {
		line[0] = csvValue(r["key"])
		for i, name := range a.names {
			line[i+1] = csvValue(r[name])
		}
		if err := cw.Write(line); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

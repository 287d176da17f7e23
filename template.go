package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Template is a reusable batch with parameters, as in the API document's
// "Batch Templates". Its operations carry their payload under "template",
// where "${...}" placeholders are expr expressions over the parameters.
//
// Rendering rules: a string that is exactly one placeholder keeps the
// value's type ("${days}" gives 30, not "30"); placeholders inside longer
// strings are formatted into the text; a value that is exactly one
// placeholder and comes out null (an optional parameter that was not given
// and has no default) removes its key.
//
// A template operation's payload is the operation's fields (filter, where,
// update, records, ...) when it names any of them. Otherwise it is the
// natural object of the operation: the update object of an update (which
// then applies to every record, unless the operation gives a filter or
// where beside the template), or the one record of a create.
//
// Expressions see the parameters by name (and all of them as `params`) and
// a few helpers: today() and now() (the engine clock, as "2006-01-02" and
// RFC 3339 strings), days_ago(n) and add_days(date, n) (dates as
// "2006-01-02"), plus expr's own upper, lower, trim, round, floor, ceil,
// abs, len and the like. Nothing else is reachable.
type Template struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  []Parameter     `json:"parameters,omitempty"`
	Operations  []OperationSpec `json:"operations"`
	Options     BatchOptions    `json:"options,omitzero"`
	Owner       string          `json:"owner,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// Parameter is one parameter of a [Template].
type Parameter struct {
	Name string `json:"name"`
	// Type is string, integer, number, boolean, array, object, date
	// ("2006-01-02") or datetime (RFC 3339).
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Enum        []any  `json:"enum,omitempty"`
	Default     any    `json:"default,omitempty"`
	Description string `json:"description,omitempty"`
}

// Parameter types.
var parameterTypes = []string{"string", "integer", "number", "boolean", "array", "object", "date", "datetime"}

const (
	bucketTemplates  = "templates"
	templateIDPrefix = "template"
)

// payloadKeys are the operation fields a template payload may set.
var payloadKeys = []string{"filter", "where", "update", "records", "source", "destination", "set", "rules", "aggregates", "group_by", "report", "older_than", "params"}

// DecodeTemplate reads a template object (the value of the request body's
// "template" field) strictly: unknown fields and wrong types are
// INVALID_BATCH errors with JSON paths.
func DecodeTemplate(data []byte) (*Template, error) { return decodeObject[Template](data) }

// compiledTemplate is a checked template with its expressions compiled.
type compiledTemplate struct {
	t     *Template
	progs map[string]*exprProgram // by expression source
	// spent is what the placeholders rendered so far produced, bounded by
	// the expression byte budget for the whole template.
	spent int
}

// templateEnv is the environment expressions compile against: every
// parameter by name, all of them as params, and the helpers.
func (e *Engine) templateEnv(params map[string]any) map[string]any {
	env := make(map[string]any, len(params)+5)
	for k, v := range params {
		env[k] = v
	}
	env["params"] = params
	now := e.now
	env["today"] = func() string { return now().Format(time.DateOnly) }
	env["now"] = func() string { return now().UTC().Format(time.RFC3339) }
	env["days_ago"] = func(n any) (string, error) {
		days, err := wholeNumber("days_ago", n)
		return now().AddDate(0, 0, -days).Format(time.DateOnly), err
	}
	env["add_days"] = func(date string, n any) (string, error) {
		days, err := wholeNumber("add_days", n)
		if err != nil {
			return "", err
		}
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return "", fmt.Errorf("add_days: %q is not a date like 2006-01-02", date)
		}
		return d.AddDate(0, 0, days).Format(time.DateOnly), nil
	}
	return env
}

// compileTemplate checks t and compiles its placeholders. Problems are
// INVALID_BATCH details.
func (e *Engine) compileTemplate(t *Template) (*compiledTemplate, error) {
	var d details
	if strings.TrimSpace(t.Name) == "" {
		d.add("name", DetailRequired, "a template needs a name")
	}
	shape := map[string]any{}
	for i, p := range t.Parameters {
		path := fmt.Sprintf("parameters[%d]", i)
		switch {
		case p.Name == "":
			d.add(path+".name", DetailRequired, "a parameter needs a name")
		case !isIdent(p.Name) || p.Name == "params" || slices.Contains([]string{"today", "now", "days_ago", "add_days"}, p.Name):
			d.add(path+".name", DetailInvalidValue, "parameter name %q must be an identifier (letters, digits, _) and not a helper name", p.Name)
		case shape[p.Name] != nil:
			d.add(path+".name", DetailInvalidValue, "parameter %q is declared twice", p.Name)
		}
		if !slices.Contains(parameterTypes, p.Type) {
			d.add(path+".type", DetailInvalidValue, "unknown type %q (use %s)", p.Type, strings.Join(parameterTypes, ", "))
		}
		for j, v := range p.Enum {
			if err := checkParamType(p.Type, v); err != nil {
				d.add(fmt.Sprintf("%s.enum[%d]", path, j), DetailInvalidValue, "%v", err)
			}
		}
		if p.Default != nil {
			if err := checkParam(p, p.Default); err != nil {
				d.add(path+".default", DetailInvalidValue, "%v", err)
			}
		}
		shape[p.Name] = zeroOf(p.Type)
	}
	if len(t.Operations) == 0 {
		d.add("operations", DetailRequired, "a template needs at least one operation")
	}
	ct := &compiledTemplate{t: t, progs: map[string]*exprProgram{}}
	env := e.templateEnv(shape)
	for i, op := range t.Operations {
		path := fmt.Sprintf("operations[%d]", i)
		if _, ok := e.operation(op.Type); !ok {
			d.add(path+".type", DetailInvalidOperation, "Unknown operation type: %s", op.Type)
		}
		if op.Resource != "" {
			if _, ok := e.resource(op.Resource); !ok {
				d.add(path+".resource", DetailUnknownResource, "Unknown resource: %s", op.Resource)
			}
		}
		walkStrings(op.Template, path+".template", func(p, s string) {
			spans, err := placeholders(s)
			if err != nil {
				d.add(p, DetailInvalidExpr, "%v", err)
				return
			}
			for _, sp := range spans {
				src := s[sp[0]+2 : sp[1]-1]
				if _, done := ct.progs[src]; done {
					continue
				}
				prog, err := compileExpr(src, env)
				if err != nil {
					d.add(p, DetailInvalidExpr, "invalid expression ${%s}: %v", src, err)
					continue
				}
				ct.progs[src] = prog
			}
		})
	}
	var od details
	t.Options.check(&od, func(name string) bool { _, ok := e.backoff(name); return ok })
	d.list = append(d.list, od.list...)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return ct, nil
}

// wholeNumber reads an integer argument of a helper function.
func wholeNumber(fn string, v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1e6 {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%s: %v is not a whole number of days", fn, v)
}

func isIdent(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// zeroOf is a value of the parameter type, for compiling against.
func zeroOf(typ string) any {
	switch typ {
	case "integer", "number":
		return 0.0
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return ""
}

// walkStrings calls fn for every string in v, with its JSON path.
func walkStrings(v any, path string, fn func(path, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			walkStrings(x[k], path+"."+k, fn)
		}
	case []any:
		for i, e := range x {
			walkStrings(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// placeholders returns the [start, end) spans of each "${...}" in s; a "}"
// inside a quoted string or a nested {...} does not end one.
func placeholders(s string) ([][2]int, error) {
	var spans [][2]int
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' || s[i+1] != '{' {
			continue
		}
		depth, quote, j := 0, byte(0), i+2
		for ; j < len(s); j++ {
			c := s[j]
			switch {
			case quote != 0:
				if c == '\\' {
					j++
				} else if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'' || c == '`':
				quote = c
			case c == '{':
				depth++
			case c == '}':
				if depth == 0 {
					goto end
				}
				depth--
			}
		}
	end:
		if j >= len(s) {
			return nil, fmt.Errorf("unterminated ${ at offset %d", i)
		}
		if strings.TrimSpace(s[i+2:j]) == "" {
			return nil, fmt.Errorf("empty ${} at offset %d", i)
		}
		spans = append(spans, [2]int{i, j + 1})
		i = j
	}
	return spans, nil
}

// checkParamType checks that v is a value of parameter type typ.
func checkParamType(typ string, v any) error {
	ok := false
	switch typ {
	case "string":
		_, ok = v.(string)
	case "integer":
		f, isNum := v.(float64)
		ok = isNum && f == math.Trunc(f) && !math.IsInf(f, 0)
	case "number":
		_, ok = v.(float64)
	case "boolean":
		_, ok = v.(bool)
	case "array":
		_, ok = v.([]any)
	case "object":
		_, ok = v.(map[string]any)
	case "date":
		s, isStr := v.(string)
		if _, err := time.Parse(time.DateOnly, s); isStr && err == nil {
			ok = true
		}
	case "datetime":
		s, isStr := v.(string)
		if _, err := time.Parse(time.RFC3339, s); isStr && err == nil {
			ok = true
		}
	default:
		return fmt.Errorf("unknown type %q", typ)
	}
	if !ok {
		want := map[string]string{"date": "a date like 2025-01-19", "datetime": "an RFC 3339 time like 2025-01-19T00:52:03Z"}[typ]
		if want == "" {
			want = "a value of type " + typ
		}
		return fmt.Errorf("expected %s, got %s", want, describe(v))
	}
	return nil
}

func describe(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		b = append(b[:37], "..."...)
	}
	return string(b)
}

// checkParam checks a value against a parameter's type and enum.
func checkParam(p Parameter, v any) error {
	if err := checkParamType(p.Type, v); err != nil {
		return err
	}
	if len(p.Enum) > 0 && !slices.ContainsFunc(p.Enum, func(e any) bool { return jsonEqual(e, v) }) {
		return fmt.Errorf("%s is not one of %s", describe(v), describe(p.Enum))
	}
	return nil
}

// instantiate checks parameter values against the template and renders its
// operations into a batch. Problems name the parameter
// ("parameters.status").
func (e *Engine) instantiate(ctx context.Context, ct *compiledTemplate, given map[string]any) (*Batch, error) {
	t := ct.t
	given, err := normalizeJSON(given)
	if err != nil {
		return nil, invalidBatch([]Detail{{Field: "parameters", Code: DetailInvalidValue, Message: "parameters are not valid JSON: " + err.Error()}})
	}
	var d details
	values := map[string]any{}
	declared := map[string]bool{}
	for _, p := range t.Parameters {
		declared[p.Name] = true
		v, ok := given[p.Name]
		switch {
		case !ok || v == nil:
			if p.Default != nil {
				values[p.Name] = p.Default
			} else if p.Required {
				d.add("parameters."+p.Name, DetailRequired, "parameter %s is required", p.Name)
			} else {
				values[p.Name] = nil
			}
		default:
			if err := checkParam(p, v); err != nil {
				d.add("parameters."+p.Name, DetailInvalidValue, "parameter %s: %v", p.Name, err)
			}
			values[p.Name] = v
		}
	}
	names := make([]string, 0, len(given))
	for k := range given {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !declared[k] {
			d.add("parameters."+k, DetailUnknownField, "template %s has no parameter %s", t.Name, k)
		}
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	env := e.templateEnv(values)
	b := &Batch{Type: t.Name, Description: t.Description, Options: t.Options}
	for i, op := range t.Operations {
		path := fmt.Sprintf("operations[%d].template", i)
		rendered, keep, err := ct.render(ctx, op.Template, env, path)
		if err != nil {
			d.merge("", err)
			continue
		}
		spec := op
		spec.Template = nil
		payload, _ := rendered.(map[string]any)
		if !keep {
			payload = nil
		}
		if err := applyPayload(&spec, payload); err != nil {
			d.merge(path, err)
			continue
		}
		b.Operations = append(b.Operations, spec)
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return b, nil
}

// render substitutes placeholders in v. keep is false when v is a single
// placeholder that came out null, so its key goes.
func (ct *compiledTemplate) render(ctx context.Context, v any, env map[string]any, path string) (any, bool, error) {
	switch x := v.(type) {
	case string:
		spans, err := placeholders(x)
		if err != nil || len(spans) == 0 {
			return x, true, err
		}
		if len(spans) == 1 && spans[0][0] == 0 && spans[0][1] == len(x) {
			out, err := ct.eval(ctx, x[2:len(x)-1], env, path)
			if err != nil {
				return nil, false, err
			}
			out, err = normalizeJSON(out)
			return out, out != nil, err
		}
		var sb strings.Builder
		last := 0
		for _, sp := range spans {
			sb.WriteString(x[last:sp[0]])
			out, err := ct.eval(ctx, x[sp[0]+2:sp[1]-1], env, path)
			if err != nil {
				return nil, false, err
			}
			if out != nil {
				sb.WriteString(formatValue(out))
			}
			last = sp[1]
		}
		sb.WriteString(x[last:])
		return sb.String(), true, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, keep, err := ct.render(ctx, e, env, path+"."+k)
			if err != nil {
				return nil, false, err
			}
			if keep {
				out[k] = r
			}
		}
		return out, true, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			r, keep, err := ct.render(ctx, e, env, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, false, err
			}
			if keep {
				out = append(out, r)
			}
		}
		return out, true, nil
	}
	return v, true, nil
}

func (ct *compiledTemplate) eval(ctx context.Context, src string, env map[string]any, path string) (any, error) {
	prog, ok := ct.progs[src]
	if !ok {
		return nil, invalidBatch([]Detail{{Field: path, Code: DetailInvalidExpr, Message: "expression ${" + src + "} was not compiled"}})
	}
	out, err := prog.run(ctx, env)
	if err == nil {
		n, ok := measure(out, exprByteBudget-ct.spent)
		if ct.spent += n; !ok {
			err = fmt.Errorf("%w: the template's placeholders render more than %d bytes", ErrExpressionLimit, exprByteBudget)
		}
	}
	if err != nil {
		return nil, invalidBatch([]Detail{{Field: path, Code: DetailInvalidExpr, Message: fmt.Sprintf("${%s} failed: %v", src, err)}})
	}
	return out, nil
}

// formatValue writes a value as text (into interpolated template text and
// CSV cells): a string as it is, a number or boolean as its literal,
// anything else as JSON.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// applyPayload puts a rendered template payload into spec (see [Template]).
func applyPayload(spec *OperationSpec, payload map[string]any) error {
	if payload == nil {
		return nil
	}
	named := false
	for _, k := range payloadKeys {
		if _, ok := payload[k]; ok {
			named = true
		}
	}
	if !named {
		switch spec.Type {
		case OpUpdate:
			payload = map[string]any{"update": payload}
			if spec.Filter == nil && spec.Where == "" {
				payload["where"] = "true"
			}
		case OpCreate:
			payload = map[string]any{"records": []any{payload}}
		}
	}
	// Merge the payload over the static fields through JSON, strictly.
	base, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		return err
	}
	for k, v := range payload {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var out OperationSpec
	if err := decodeStrict(b, &out); err != nil {
		return invalidBatch([]Detail{{Field: jsonErrorField("", err, b, reflect.TypeFor[OperationSpec]()), Code: DetailInvalidValue, Message: jsonErrorMessage(err)}})
	}
	*spec = out
	return nil
}

// templateStore is the store of templates.
func (e *Engine) templateStore() objects[Template, *Template] {
	return objects[Template, *Template]{e: e, bucket: bucketTemplates, kind: templateIDPrefix,
		created: EventTemplateCreated, deleted: EventTemplateDeleted,
		check: func(_ context.Context, t *Template) error { _, err := e.compileTemplate(t); return err }}
}

// CreateTemplate checks t, compiling every placeholder, and stores it as a
// new template owned by the context's principal. A bad template returns an
// INVALID_BATCH *Error with details and stores nothing.
func (e *Engine) CreateTemplate(ctx context.Context, t *Template) (*Template, error) {
	return e.templateStore().create(ctx, t, nil)
}

// Template returns the template with id, or an error matching
// [ErrNotFound].
func (e *Engine) Template(ctx context.Context, id string) (*Template, error) {
	return e.templateStore().get(id)
}

// Templates lists templates, filtered by opts.Owner and paged.
func (e *Engine) Templates(ctx context.Context, opts *ListOptions) (*TemplatePage, error) {
	return e.templateStore().list(opts)
}

// UpdateTemplate replaces template id with t (its name, parameters,
// operations and options), checked as on create. Jobs already submitted
// from it are not affected.
func (e *Engine) UpdateTemplate(ctx context.Context, id string, t *Template) (*Template, error) {
	return e.templateStore().replace(ctx, id, EventTemplateUpdated, t, nil)
}

// DeleteTemplate removes template id, or returns an error matching
// [ErrNotFound].
func (e *Engine) DeleteTemplate(ctx context.Context, id string) error {
	return e.templateStore().delete(ctx, id)
}

// fromTemplate turns a batch that names a template into the batch the
// template renders, with the submitted options (if any) over the
// template's.
func (e *Engine) fromTemplate(ctx context.Context, b *Batch) (*Batch, error) {
	if len(b.Operations) > 0 {
		return nil, invalidBatch([]Detail{{Field: "operations", Code: DetailInvalidValue, Message: "a batch names either a template_id or operations, not both"}})
	}
	if b.TemplateID == "" {
		return nil, invalidBatch([]Detail{{Field: "template_id", Code: DetailRequired, Message: "parameters need a template_id"}})
	}
	t, err := e.Template(ctx, b.TemplateID)
	if err != nil {
		if CodeOf(err) == CodeNotFound {
			return nil, invalidBatch([]Detail{{Field: "template_id", Code: DetailInvalidValue, Message: "no template " + b.TemplateID}})
		}
		return nil, err
	}
	if owner := PrincipalFrom(ctx); owner != "" && t.Owner != "" && t.Owner != owner {
		return nil, invalidBatch([]Detail{{Field: "template_id", Code: DetailInvalidValue, Message: "no template " + b.TemplateID}})
	}
	ct, err := e.compileTemplate(t)
	if err != nil {
		return nil, err
	}
	// All of a template's placeholders together get the time a submission
	// may spend counting records.
	rctx, cancel := countingContext(ctx)
	defer cancel()
	out, err := e.instantiate(rctx, ct, b.Parameters)
	if err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(b.Options, BatchOptions{}) {
		out.Options = b.Options
	}
	if b.Type != "" {
		out.Type = b.Type
	}
	if b.Description != "" {
		out.Description = b.Description
	}
	return out, nil
}

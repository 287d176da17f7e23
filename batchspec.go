package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Batch is what a caller submits: a list of operations and how to run them,
// as in the API document's "Create Batch Job" body. Instead of operations it
// may name a template (TemplateID + Parameters).
type Batch struct {
	Type        string          `json:"type,omitempty"`
	Description string          `json:"description,omitempty"`
	Operations  []OperationSpec `json:"operations,omitempty"`
	Options     BatchOptions    `json:"options,omitzero"`
	TemplateID  string          `json:"template_id,omitempty"`
	Parameters  map[string]any  `json:"parameters,omitempty"`
}

// OperationSpec is one operation of a batch. Type picks the registered
// [Operation]; which other fields apply depends on it (see the package
// documentation's "Operations" section). Custom operations read Params.
type OperationSpec struct {
	Type     string `json:"type"`
	Resource string `json:"resource,omitempty"`
	// Filter selects records by equality on top-level fields.
	Filter map[string]any `json:"filter,omitempty"`
	// Where selects records by an expr boolean expression over `record`,
	// e.g. `record.area > 10 && record.crop in ["rice", "corn"]`.
	Where string `json:"where,omitempty"`
	// Update is merged into each selected record; a null removes the key.
	Update map[string]any `json:"update,omitempty"`
	// Records are the records a create operation makes.
	Records []map[string]any `json:"records,omitempty"`
	// Source is an import's data, or a restore's backup job.
	Source *Source `json:"source,omitempty"`
	// Destination is an export's output format.
	Destination *Destination `json:"destination,omitempty"`
	// Set maps a field to an expr expression over `record` (calculate).
	Set map[string]string `json:"set,omitempty"`
	// Rules maps a rule name to an expr boolean expression (validate).
	Rules map[string]string `json:"rules,omitempty"`
	// Aggregates and GroupBy describe an analyze or generate operation.
	Aggregates map[string]Aggregate `json:"aggregates,omitempty"`
	GroupBy    string               `json:"group_by,omitempty"`
	// Report is a generate operation's output format.
	Report *Destination `json:"report,omitempty"`
	// OlderThan is a cleanup's age limit.
	OlderThan *Duration `json:"older_than,omitempty"`
	// Template is a template operation's payload, with ${...} placeholders.
	Template map[string]any `json:"template,omitempty"`
	// Params is free-form input for custom operations.
	Params map[string]any `json:"params,omitempty"`
}

// Source is where an import reads its records ({"format", "data"}) or which
// backup a restore uses ({"job_id"}).
type Source struct {
	// Format is "json" (Data is an array of objects, or a string holding
	// one), "ndjson" or "csv" (Data is a string).
	Format string `json:"format,omitempty"`
	Data   any    `json:"data,omitempty"`
	JobID  string `json:"job_id,omitempty"`
	// Upload names an upload stored with [Engine.Upload] to import instead
	// of Data: it is read as a stream, a record at a time, so its size is
	// not bounded by memory. Ids given twice are not refused: the later
	// record wins.
	Upload string `json:"upload,omitempty"`
}

// Destination is an output format: "json", "ndjson" or "csv".
type Destination struct {
	Format string `json:"format"`
}

// Aggregate is one aggregate of an analyze or generate operation.
type Aggregate struct {
	// Fn is count, sum, avg, min or max.
	Fn    string `json:"fn"`
	Field string `json:"field,omitempty"`
}

// BatchOptions says how a job runs. The zero value means the defaults given
// on each field.
type BatchOptions struct {
	// Parallel runs items concurrently; false runs one at a time. Default true.
	Parallel *bool `json:"parallel,omitempty"`
	// MaxConcurrent bounds items in flight. 0 means [DefaultMaxConcurrent];
	// at most [MaxMaxConcurrent].
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// Retry says how failed items are tried again.
	Retry RetryOptions `json:"retry,omitzero"`
	// Validation says when items are validated and what a failure does.
	Validation ValidationOptions `json:"validation,omitzero"`
	// ItemTimeout bounds each attempt of an item (TIMEOUT_ERROR when
	// exceeded). 0 means no limit.
	ItemTimeout Duration `json:"item_timeout,omitempty"`
	// Timeout bounds the whole job; it fails when exceeded. 0 means no limit.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxFailureRate, in percent of all items, fails the job once more
	// items than that have failed. nil means no limit.
	MaxFailureRate *float64 `json:"max_failure_rate,omitempty"`
	// UndoRetention is how long after the job finishes the before-images
	// of the built-in records it changes are kept, so that it can be
	// reverted ([Engine.Revert]). "0s" keeps none. nil means the engine's
	// [Options].UndoRetention.
	UndoRetention *Duration `json:"undo_retention,omitempty"`
}

// RetryOptions configures retries of failed items. Validation errors and
// missing records are never retried.
type RetryOptions struct {
	// Attempts is the total number of tries. 0 means 1 (no retry); at most
	// [MaxRetryAttempts].
	Attempts int `json:"attempts,omitempty"`
	// Backoff is immediate, linear (Delay every time), exponential (Delay
	// doubling per try, with full jitter, capped at MaxDelay) or custom (the
	// function registered under Function, or Formula). Default exponential.
	Backoff string `json:"backoff,omitempty"`
	// Delay is the base delay. 0 means [DefaultRetryDelay].
	Delay Duration `json:"delay,omitempty"`
	// MaxDelay caps a single delay. 0 means [DefaultRetryMaxDelay].
	MaxDelay Duration `json:"max_delay,omitempty"`
	// Function names a [BackoffFunc] registered with [Engine.RegisterBackoff].
	// Custom needs Function or Formula.
	Function string `json:"function,omitempty"`
	// Formula is a custom strategy given in the batch: an expr expression
	// over attempt, error_type, error_code, delay and max_delay whose number
	// is the delay in seconds, bounded by MaxDelay ("2 ^ attempt",
	// "error_type == 'timeout' ? 30 : delay * attempt").
	Formula string `json:"formula,omitempty"`
}

// ValidationOptions configures item validation.
type ValidationOptions struct {
	// Mode is strict (every item is validated before any item runs; the
	// default) or lenient (each item is validated just before it runs).
	Mode string `json:"mode,omitempty"`
	// OnError is skip (record the failed item and go on; the default) or
	// abort (the job fails at the first failed item; under strict
	// validation, nothing has run by then).
	OnError string `json:"on_error,omitempty"`
}

// Option defaults and limits.
const (
	DefaultMaxConcurrent = 5
	MaxMaxConcurrent     = 1000
	MaxRetryAttempts     = 100
	DefaultRetryDelay    = time.Second
	DefaultRetryMaxDelay = 5 * time.Minute
)

// Backoff strategies.
const (
	BackoffImmediate   = "immediate"
	BackoffLinear      = "linear"
	BackoffExponential = "exponential"
	BackoffCustom      = "custom"
)

// Validation modes and error policies.
const (
	ModeStrict   = "strict"
	ModeLenient  = "lenient"
	OnErrorSkip  = "skip"
	OnErrorAbort = "abort"
)

// withDefaults returns the options with every default filled in. It
// assumes the options passed check.
func (o BatchOptions) withDefaults() BatchOptions {
	if o.Parallel == nil {
		t := true
		o.Parallel = &t
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if !*o.Parallel {
		o.MaxConcurrent = 1
	}
	if o.Retry.Attempts == 0 {
		o.Retry.Attempts = 1
	}
	if o.Retry.Backoff == "" {
		o.Retry.Backoff = BackoffExponential
	}
	if o.Retry.Delay == 0 {
		o.Retry.Delay = Duration(DefaultRetryDelay)
	}
	if o.Retry.MaxDelay == 0 {
		o.Retry.MaxDelay = Duration(DefaultRetryMaxDelay)
	}
	if o.Validation.Mode == "" {
		o.Validation.Mode = ModeStrict
	}
	if o.Validation.OnError == "" {
		o.Validation.OnError = OnErrorSkip
	}
	return o
}

// check reports every bad option value under "options".
func (o BatchOptions) check(d *details, backoffs func(string) bool) {
	if o.UndoRetention != nil && *o.UndoRetention < 0 {
		d.add("options.undo_retention", DetailInvalidValue, "undo_retention must not be negative; \"0s\" keeps no before-images")
	}
	if o.MaxConcurrent < 0 || o.MaxConcurrent > MaxMaxConcurrent {
		d.add("options.max_concurrent", DetailInvalidValue, "max_concurrent must be between 1 and %d, got %d", MaxMaxConcurrent, o.MaxConcurrent)
	}
	r := o.Retry
	if r.Attempts < 0 || r.Attempts > MaxRetryAttempts {
		d.add("options.retry.attempts", DetailInvalidValue, "attempts must be between 1 and %d, got %d", MaxRetryAttempts, r.Attempts)
	}
	switch r.Backoff {
	case "", BackoffImmediate, BackoffLinear, BackoffExponential:
		if r.Function != "" {
			d.add("options.retry.function", DetailInvalidValue, "function applies only to backoff \"custom\"")
		}
		if r.Formula != "" {
			d.add("options.retry.formula", DetailInvalidValue, "formula applies only to backoff \"custom\"")
		}
	case BackoffCustom:
		switch {
		case r.Function != "" && r.Formula != "":
			d.add("options.retry.formula", DetailInvalidValue, "backoff \"custom\" takes a function or a formula, not both")
		case r.Formula != "":
			if _, err := compileBackoffFormula(r.Formula); err != nil {
				d.add("options.retry.formula", DetailInvalidExpr, "invalid retry formula (a number of seconds over attempt, error_type, error_code, delay, max_delay): %v", exprMessage(err))
			}
		case r.Function == "":
			d.add("options.retry.function", DetailRequired, "backoff \"custom\" needs a formula (\"formula\": \"2 ^ attempt\") or the name of a registered backoff function")
		case !backoffs(r.Function):
			d.add("options.retry.function", DetailInvalidValue, "unknown backoff function: %s", r.Function)
		}
	default:
		d.add("options.retry.backoff", DetailInvalidValue, "unknown backoff: %s (use immediate, linear, exponential or custom)", r.Backoff)
	}
	if r.MaxDelay != 0 && r.Delay > r.MaxDelay {
		d.add("options.retry.delay", DetailInvalidValue, "delay %s is longer than max_delay %s", r.Delay, r.MaxDelay)
	}
	switch o.Validation.Mode {
	case "", ModeStrict, ModeLenient:
	default:
		d.add("options.validation.mode", DetailInvalidValue, "unknown validation mode: %s (use strict or lenient)", o.Validation.Mode)
	}
	switch o.Validation.OnError {
	case "", OnErrorSkip, OnErrorAbort:
	default:
		d.add("options.validation.on_error", DetailInvalidValue, "unknown on_error: %s (use skip or abort)", o.Validation.OnError)
	}
	if o.ItemTimeout < 0 {
		d.add("options.item_timeout", DetailInvalidValue, "item_timeout must not be negative")
	}
	if o.Timeout < 0 {
		d.add("options.timeout", DetailInvalidValue, "timeout must not be negative")
	}
	if f := o.MaxFailureRate; f != nil && (*f < 0 || *f > 100) {
		d.add("options.max_failure_rate", DetailInvalidValue, "max_failure_rate is a percentage between 0 and 100, got %v", *f)
	}
}

// wireBatch is the JSON form DecodeBatch reads in stages, so that every
// problem gets an exact path.
type wireBatch struct {
	Type        string            `json:"type"`
	Description string            `json:"description"`
	Operations  []json.RawMessage `json:"operations"`
	Options     json.RawMessage   `json:"options"`
	TemplateID  string            `json:"template_id"`
	Parameters  map[string]any    `json:"parameters"`
}

// wireOperation is an OperationSpec whose records are read one by one.
type wireOperation struct {
	OperationSpec
	Records []json.RawMessage `json:"records,omitempty"`
}

// DecodeBatch reads a batch object (the value of the request body's
// "batch" field) strictly: unknown fields, wrong types and trailing data are
// INVALID_BATCH errors with one detail per problem, each with a JSON path.
// It checks shape only; [Engine.Submit] checks meaning.
func DecodeBatch(data []byte) (*Batch, error) {
	if err := CheckJSON(data); err != nil {
		return nil, err
	}
	var d details
	var w wireBatch
	if err := decodeStrict(data, &w); err != nil {
		d.add(jsonErrorField("", err, data, reflect.TypeFor[wireBatch]()), DetailInvalidValue, "%s", jsonErrorMessage(err))
		return nil, invalidBatch(d.list)
	}
	b := &Batch{Type: w.Type, Description: w.Description, TemplateID: w.TemplateID, Parameters: w.Parameters}
	if len(w.Options) > 0 && string(w.Options) != "null" {
		if err := decodeStrict(w.Options, &b.Options); err != nil {
			d.add(jsonErrorField("options", err, w.Options, reflect.TypeFor[BatchOptions]()), DetailInvalidValue, "%s", jsonErrorMessage(err))
		}
	}
	for i, raw := range w.Operations {
		path := fmt.Sprintf("operations[%d]", i)
		var op wireOperation
		if err := decodeStrict(raw, &op); err != nil {
			d.add(jsonErrorField(path, err, raw, reflect.TypeFor[wireOperation]()), DetailInvalidValue, "%s", jsonErrorMessage(err))
			b.Operations = append(b.Operations, OperationSpec{})
			continue
		}
		spec := op.OperationSpec
		for j, r := range op.Records {
			var rec map[string]any
			if err := json.Unmarshal(r, &rec); err != nil || rec == nil {
				d.add(fmt.Sprintf("%s.records[%d]", path, j), DetailInvalidValue, "each record must be a JSON object")
				continue
			}
			spec.Records = append(spec.Records, rec)
		}
		b.Operations = append(b.Operations, spec)
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// jsonErrorField gives the JSON path a decoding error of data into a value
// of type typ is about.
func jsonErrorField(prefix string, err error, data []byte, typ reflect.Type) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return joinPath(prefix, strings.ReplaceAll(te.Field, "OperationSpec.", ""))
	}
	if f, ok := unknownField(err); ok {
		var v any
		if json.Unmarshal(data, &v) == nil {
			if path, found := locateUnknown(v, typ, f); found {
				return joinPath(prefix, path)
			}
		}
		return joinPath(prefix, f)
	}
	return prefix
}

// locateUnknown finds where in v (decoded JSON) the object key name appears
// that typ has no field for, and returns its JSON path.
func locateUnknown(v any, typ reflect.Type, name string) (string, bool) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch x := v.(type) {
	case map[string]any:
		switch typ.Kind() {
		case reflect.Struct:
			fields := jsonFields(typ)
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				ft, ok := fields[k]
				if !ok {
					if k == name {
						return k, true
					}
					continue
				}
				if p, found := locateUnknown(x[k], ft, name); found {
					return joinPath(k, p), true
				}
			}
		case reflect.Map:
			for k, e := range x {
				if p, found := locateUnknown(e, typ.Elem(), name); found {
					return joinPath(k, p), true
				}
			}
		}
	case []any:
		if typ.Kind() == reflect.Slice {
			for i, e := range x {
				if p, found := locateUnknown(e, typ.Elem(), name); found {
					return joinPath(fmt.Sprintf("[%d]", i), p), true
				}
			}
		}
	}
	return "", false
}

// jsonFields maps the JSON names of a struct's fields (embedded ones
// flattened) to their types.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			for k, t := range jsonFields(f.Type) {
				if _, ok := out[k]; !ok {
					out[k] = t
				}
			}
		case name == "":
			out[f.Name] = f.Type
		default:
			out[name] = f.Type
		}
	}
	return out
}

// unknownField extracts the name from encoding/json's unknown-field error.
func unknownField(err error) (string, bool) {
	s, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return "", false
	}
	return strings.Trim(s, `"`), true
}

// jsonErrorMessage turns a decoding error into a sentence for people.
func jsonErrorMessage(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("expected %s, got %s", jsonTypeName(te.Type.String()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF):
		return "empty body: expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	if f, ok := unknownField(err); ok {
		return fmt.Sprintf("unknown field %q", f)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "batch."), strings.HasPrefix(goType, "*batch."):
		return "an object"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "a number"
	}
	return goType
}

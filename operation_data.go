package batch

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// This file holds the data operations: create, update, delete, import and
// export. On a built-in [Collection] each record change is made by the plan's
// apply step, in the transaction that stores the item's outcome; on a
// program's [Resource] it goes through the Resource methods (at-least-once).

// checkFields reports every payload field the operation type does not use.
func checkFields(spec *OperationSpec, d *details, allowed ...string) {
	b, err := json.Marshal(spec)
	if err != nil {
		d.add("", DetailInvalidValue, "operation is not valid JSON: %v", err)
		return
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k != "type" && !slices.Contains(allowed, k) {
			d.add(k, DetailUnknownField, "%s does not take %q (it takes %s)", spec.Type, k, strings.Join(allowed, ", "))
		}
	}
}

// resolveResource finds spec.Resource, reporting a missing or unknown one.
// The collection is non-nil when the resource is a built-in collection.
func resolveResource(spec *OperationSpec, env *Env, d *details) (Resource, *Collection) {
	if spec.Resource == "" {
		d.add("resource", DetailRequired, "%s needs a resource", spec.Type)
		return nil, nil
	}
	r, ok := env.e.resource(spec.Resource)
	if !ok {
		d.add("resource", DetailUnknownResource, "Unknown resource: %s", spec.Resource)
		return nil, nil
	}
	c, _ := r.(*Collection)
	return r, c
}

// resolveWritable is resolveResource for operations that change records:
// a read-only resource is reported.
func resolveWritable(spec *OperationSpec, env *Env, d *details) (WritableResource, *Collection) {
	r, c := resolveResource(spec, env, d)
	if r == nil {
		return nil, nil
	}
	w, ok := r.(WritableResource)
	if !ok {
		d.add("resource", DetailInvalidValue, "%s changes records, and resource %s is read-only (it has no Put and Delete)", spec.Type, spec.Resource)
	}
	return w, c
}

// Record validation never runs inside a commit: a collection's Validate
// hook runs in the item's attempt (prepare), and the commit writes the
// record that was validated.

// validatePrepared is the prepare step of a plan that writes the item's
// own record: it validates it, when the collection validates records.
func validatePrepared(coll *Collection) func(ctx context.Context, it *Item) error {
	if coll.validate == nil {
		return nil
	}
	return func(ctx context.Context, it *Item) error { return coll.ValidateRecord(ctx, it.Record) }
}

// prepareChange is the prepare step of a plan that rewrites a stored
// record with compute, when the collection validates records: it computes
// the new record from the one read for the item and validates it.
func prepareChange(coll *Collection, compute func(Record) (Record, error)) func(ctx context.Context, it *Item) error {
	if coll.validate == nil {
		return nil
	}
	return func(ctx context.Context, it *Item) error {
		next, err := compute(it.Record)
		if err != nil {
			return err
		}
		if err := coll.ValidateRecord(ctx, next); err != nil {
			return err
		}
		it.prev, it.Record = it.Record, next
		return nil
	}
}

// applyChange is the commit step of such a plan. A prepared record is
// written only if the stored one is still the one it was computed from;
// without a prepare step the change is computed in the commit.
func applyChange(coll *Collection, compute func(Record) (Record, error)) func(tx Tx, it *Item) error {
	return func(tx Tx, it *Item) error {
		cur, err := coll.get(tx, it.ResourceID)
		if err != nil {
			return err
		}
		if it.prev == nil {
			next, err := compute(cur)
			if err != nil {
				return err
			}
			return coll.put(tx, next)
		}
		if !jsonEqual(map[string]any(cur), map[string]any(it.prev)) {
			return &Error{Code: CodeResource, Message: "Resource changed while its item ran: " + it.ResourceID}
		}
		return coll.put(tx, it.Record)
	}
}

// validates reports whether r checks records, so that a plan over it needs
// a validation step at all.
func validates(r Resource) bool {
	if c, ok := r.(*Collection); ok {
		return c.validate != nil
	}
	_, ok := r.(RecordValidator)
	return ok
}

// validateRecord runs the resource's own record validation, if it has one.
func validateRecord(ctx context.Context, r Resource, rec Record) error {
	if v, ok := r.(RecordValidator); ok {
		if err := v.ValidateRecord(ctx, rec); err != nil {
			if CodeOf(err) == "" {
				return &Error{Code: CodeValidation, Message: err.Error(), Err: err}
			}
			return err
		}
	}
	return nil
}

// checkRecordIDs reports records whose id is present but not a non-empty
// string, and ids given twice. path is the array's path.
func checkRecordIDs(recs []Record, path string, d *details) {
	seen := make(map[string]int, len(recs))
	for i, rec := range recs {
		v, ok := rec["id"]
		if !ok {
			continue
		}
		id, isString := v.(string)
		if !isString || id == "" {
			d.add(fmt.Sprintf("%s[%d].id", path, i), DetailInvalidValue, "id must be a non-empty string")
			continue
		}
		if len(id) > MaxRecordIDLength {
			d.add(fmt.Sprintf("%s[%d].id", path, i), DetailInvalidValue, "id is %d bytes long; record ids are at most %d bytes", len(id), MaxRecordIDLength)
			continue
		}
		if j, dup := seen[id]; dup {
			d.add(fmt.Sprintf("%s[%d].id", path, i), DetailInvalidValue, "id %q is also given at %s[%d]", id, path, j)
		}
		seen[id] = i
	}
}

// listItems makes the Count/Item part of a plan over recs, generating ids
// that are stable across restarts for records without one.
func listItems(p *Plan, recs []Record, env *Env) {
	p.Count = int64(len(recs))
	p.Item = func(i int64) (Item, error) { return listItem(recs[i], env, i), nil }
}

// listItem is the item of record i of a list, with an id stable across
// restarts when the record has none.
func listItem(rec Record, env *Env, i int64) Item {
	id := rec.ID()
	if id == "" {
		id = fmt.Sprintf("%s-%d-%d", env.JobID, env.Operation, i)
		rec = mergePatch(rec, map[string]any{"id": id})
	}
	return Item{ResourceID: id, Record: rec}
}

func planCreate(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "records")
	res, coll := resolveWritable(spec, env, &d)
	if len(spec.Records) == 0 {
		d.add("records", DetailRequired, "create needs a non-empty records array")
	}
	recs, err := normalizeJSON(toRecords(spec.Records))
	if err != nil {
		d.add("records", DetailInvalidValue, "records are not valid JSON: %v", err)
	}
	checkRecordIDs(recs, "records", &d)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	p := &Plan{}
	listItems(p, recs, env)
	apply := func(tx Tx, it *Item) error {
		if tx.Get(coll.bucket, []byte(it.ResourceID)) != nil {
			return Permanent(&Error{Code: CodeResource, Message: "Resource already exists: " + it.ResourceID})
		}
		return coll.put(tx, it.Record)
	}
	run := func(ctx context.Context, it *Item) error {
		cur, err := res.Get(ctx, it.ResourceID)
		switch {
		case err == nil && jsonEqual(map[string]any(cur), map[string]any(it.Record)):
			return nil // written by an earlier attempt
		case err == nil:
			return Permanent(&Error{Code: CodeResource, Message: "Resource already exists: " + it.ResourceID})
		case CodeOf(err) != CodeNotFound:
			return err
		}
		return res.Put(ctx, it.Record)
	}
	return writeGiven(p, res, coll, apply, run), nil
}

// writeGiven finishes p, whose items carry the records they write (create,
// import): each record is validated as given, then written by apply in
// the commit that stores its outcome when the resource is a built-in
// collection, or else by run.
func writeGiven(p *Plan, res WritableResource, coll *Collection, apply func(Tx, *Item) error, run func(context.Context, *Item) error) *Plan {
	if validates(res) {
		p.Validate = func(ctx context.Context, it *Item) error { return validateRecord(ctx, res, it.Record) }
	}
	if coll != nil {
		p.prepare, p.coll, p.apply = validatePrepared(coll), coll, apply
		return p
	}
	p.Run = run
	return p
}

func toRecords(in []map[string]any) []Record {
	out := make([]Record, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func planUpdate(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "filter", "where", "update")
	res, coll := resolveWritable(spec, env, &d)
	q := compileQuery(spec, true, &d)
	if len(spec.Update) == 0 {
		d.add("update", DetailRequired, "update needs a non-empty update object")
	}
	if _, ok := spec.Update["id"]; ok {
		d.add("update.id", DetailInvalidValue, "update cannot change a record's id")
	}
	patch, err := normalizeJSON(spec.Update)
	if err != nil {
		d.add("update", DetailInvalidValue, "update is not valid JSON: %v", err)
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	compute := func(rec Record) (Record, error) { return mergePatch(rec, patch), nil }
	p := &Plan{Resource: res, Query: q, preview: compute}
	if validates(res) {
		p.Validate = func(ctx context.Context, it *Item) error {
			return validateRecord(ctx, res, mergePatch(it.Record, patch))
		}
	}
	if coll != nil {
		p.coll = coll
		p.prepare = prepareChange(coll, compute)
		p.apply = applyChange(coll, compute)
		if p.prepare == nil {
			// Nothing to validate: the commit applies the patch to the
			// stored bytes, without decoding the record.
			if rp, err := newRawPatch(patch); err == nil {
				p.apply = func(tx Tx, it *Item) error { return coll.patch(tx, it.ResourceID, patch, rp) }
			}
		}
		return p, nil
	}
	p.Run = func(ctx context.Context, it *Item) error {
		next := mergePatch(it.Record, patch)
		if err := validateRecord(ctx, res, next); err != nil {
			return err
		}
		return res.Put(ctx, next)
	}
	return p, nil
}

func planDelete(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "filter", "where")
	res, coll := resolveWritable(spec, env, &d)
	q := compileQuery(spec, true, &d)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	p := &Plan{Resource: res, Query: q, preview: func(Record) (Record, error) { return nil, nil }}
	if coll != nil {
		p.coll = coll
		p.apply = func(tx Tx, it *Item) error { return coll.delete(tx, it.ResourceID) }
		return p, nil
	}
	p.Run = func(ctx context.Context, it *Item) error { return res.Delete(ctx, it.ResourceID) }
	return p, nil
}

func planImport(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "source")
	res, coll := resolveWritable(spec, env, &d)
	var recs []Record
	switch src := spec.Source; {
	case src == nil:
		d.add("source", DetailRequired, "import needs a source: {\"format\": \"json\"|\"ndjson\"|\"csv\", \"data\": ...}")
	case src.JobID != "":
		d.add("source.job_id", DetailUnknownField, "import reads data, not a job")
	case src.Upload != "":
		if src.Data != nil {
			d.add("source.data", DetailInvalidValue, "give either data or upload, not both")
		}
		n, err := env.e.countUpload(ctx, src)
		if err != nil {
			d.merge("source", err)
		}
		if err := invalidBatch(d.list); err != nil {
			return nil, err
		}
		return finishImport(streamPlan(n, env, func() (recordStream, error) {
			r, err := env.e.openUpload(env.e.ctx, src.Upload)
			if err != nil {
				return nil, err
			}
			return newRecordStream(src.Format, r)
		}), res, coll), nil
	case streamable(src):
		// Text given inline is read as a stream too: only the ids are
		// held (to refuse one given twice), never the decoded records.
		text := src.Data.(string)
		open := func() (recordStream, error) { return newRecordStream(src.Format, strings.NewReader(text)) }
		n, err := countInline(open)
		if err != nil {
			d.merge("source", err)
		}
		if err := invalidBatch(d.list); err != nil {
			return nil, err
		}
		return finishImport(streamPlan(n, env, open), res, coll), nil
	default:
		var err error
		if recs, err = parseImport(src); err != nil {
			d.merge("source", err)
		}
		checkRecordIDs(recs, "source.data", &d)
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	p := &Plan{}
	listItems(p, recs, env)
	return finishImport(p, res, coll), nil
}

// finishImport adds to p, which lists the records to import, how each is
// validated and written.
func finishImport(p *Plan, res WritableResource, coll *Collection) *Plan {
	apply := func(tx Tx, it *Item) error { return coll.put(tx, it.Record) }
	run := func(ctx context.Context, it *Item) error {
		if err := validateRecord(ctx, res, it.Record); err != nil {
			return err
		}
		return res.Put(ctx, it.Record)
	}
	return writeGiven(p, res, coll, apply, run)
}

// parseImport reads an import source given other than as text (text is
// read as a stream, see streamable) into records. Problems are
// INVALID_BATCH details under "format" and "data".
func parseImport(src *Source) ([]Record, error) {
	var d details
	var recs []Record
	switch src.Format {
	case "json":
		items, ok := src.Data.([]any)
		if !ok {
			d.add("data", DetailInvalidValue, "json data must be an array of objects, or a string holding one")
		}
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				d.add(fmt.Sprintf("data[%d]", i), DetailInvalidValue, "each record must be a JSON object")
				continue
			}
			recs = append(recs, m)
		}
	case "ndjson", "csv":
		d.add("data", DetailInvalidValue, "%s data must be a string", src.Format)
	case "":
		d.add("format", DetailRequired, "source needs a format: json, ndjson or csv")
	default:
		d.add("format", DetailInvalidValue, "unknown format %q: use json, ndjson or csv", src.Format)
	}
	if len(d.list) == 0 && len(recs) == 0 {
		d.add("data", DetailRequired, "source data holds no records")
	}
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	return recs, nil
}

// exportFormats maps an export format to its content type and extension.
var exportFormats = map[string][2]string{
	"json":   {"application/json", "json"},
	"ndjson": {"application/x-ndjson", "ndjson"},
	"csv":    {"text/csv", "csv"},
}

func planExport(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
	var d details
	checkFields(spec, &d, "resource", "filter", "where", "destination")
	res, _ := resolveResource(spec, env, &d)
	q := compileQuery(spec, false, &d)
	format, kind := outputFormat(spec.Destination, exportFormats, "destination.format", "unknown format %q: use json, ndjson or csv", &d)
	if err := invalidBatch(d.list); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("export-%d.%s", env.Operation, kind[1])
	return singleItem(&Plan{Run: func(ctx context.Context, it *Item) error {
		var n int64
		art, err := env.WriteArtifact(ctx, name, kind[0], func(w io.Writer) error {
			var err error
			n, err = writeExport(ctx, w, res, q, format)
			return err
		})
		if err != nil {
			return err
		}
		it.Result = &Result{Summary: map[string]any{"records": n, "format": format}, Artifact: art}
		return nil
	}}, spec.Resource), nil
}

// outputFormat returns the format dest names ("json" when dest is nil) and
// what formats maps it to. A format formats does not hold is reported
// under path, with unknown, a message about the format.
func outputFormat[V any](dest *Destination, formats map[string]V, path, unknown string, d *details) (string, V) {
	format := "json"
	if dest != nil {
		format = dest.Format
	}
	v, ok := formats[format]
	if !ok {
		d.add(path, DetailInvalidValue, unknown, format)
	}
	return format, v
}

// writeExport streams the records q selects to w in format and returns how
// many it wrote.
func writeExport(ctx context.Context, w io.Writer, res Resource, q *Query, format string) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	var err error
	switch format {
	case "csv":
		n, err = writeCSV(ctx, bw, res, q)
	default:
		if format == "json" {
			bw.WriteByte('[')
		}
		write := func(b []byte) error {
			if format == "json" && n > 0 {
				bw.WriteByte(',')
			}
			bw.Write(b)
			if format == "ndjson" {
				bw.WriteByte('\n')
			}
			n++
			return nil
		}
		if c, ok := res.(*Collection); ok {
			// Stored records are compact JSON already: written as they are.
			err = c.scanRaw(ctx, q, write)
		} else {
			err = res.Scan(ctx, q, func(rec Record) error {
				b, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				return write(b)
			})
		}
		if format == "json" {
			bw.WriteByte(']')
		}
	}
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// writeCSV writes a header of every field (id first, the rest sorted) and
// a row per record; objects and arrays are written as JSON.
func writeCSV(ctx context.Context, w io.Writer, res Resource, q *Query) (int64, error) {
	cols := map[string]bool{}
	if err := res.Scan(ctx, q, func(rec Record) error {
		for k := range rec {
			cols[k] = true
		}
		return nil
	}); err != nil {
		return 0, err
	}
	delete(cols, "id")
	header := []string{"id"}
	for k := range cols {
		header = append(header, k)
	}
	slices.Sort(header[1:])
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return 0, err
	}
	var n int64
	row := make([]string, len(header))
	err := res.Scan(ctx, q, func(rec Record) error {
		for i, col := range header {
			row[i] = csvValue(rec[col])
		}
		n++
		return cw.Write(row)
	})
	cw.Flush()
	return n, firstErr(err, cw.Error())
}

// csvValue writes a record value into a CSV cell: empty for null, else as
// [formatValue] writes it.
func csvValue(v any) string {
	if v == nil {
		return ""
	}
	return formatValue(v)
}

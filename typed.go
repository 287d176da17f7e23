package batch

import (
	"context"
	"encoding/json"
	"reflect"
)

// TypedOperation returns an operation whose payload is the operation's
// params decoded into T, in the style of River's typed workers:
//
//	type notifyParams struct {
//		Channel string `json:"channel"`
//	}
//	engine.RegisterOperation("notify", batch.TypedOperation(func(ctx context.Context, it *batch.Item, p notifyParams) error {
//		return send(ctx, p.Channel, it.Record, it.Key())
//	}))
//
// params are decoded strictly: an unknown field or a value of the wrong
// type rejects the batch at submission with an INVALID_BATCH detail under
// "params" ("operations[0].params.channel"), and so does an error from T's
// Validate() error method, if it has one. With a resource (and a filter or
// where) the operation has one item per selected record, handed to run as
// item.Record; without one it has a single item. run is called for each
// item, at least once (use item.Key() to make side effects idempotent).
func TypedOperation[T any](run func(ctx context.Context, item *Item, params T) error) Operation {
	return OperationFunc(func(ctx context.Context, spec *OperationSpec, env *Env) (*Plan, error) {
		var d details
		checkFields(spec, &d, "resource", "filter", "where", "params")
		params := decodeParams[T](spec.Params, &d)
		var res Resource
		var q *Query
		if spec.Resource != "" {
			res, _ = resolveResource(spec, env, &d)
			q = compileQuery(spec, false, &d)
		} else if spec.Filter != nil || spec.Where != "" {
			d.add("resource", DetailRequired, "a filter or where needs a resource")
		}
		if err := invalidBatch(d.list); err != nil {
			return nil, err
		}
		p := &Plan{Run: func(ctx context.Context, it *Item) error { return run(ctx, it, params) }}
		if res != nil {
			p.Resource, p.Query = res, q
			return p, nil
		}
		p.Count = 1
		p.Item = func(int64) (Item, error) { return Item{ResourceID: spec.Type}, nil }
		return p, nil
	})
}

// decodeParams decodes params into a T strictly, reporting problems under
// "params".
func decodeParams[T any](params map[string]any, d *details) (v T) {
	raw := []byte("{}")
	if params != nil {
		var err error
		if raw, err = json.Marshal(params); err != nil {
			d.add("params", DetailInvalidValue, "params are not valid JSON: %v", err)
			return v
		}
	}
	if err := decodeStrict(raw, &v); err != nil {
		code := DetailInvalidValue
		if _, unknown := unknownField(err); unknown {
			code = DetailUnknownField
		}
		d.add(jsonErrorField("params", err, raw, reflect.TypeFor[T]()), code, "%s", jsonErrorMessage(err))
		return v
	}
	if val, isValidator := any(&v).(interface{ Validate() error }); isValidator {
		if err := val.Validate(); err != nil {
			d.add("params", DetailInvalidValue, "%v", err)
			return v
		}
	}
	return v
}

package httpapi

import (
	"context"
	"net/http"
	"net/url"

	"github.com/batchworks/batch"
)

// objects serves one kind of owned object (templates, schedules, webhooks,
// uploads) under one rate-limit class:
//
//	POST   /<kind>s                 create: {"<kind>": {...}} -> 201, Location
//	GET    /<kind>s                 list the caller's, paged
//	GET    /<kind>s/{<kind>_id}     read one
//	PUT    /<kind>s/{<kind>_id}     replace one: {"<kind>": {...}}
//	DELETE /<kind>s/{<kind>_id}     delete one -> 204
//
// Only the routes whose engine call is set are served. Every route on one
// object first checks that the caller owns it: another principal's object
// is NOT_FOUND, exactly as an unknown id.
type objects[T any] struct {
	h *Handler
	// kind names the body field, the path ("/templates") and its value
	// ("template_id"), and the object in errors.
	kind   string
	decode func([]byte) (*T, error)
	// owner returns an object's id and owner.
	owner  func(*T) (id, owner string)
	create func(context.Context, *T) (*T, error)
	get    func(context.Context, string) (*T, error)
	list   func(context.Context, *batch.ListOptions) (*batch.Page[*T], error)
	update func(context.Context, string, *T) (*T, error)
	delete func(context.Context, string) error
}

// routes registers the routes whose engine call is set.
func (o *objects[T]) routes(class *limitClass) {
	all, one := "/"+o.kind+"s", "/"+o.kind+"s/{"+o.kind+"_id}"
	for _, r := range []struct {
		pattern string
		set     bool
		fn      func(w http.ResponseWriter, r *http.Request) error
	}{
		{"POST " + all, o.create != nil, o.createOne},
		{"GET " + all, o.list != nil, o.listAll},
		{"GET " + one, o.get != nil, o.getOne},
		{"PUT " + one, o.update != nil, o.updateOne},
		{"DELETE " + one, o.delete != nil, o.deleteOne},
	} {
		if r.set {
			o.h.route(r.pattern, class, r.fn)
		}
	}
}

// read reads {"<kind>": {...}}.
func (o *objects[T]) read(w http.ResponseWriter, r *http.Request) (*T, error) {
	return decodeWrapped(o.h, w, r, o.kind, o.decode)
}

// owned returns the object named in the path if the caller owns it;
// another principal's object is NOT_FOUND.
func (o *objects[T]) owned(r *http.Request) (*T, string, error) {
	id := r.PathValue(o.kind + "_id")
	v, err := o.get(r.Context(), id)
	if err != nil {
		return nil, "", err
	}
	stored, owner := o.owner(v)
	if owner != principal(r) {
		return nil, "", &batch.Error{Code: batch.CodeNotFound, Message: o.kind + " not found: " + id}
	}
	return v, stored, nil
}

// with answers with the owned object named in the path after fn: fn's
// object with status 200, or 204 when fn returns none.
func (o *objects[T]) with(fn func(w http.ResponseWriter, r *http.Request, v *T, id string) (any, error)) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		v, id, err := o.owned(r)
		if err != nil {
			return err
		}
		out, err := fn(w, r, v, id)
		if err != nil {
			return err
		}
		if out == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		writeData(w, http.StatusOK, out)
		return nil
	}
}

func (o *objects[T]) createOne(w http.ResponseWriter, r *http.Request) error {
	v, err := o.read(w, r)
	if err != nil {
		return err
	}
	if v, err = o.create(r.Context(), v); err != nil {
		return err
	}
	id, _ := o.owner(v)
	w.Header().Set("Location", URL(r, "/"+o.kind+"s/"+url.PathEscape(id)))
	writeData(w, http.StatusCreated, v)
	return nil
}

func (o *objects[T]) listAll(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	page, err := o.list(r.Context(), &batch.ListOptions{Owner: principal(r), Cursor: cursor, Limit: limit})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, page)
	return nil
}

func (o *objects[T]) getOne(w http.ResponseWriter, r *http.Request) error {
	return o.with(func(_ http.ResponseWriter, _ *http.Request, v *T, _ string) (any, error) { return v, nil })(w, r)
}

func (o *objects[T]) updateOne(w http.ResponseWriter, r *http.Request) error {
	return o.with(func(w http.ResponseWriter, r *http.Request, _ *T, id string) (any, error) {
		v, err := o.read(w, r)
		if err != nil {
			return nil, err
		}
		return o.update(r.Context(), id, v)
	})(w, r)
}

func (o *objects[T]) deleteOne(w http.ResponseWriter, r *http.Request) error {
	return o.with(func(_ http.ResponseWriter, r *http.Request, _ *T, id string) (any, error) {
		return nil, o.delete(r.Context(), id)
	})(w, r)
}

// action is a POST on one owned object that answers with the object as
// fn leaves it (pause, resume).
func (o *objects[T]) action(fn func(context.Context, string) (*T, error)) func(w http.ResponseWriter, r *http.Request) error {
	return o.with(func(_ http.ResponseWriter, r *http.Request, _ *T, id string) (any, error) {
		return fn(r.Context(), id)
	})
}

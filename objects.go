package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"time"
)

// This file holds the one store of owned, versioned objects: templates,
// schedules and webhooks are each a bucket of JSON objects keyed by a
// sequence number, named "<kind><n>", owned by the principal that created
// them and stamped with their creation and last update. Create, get, list,
// update and delete are written here once; each kind adds its checks and
// the hooks below.

// Page is one page of a list, in the list's order. It marshals as the API
// document's list object: the items under the list's name ("templates",
// "schedules", "webhooks", "deliveries") and next_cursor.
type Page[T any] struct {
	Items []T
	// NextCursor fetches the next page; "" when this is the last.
	NextCursor string
}

// lister names the JSON field of a list of its type.
type lister interface{ listName() string }

// pageKey is the JSON name of a page's items.
func pageKey[T any]() string {
	var zero T
	if l, ok := any(zero).(lister); ok {
		return l.listName()
	}
	return "items"
}

// MarshalJSON writes {"<items>": [...], "next_cursor": "..."}, the
// cursor omitted on the last page.
func (p Page[T]) MarshalJSON() ([]byte, error) {
	items := p.Items
	if items == nil {
		items = []T{}
	}
	list, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"` + pageKey[T]() + `":`)
	b.Write(list)
	if p.NextCursor != "" {
		b.WriteString(`,"next_cursor":`)
		b.WriteString(strconv.Quote(p.NextCursor))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Page[T]) UnmarshalJSON(data []byte) error {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*p = Page[T]{Items: []T{}}
	if raw, ok := v["next_cursor"]; ok {
		if err := json.Unmarshal(raw, &p.NextCursor); err != nil {
			return err
		}
	}
	if raw, ok := v[pageKey[T]()]; ok {
		return json.Unmarshal(raw, &p.Items)
	}
	return nil
}

// seqPage reads one page of a bucket keyed by sequence numbers, in key
// order: at most limit entries from the key from (nil: the first), each
// made an item by item. The next cursor is the number of the first key
// left.
func seqPage[T any](tx Tx, bucket string, from []byte, limit int, item func(k, v []byte) (T, error)) (*Page[T], error) {
	page := &Page[T]{Items: []T{}}
	var ierr error
	err := tx.Scan(bucket, from, func(k, v []byte) bool {
		if len(page.Items) == limit {
			page.NextCursor = strconv.FormatUint(beUint64(k), 10)
			return false
		}
		it, err := item(k, v)
		if err != nil {
			ierr = err
			return false
		}
		page.Items = append(page.Items, it)
		return true
	})
	if err := firstErr(err, ierr); err != nil {
		return nil, err
	}
	return page, nil
}

// viewPage reads the page opts asks for of a bucket of JSON values keyed
// by sequence numbers. A bad cursor or limit is an INVALID_BATCH *Error.
func viewPage[T any](s Store, bucket string, opts *PageOptions) (*Page[T], error) {
	limit, from, err := pageKeys(opts)
	if err != nil {
		return nil, err
	}
	var page *Page[T]
	err = s.View(func(tx Tx) (err error) {
		page, err = jsonPage[T](tx, bucket, from, limit)
		return err
	})
	return page, err
}

// jsonPage is seqPage of a bucket of JSON values.
func jsonPage[T any](tx Tx, bucket string, from []byte, limit int) (*Page[T], error) {
	return seqPage(tx, bucket, from, limit, func(_, v []byte) (T, error) {
		var it T
		err := json.Unmarshal(v, &it)
		return it, err
	})
}

// TemplatePage is one page of templates, oldest first.
type TemplatePage = Page[*Template]

// SchedulePage is one page of schedules, oldest first.
type SchedulePage = Page[*Schedule]

// WebhookPage is one page of webhooks, oldest first.
type WebhookPage = Page[*Webhook]

// DeliveryPage is one page of a webhook's deliveries, oldest first.
type DeliveryPage = Page[*Delivery]

func (*Template) listName() string  { return "templates" }
func (*Schedule) listName() string  { return "schedules" }
func (*Webhook) listName() string   { return "webhooks" }
func (*Delivery) listName() string  { return "deliveries" }
func (*Job) listName() string       { return "jobs" }
func (ItemError) listName() string  { return "errors" }
func (AuditEvent) listName() string { return "events" }

// objectMeta points at the fields the store keeps for an object.
type objectMeta struct {
	id, owner        *string
	created, updated *time.Time
}

func (t *Template) meta() objectMeta { return objectMeta{&t.ID, &t.Owner, &t.CreatedAt, &t.UpdatedAt} }
func (s *Schedule) meta() objectMeta { return objectMeta{&s.ID, &s.Owner, &s.CreatedAt, &s.UpdatedAt} }
func (w *Webhook) meta() objectMeta  { return objectMeta{&w.ID, &w.Owner, &w.CreatedAt, &w.UpdatedAt} }

// stored is a pointer to an object the store keeps.
type stored[T any] interface {
	*T
	meta() objectMeta
}

// objects is the store of one kind of object.
type objects[T any, P stored[T]] struct {
	e *Engine
	// bucket holds the objects; kind prefixes their ids ("template12")
	// and names them in NOT_FOUND errors.
	bucket, kind string
	// created and deleted are the audit events of a creation and a
	// deletion (an update names its own).
	created, deleted EventType
	// check checks a caller's object before it is created or replaces
	// another (outside any transaction).
	check func(ctx context.Context, v P) error
	// write, if set, checks or completes an object in the transaction
	// that is about to store it (new or changed); remove does the same
	// for one about to be deleted (its dependents go with it). Both run
	// again if the group commit retries the transaction.
	write  func(w *wtx, v P) error
	remove func(w *wtx, id string) error
}

// decodeObject reads an object of the API document (the value of the
// request body's "template", "schedule" or "webhook" field) strictly:
// unknown fields and wrong types are INVALID_BATCH errors with JSON paths.
func decodeObject[T any](data []byte) (*T, error) {
	if err := CheckJSON(data); err != nil {
		return nil, err
	}
	var v T
	if err := decodeStrict(data, &v); err != nil {
		var d details
		d.add(jsonErrorField("", err, data, reflect.TypeFor[T]()), DetailInvalidValue, "%s", jsonErrorMessage(err))
		return nil, invalidBatch(d.list)
	}
	return &v, nil
}

// input is a caller's object as the engine checks it: a copy, normalized
// through JSON, so that nothing the caller holds is changed or shared. A
// nil object is a REQUIRED detail on field.
func input[T any](v *T, field string) (*T, error) {
	if v == nil {
		return nil, invalidBatch([]Detail{{Field: field, Code: DetailRequired, Message: "a " + field + " is required"}})
	}
	nv, err := normalizeJSON(*v)
	if err != nil {
		return nil, invalidBatch([]Detail{{Field: field, Code: DetailInvalidValue, Message: err.Error()}})
	}
	return &nv, nil
}

// seq is the key of object id, or NOT_FOUND.
func (o objects[T, P]) seq(id string) (uint64, error) {
	seq, ok := parseObjectID(id, o.kind)
	if !ok {
		return 0, notFound(o.kind, id)
	}
	return seq, nil
}

// read decodes object id in tx, or returns NOT_FOUND.
func (o objects[T, P]) read(tx Tx, id string) (P, error) {
	seq, err := o.seq(id)
	if err != nil {
		return nil, err
	}
	var v T
	if err := getObject(tx, o.bucket, seq, o.kind, id, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// put stores v under its id, numbering it first when it is new, with
// the event ev of the change.
func (o objects[T, P]) put(w *wtx, v P, ev Event) error {
	if o.write != nil {
		if err := o.write(w, v); err != nil {
			return err
		}
	}
	m := v.meta()
	var seq uint64
	var err error
	if *m.id == "" {
		seq, err = w.NextSequence(o.bucket)
		*m.id = o.kind + strconv.FormatUint(seq, 10)
	} else {
		seq, err = o.seq(*m.id)
	}
	if err != nil {
		return err
	}
	if err := putObject(w.Tx, o.bucket, seq, v); err != nil {
		return err
	}
	ev.ObjectID = *m.id
	return w.event(ev)
}

// checked is a copy of the caller's v (see input), checked.
func (o objects[T, P]) checked(ctx context.Context, v P) (P, error) {
	nv, err := input((*T)(v), o.kind)
	if err != nil {
		return nil, err
	}
	if err := o.check(ctx, nv); err != nil {
		return nil, err
	}
	return nv, nil
}

// create checks v and stores a copy as a new object owned by the
// context's principal; init, if set, completes the copy first. It returns
// the copy with its id and times.
func (o objects[T, P]) create(ctx context.Context, v P, init func(P) error) (P, error) {
	nv, err := o.checked(ctx, v)
	if err != nil {
		return nil, err
	}
	if init != nil {
		if err := init(nv); err != nil {
			return nil, err
		}
	}
	m := nv.meta()
	now := o.e.now().UTC()
	*m.owner, *m.created, *m.updated = PrincipalFrom(ctx), now, now
	err = o.e.update(func(w *wtx) error {
		*m.id = "" // a retried transaction numbers it anew
		return o.put(w, nv, Event{Type: o.created, Principal: *m.owner})
	})
	if err != nil {
		return nil, err
	}
	return nv, nil
}

// get returns object id, or an error matching [ErrNotFound].
func (o objects[T, P]) get(id string) (P, error) {
	var v P
	err := o.e.store.View(func(tx Tx) (err error) {
		v, err = o.read(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// list pages through the objects oldest first, keeping those of
// opts.Owner when it is set.
func (o objects[T, P]) list(opts *ListOptions) (*Page[P], error) {
	page := &Page[P]{Items: []P{}}
	next, err := listObjects(o.e.store, o.bucket, o.kind, opts, func(b []byte) (string, bool, error) {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return "", false, err
		}
		m := P(&v).meta()
		if opts != nil && opts.Owner != "" && *m.owner != opts.Owner {
			return "", false, nil
		}
		page.Items = append(page.Items, &v)
		return *m.id, true, nil
	})
	page.NextCursor = next
	return page, err
}

// update changes object id: change gets the stored object twice, as was
// (which it must not change) and as v (which it edits), and the result is
// written, all in one transaction, so that concurrent updates apply one
// after the other and none is lost. The id, owner and creation time stay;
// the update time becomes now. ev is the audit event.
func (o objects[T, P]) update(ctx context.Context, id string, ev EventType, change func(w *wtx, was, v P) error) (P, error) {
	var out P
	err := o.e.update(func(w *wtx) error {
		v, err := o.read(w.Tx, id)
		if err != nil {
			return err
		}
		stored := *v
		if err := change(w, &stored, v); err != nil {
			return err
		}
		m, was := v.meta(), P(&stored).meta()
		*m.id, *m.owner, *m.created, *m.updated = *was.id, *was.owner, *was.created, o.e.now().UTC()
		out = v
		return o.put(w, v, Event{Type: ev, Principal: PrincipalFrom(ctx)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// replace replaces object id with v, checked as on create: an unknown id
// is NOT_FOUND before v's problems are looked at. keep, if set, copies
// onto the new version what it keeps of the stored one.
func (o objects[T, P]) replace(ctx context.Context, id string, ev EventType, v P, keep func(stored, next P)) (P, error) {
	nv, err := o.checked(ctx, v)
	if err != nil {
		// Only a failed check reads the object outside the update, for
		// its NOT_FOUND to win; a good one is read once, by update.
		if _, gerr := o.get(id); gerr != nil {
			return nil, gerr
		}
		return nil, err
	}
	return o.update(ctx, id, ev, func(_ *wtx, stored, cur P) error {
		*cur = *nv
		if keep != nil {
			keep(stored, cur)
		}
		return nil
	})
}

// delete removes object id (and, through remove, what depends on it), or
// returns an error matching [ErrNotFound].
func (o objects[T, P]) delete(ctx context.Context, id string) error {
	seq, err := o.seq(id)
	if err != nil {
		return err
	}
	return o.e.update(func(w *wtx) error {
		if w.Get(o.bucket, u64key(seq)) == nil {
			return notFound(o.kind, id)
		}
		if o.remove != nil {
			if err := o.remove(w, id); err != nil {
				return err
			}
		}
		if err := w.Delete(o.bucket, u64key(seq)); err != nil {
			return err
		}
		return w.event(Event{Type: o.deleted, Principal: PrincipalFrom(ctx), ObjectID: id})
	})
}

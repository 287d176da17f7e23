package batch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "f1", Record{"id": "f1"}.ID())
	require.Empty(t, Record{"id": 7.0}.ID(), "an id that is not a string")
	require.Empty(t, Record{}.ID())
}

func TestQuery_Match(t *testing.T) {
	t.Parallel()
	rec := Record{"id": "f1", "status": "active", "area": 12.0, "geo": map[string]any{"zone": "n"}, "none": nil}
	for _, tt := range []struct {
		filter map[string]any
		where  string
		want   bool
	}{
		{nil, "", true},
		{map[string]any{"status": "active"}, "", true},
		{map[string]any{"status": "inactive"}, "", false},
		{map[string]any{"area": 12.0}, "", true},
		{map[string]any{"geo": map[string]any{"zone": "n"}}, "", true},
		{map[string]any{"geo": map[string]any{"zone": "s"}}, "", false},
		{map[string]any{"none": nil}, "", true},
		{map[string]any{"missing": nil}, "", false},
		{map[string]any{"status": "active"}, "area >= 12", true},
		{map[string]any{"status": "active"}, "area > 12", false},
		{nil, "geo.zone == 'n'", true},
		{nil, "area / missing.x > 1", false}, // a runtime error is no match
	} {
		q, err := NewQuery(tt.filter, tt.where)
		require.NoError(t, err)
		require.Equal(t, tt.want, q.Match(rec), "%v %q", tt.filter, tt.where)
	}
	var nilQuery *Query
	require.True(t, nilQuery.Match(rec), "a nil query matches everything")

	_, err := NewQuery(nil, "area >")
	require.Equal(t, CodeValidation, CodeOf(err))

	q := &Query{Where: "area > 10"} // built without NewQuery: compiled when used
	require.True(t, q.Match(rec))
	q.Where = "area > 20" // changed after use: the new source counts
	require.False(t, q.Match(rec))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow, err := NewQuery(nil, "len(filter(1..1000, # > 0)) > 0")
	require.NoError(t, err)
	_, err = slow.match(ctx, rec)
	require.Error(t, err, "a cancelled evaluation is an error, not a mismatch")
}

// mergePatch is RFC 7386: null removes, objects merge, the rest replaces.
func TestMergePatch(t *testing.T) {
	t.Parallel()
	rec := Record{"id": "f1", "a": 1.0, "obj": map[string]any{"x": 1.0, "y": 2.0}, "list": []any{1.0}}
	got := mergePatch(rec, map[string]any{"a": nil, "b": "new", "obj": map[string]any{"y": nil, "z": 3.0}, "list": []any{2.0}, "scalar": map[string]any{"k": "v"}})
	require.Equal(t, Record{"id": "f1", "b": "new", "obj": map[string]any{"x": 1.0, "z": 3.0}, "list": []any{2.0}, "scalar": map[string]any{"k": "v"}}, got)
	require.Equal(t, 1.0, rec["a"], "the original is untouched")
	require.Equal(t, map[string]any{"x": 1.0, "y": 2.0}, rec["obj"])
}

func TestCollection_PutGetDeleteCount(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(context.Background())
	require.NoError(t, e.DefineCollection("crops", &CollectionOptions{Validate: func(_ context.Context, rec Record) error {
		if _, ok := rec["name"].(string); !ok {
			return errors.New("a crop needs a name")
		}
		return nil
	}}))
	c, err := e.Collection("crops")
	require.NoError(t, err)
	require.Equal(t, "crops", c.Name())
	ctx := t.Context()

	require.NoError(t, c.PutMany(ctx, []Record{{"id": "c1", "name": "rice", "n": 1}, {"id": "c2", "name": "corn"}, {"id": "c3"}}))
	got, err := c.Get(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, Record{"id": "c1", "name": "rice", "n": 1.0}, got, "stored as JSON")
	n, err := c.Count(ctx, &Query{Filter: map[string]any{"name": "corn"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	var ids []string
	require.NoError(t, c.Scan(ctx, nil, func(r Record) error { ids = append(ids, r.ID()); return nil }))
	require.Equal(t, []string{"c1", "c2", "c3"}, ids)

	require.Equal(t, CodeValidation, CodeOf(c.Put(ctx, Record{"name": "no id"})))
	require.Equal(t, CodeValidation, CodeOf(c.Put(ctx, Record{"id": strings.Repeat("x", MaxRecordIDLength+1)})))
	require.Equal(t, CodeValidation, CodeOf(c.Put(ctx, Record{"id": "bad", "v": func() {}})))
	_, err = c.Get(ctx, "bad")
	require.Equal(t, CodeNotFound, CodeOf(err), "nothing stored for a refused record")

	require.NoError(t, c.ValidateRecord(ctx, Record{"id": "c4", "name": "oat"}))
	require.Equal(t, CodeValidation, CodeOf(c.ValidateRecord(ctx, Record{"id": "c4"})))

	require.NoError(t, c.Delete(ctx, "c2"))
	_, err = c.Get(ctx, "c2")
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, CodeNotFound, CodeOf(c.Delete(ctx, "c2")))
	n, err = c.Count(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
}

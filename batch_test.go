package batch_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestNew_RejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []*batch.Options{
		{MaxRunningJobs: -1},
		{CommitBatchSize: -1},
		{Collections: []string{"bad name"}},
		{Operations: map[string]batch.Operation{"": batch.OperationFunc(nil)}},
		{Backoffs: map[string]batch.BackoffFunc{"nil": nil}},
	} {
		e, err := batch.New(batch.NewMemoryStore(), opts)
		require.Nil(t, e)
		require.Equal(t, batch.CodeValidation, batch.CodeOf(err), "%+v", opts)
	}
}

// Open keeps what was stored across a close and a reopen; Close closes the
// store and may be called again.
func TestOpen_CloseAndReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "batch.db")
	e, err := batch.Open(path, nil)
	require.NoError(t, err)
	fields, err := e.Collection("fields")
	require.NoError(t, err)
	require.NoError(t, fields.Put(t.Context(), batch.Record{"id": "f1"}))
	require.NoError(t, e.Close(context.Background()))
	require.NoError(t, e.Close(context.Background()), "a second Close")
	_, err = fields.Get(t.Context(), "f1")
	require.Error(t, err, "the store is closed with the engine")

	e, err = batch.Open(path, &batch.Options{Bolt: &batch.BoltOptions{Timeout: time.Second}})
	require.NoError(t, err)
	defer e.Close(context.Background())
	fields, err = e.Collection("fields")
	require.NoError(t, err)
	rec, err := fields.Get(t.Context(), "f1")
	require.NoError(t, err)
	require.Equal(t, "f1", rec.ID())
}

func TestEngine_Registration(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", &batch.Options{Collections: []string{"fields", "crops"}})
	e := tb.e
	for _, err := range []error{
		e.RegisterOperation("", batch.OperationFunc(nil)),
		e.RegisterOperation("x", nil),
		e.RegisterResource("", tb.fields),
		e.RegisterResource("x", nil),
		e.RegisterBackoff("", func(int, error) time.Duration { return 0 }),
		e.RegisterBackoff("x", nil),
		e.DefineCollection("", nil),
		e.DefineCollection("a/b", nil),
		e.DefineCollection(strings.Repeat("c", 65), nil),
	} {
		require.Equal(t, batch.CodeValidation, batch.CodeOf(err))
	}
	require.NoError(t, e.DefineCollection(strings.Repeat("c", 64), nil))
	_, err := e.Collection("crops")
	require.NoError(t, err, "named in Options.Collections")
	_, err = e.Collection("nothing")
	require.ErrorIs(t, err, batch.ErrNotFound)

	// A resource replaces the collection of its name, and a collection
	// defined again replaces the resource.
	require.NoError(t, e.RegisterResource("crops", tb.fields))
	_, err = e.Collection("crops")
	require.ErrorIs(t, err, batch.ErrNotFound)
	require.NoError(t, e.DefineCollection("crops", nil))
	_, err = e.Collection("crops")
	require.NoError(t, err)
}

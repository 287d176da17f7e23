package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/internal/pgtest"
	"github.com/batchworks/batch/pgstore"
)

// TestNotify checks that Notify on one store wakes another store of the
// same schema, and neither the store that sent it nor a store of another
// schema on the same database.
func TestNotify(t *testing.T) {
	t.Parallel()
	a := open(t)
	same, err := pgstore.Open(t.Context(), pgtest.URL(t), &pgstore.Options{Schema: a.Schema(), MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { same.Close() })
	other := open(t)

	require.NoError(t, a.Notify(t.Context()))
	select {
	case <-same.Notifications():
	case <-time.After(5 * time.Second):
		t.Fatal("a store of the same schema was not notified")
	}
	// The store of the same schema heard it: had the others, they have it
	// by now too.
	select {
	case <-other.Notifications():
		t.Fatal("a store of another schema was notified")
	case <-a.Notifications():
		t.Fatal("the store that notified was notified")
	case <-time.After(200 * time.Millisecond):
	}

	// And the other way round.
	require.NoError(t, same.Notify(t.Context()))
	select {
	case <-a.Notifications():
	case <-time.After(5 * time.Second):
		t.Fatal("the first store was not notified")
	}
}

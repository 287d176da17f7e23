package batch

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJobs_ListReadsABoundedNumber: a principal with few jobs among many
// pages through them by the owner index, which reads only its jobs (see
// TestJobs_FilteredPageReadsOnlyItsJobs), and following the cursor finds
// all of its jobs exactly once.
func TestJobs_ListReadsABoundedNumber(t *testing.T) {
	e, err := New(NewMemoryStore(), &Options{Operations: map[string]Operation{"nop": OperationFunc(func(_ context.Context, _ *OperationSpec, _ *Env) (*Plan, error) {
		return &Plan{Count: 0, Item: func(int64) (Item, error) { return Item{}, nil }, Run: func(context.Context, *Item) error { return nil }}, nil
	})}})
	require.NoError(t, err)
	defer e.Close(t.Context())
	var bobs []string
	for i := range 23 {
		owner := "alice"
		if i%10 == 0 {
			owner = "bob"
		}
		j, err := e.Submit(t.Context(), &Batch{Operations: []OperationSpec{{Type: "nop"}}}, &SubmitOptions{Owner: owner})
		require.NoError(t, err)
		if owner == "bob" {
			bobs = append([]string{j.ID}, bobs...)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		page, err := e.Jobs(t.Context(), &ListOptions{Owner: "bob", Cursor: cursor, Limit: 2})
		require.NoError(t, err)
		pages++
		for _, j := range page.Items {
			got = append(got, j.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	require.Equal(t, bobs, got)
	require.Equal(t, 2, pages, "full pages")
}

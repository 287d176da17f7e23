package batch

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCountEach(t *testing.T) {
	t.Parallel()
	even := func(i int) (bool, error) { return i%2 == 0, nil }
	n, err := countEach(t.Context(), []int{1, 2, 3, 4, 6}, even)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)

	boom := errors.New("boom")
	var seen []int
	n, err = countEach(t.Context(), []int{2, 4, 5, 6}, func(i int) (bool, error) {
		seen = append(seen, i)
		if i == 5 {
			return true, boom
		}
		return true, nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(2), n, "a failed drop is not counted")
	require.Equal(t, []int{2, 4, 5}, seen)

	ctx, cancel := context.WithCancel(t.Context())
	n, err = countEach(ctx, []int{2, 4}, func(i int) (bool, error) { cancel(); return true, nil })
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, int64(1), n, "it stops once ctx ends")
}

package otelbatch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDurationBudget: a cell records every duration up to its share of the
// budget in a window, then none until the window has passed, and reads the
// clock only every 64th attempt past the budget.
func TestDurationBudget(t *testing.T) {
	t.Parallel()
	var c durationBudgetCell
	epoch := time.Now()
	share := durationBudget / counterShards
	taken := 0
	for range 10 * share {
		if c.take(epoch) {
			taken++
		}
	}
	require.Equal(t, share, taken, "the share, then nothing within the window")

	// A window later (the epoch moved back), recording resumes within 64
	// attempts.
	later := epoch.Add(-2 * durationWindow)
	n := 0
	for !c.take(later) {
		n++
		require.Less(t, n, 64)
	}
	taken = 1
	for range 10 * share {
		if c.take(later) {
			taken++
		}
	}
	require.Equal(t, share, taken, "a new window, a new share")
}

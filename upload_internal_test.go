package batch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A stream cursor hands out records out of order within its ring, and
// starts the stream again for an index it left behind.
func TestStreamCursor_OutOfOrder(t *testing.T) {
	t.Parallel()
	var src strings.Builder
	for i := range 3 * streamRing {
		fmt.Fprintf(&src, "{\"i\":%d}\n", i)
	}
	opens := 0
	c := &streamCursor{open: func() (recordStream, error) {
		opens++
		return newRecordStream("ndjson", strings.NewReader(src.String()))
	}}
	for _, i := range []int64{0, 5, 3, 2 * streamRing, streamRing + 1, 3*streamRing - 1, 1, 7} {
		rec, err := c.at(i)
		require.NoError(t, err)
		require.Equal(t, float64(i), rec["i"])
	}
	require.Equal(t, 2, opens, "started again once, for index 1")
	_, err := c.at(3 * streamRing)
	require.ErrorContains(t, err, "ends before")
}

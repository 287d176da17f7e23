package batch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestItemRecord_RoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []itemRecord{
		{},
		{State: itemSucceeded, Op: 3, Attempts: 1, Duration: 1500 * time.Microsecond, ResourceID: "field456"},
		{State: itemFailed, Op: 1 << 20, Attempts: 100, Duration: time.Hour, ResourceID: "ü/ñ", Code: CodeValidation, Message: "Invalid irrigation duration"},
	} {
		got, err := decodeItem(appendItem(nil, &r))
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 5, 'a'}} {
		_, err := decodeItem(bad)
		require.ErrorIs(t, err, errBadItem)
	}
}

func TestParseJobID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]uint64{"batch1": 1, "batch12345": 12345} {
		seq, ok := parseJobID(id)
		require.True(t, ok, id)
		require.Equal(t, want, seq)
		require.Equal(t, id, formatJobID(seq))
	}
	for _, id := range []string{"", "batch", "batch0", "batch01", "batch-1", "batch1a", "job1", "batch99999999999999999999999"} {
		_, ok := parseJobID(id)
		require.False(t, ok, id)
	}
}

func TestCutStr(t *testing.T) {
	t.Parallel()
	b := appendStr(appendStr(nil, "ü/ñ"), "")
	b = append(b, 'x')
	s, rest, ok := cutStr(b)
	require.True(t, ok)
	require.Equal(t, "ü/ñ", s)
	s, rest, ok = cutStr(rest)
	require.True(t, ok)
	require.Equal(t, "", s)
	require.Equal(t, []byte("x"), rest)
	for _, bad := range [][]byte{nil, {0x80}, {3, 'a', 'b'}} {
		_, rest, ok := cutStr(bad)
		require.False(t, ok, "%q", bad)
		require.Equal(t, bad, rest)
	}
}

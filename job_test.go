package batch

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                                  "0s",
		350 * time.Microsecond:             "350us",
		350 * time.Millisecond:             "350ms",
		1200 * time.Millisecond:            "1.2s",
		1240 * time.Millisecond:            "1.2s",
		20 * time.Minute:                   "20m",
		30*time.Minute + 10*time.Second:    "30m10s",
		time.Hour:                          "1h",
		time.Hour + 5*time.Minute:          "1h5m",
		26*time.Hour + 30*time.Millisecond: "26h",
	} {
		require.Equal(t, want, formatDuration(d), d.String())
	}
}

func TestDuration_JSON(t *testing.T) {
	t.Parallel()
	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`"1h30m"`), &d))
	require.Equal(t, Duration(90*time.Minute), d)
	b, err := json.Marshal(d)
	require.NoError(t, err)
	require.JSONEq(t, `"1h30m"`, string(b))
	for _, bad := range []string{`30`, `"soon"`, `null`} {
		var d Duration
		if bad == `null` {
			require.NoError(t, json.Unmarshal([]byte(bad), &d))
			continue
		}
		require.Error(t, json.Unmarshal([]byte(bad), &d), bad)
	}
}

func TestProgressFigures(t *testing.T) {
	t.Parallel()
	require.Equal(t, 40, percentage(405, 1000))
	require.Equal(t, 0, percentage(0, 0))
	require.Equal(t, 100, percentage(7, 7))
	require.Equal(t, 98.8, successRate(400, 5))
	require.Equal(t, 0.0, successRate(0, 0))
	require.Equal(t, 100.0, successRate(3, 0))
}

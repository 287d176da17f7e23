package batch

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomJSON makes a random decoded JSON value, objects nested up to depth.
func randomJSON(rng *rand.Rand, depth int) any {
	switch rng.IntN(9) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return float64(rng.IntN(7)) - 3
	case 3:
		return 0.5
	case 4:
		return []string{"a", "b", "<&>", "é", "q\"uote", "line\nbreak", ""}[rng.IntN(7)]
	case 5:
		return []any{1.0, "x", nil}
	default:
		if depth == 0 {
			return "leaf"
		}
		m := map[string]any{}
		for range rng.IntN(4) {
			m[[]string{"a", "b", "c", "ü", "<k>"}[rng.IntN(5)]] = randomJSON(rng, depth-1)
		}
		return m
	}
}

func randomObject(rng *rand.Rand, depth int) map[string]any {
	for {
		if m, ok := randomJSON(rng, depth).(map[string]any); ok {
			return m
		}
	}
}

// TestRawPatch_MatchesMergePatch applies random merge patches to random
// records both ways: decoded (mergePatch) and on the stored bytes.
func TestRawPatch_MatchesMergePatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	for range 3000 {
		rec := randomObject(rng, 3)
		patch := randomObject(rng, 3)
		raw, err := json.Marshal(rec)
		require.NoError(t, err)
		if rng.IntN(4) == 0 { // stored with spaces, as another writer might
			raw, err = json.MarshalIndent(rec, " ", "  ")
			require.NoError(t, err)
		}
		rp, err := newRawPatch(patch)
		require.NoError(t, err)
		got, err := rp.apply(nil, raw)
		require.NoError(t, err, "%s", raw)
		var decoded map[string]any
		require.NoError(t, json.Unmarshal(got, &decoded), "%s", got)
		want := map[string]any(mergePatch(rec, patch))
		require.Equal(t, want, decoded, "record %s patch %v", raw, patch)
	}
}

// TestRawMatches_AgreesWithDecoding compares raw field matching and
// canonical values with decoding.
func TestRawMatches_AgreesWithDecoding(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 8))
	for range 3000 {
		a, b := randomJSON(rng, 2), randomJSON(rng, 2)
		ra, err := json.Marshal(a)
		require.NoError(t, err)
		cb, err := canonicalValue(b)
		require.NoError(t, err)
		require.Equal(t, jsonEqual(a, b), rawMatches(ra, b, cb), "%s vs %s", ra, cb)
		ca, err := canonicalRaw(ra)
		require.NoError(t, err)
		require.Equal(t, jsonEqual(a, b), string(ca) == string(cb), "%s vs %s", ca, cb)
	}
	obj := []byte(` { "a" : 1 , "b\u0022": {"x": [1, "}"]}, "c": "d", "a": 2 } `)
	vals := make([][]byte, 3)
	require.NoError(t, rawFieldValues(obj, []string{"a", `b"`, "z"}, vals))
	require.Equal(t, "2", string(vals[0]), "a later duplicate wins")
	require.Equal(t, `{"x": [1, "}"]}`, string(vals[1]))
	require.Nil(t, vals[2])
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":}`, `{"a":1`, `{"a":"x}`} {
		require.Error(t, rawFieldValues([]byte(bad), []string{"a"}, vals), bad)
	}
}

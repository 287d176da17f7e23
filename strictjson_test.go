package batch_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestCheckJSON(t *testing.T) {
	for _, tc := range []struct {
		in, field, says string
	}{
		{`{"a": 1, "b": [1, 2, {"c": true}], "d": "x\"y"}`, "", ""},
		{`{"a": 1, "\u0061": 2}`, "a", "duplicate key"},
		{`{"a": {"b": [0, {"k": 1, "k": 2}]}}`, "a.b[1].k", "duplicate key"},
		{`{"n": -1e309}`, "n", "out of range"},
		{`{"n": 1e-400}`, "", ""},
		{`[` + strings.Repeat(`{"a": 1},`, 40) + `{"x": 1e999}]`, "[40].x", "out of range"},
		{`{"a": 1,`, "", ""}, // malformed: left to the decoder
		{strings.Repeat(`[`, 65) + strings.Repeat(`]`, 65), "", "nest deeper"},
	} {
		err := batch.CheckJSON([]byte(tc.in))
		if tc.says == "" {
			assert.NoError(t, err, tc.in)
			continue
		}
		var be *batch.Error
		require.ErrorAs(t, err, &be, tc.in)
		assert.Equal(t, batch.CodeInvalidBatch, be.Code)
		if tc.field != "" {
			assert.Equal(t, tc.field, be.Details[0].Field, tc.in)
		}
		assert.Contains(t, be.Details[0].Message, tc.says)
	}
	_, err := batch.DecodeBatch([]byte(`{"operations": [{"type": "create", "type": "delete"}]}`))
	require.ErrorContains(t, err, "duplicate key")
}

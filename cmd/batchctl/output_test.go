package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestWriteJSON(t *testing.T) {
	var b strings.Builder
	require.NoError(t, writeJSON(&b, json.RawMessage(`{"a":[1,2]}`)))
	require.Equal(t, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n", b.String())
	b.Reset()
	require.NoError(t, writeJSON(&b, nil))
	require.Equal(t, "null\n", b.String())
	require.Error(t, writeJSON(&b, json.RawMessage(`{`)))
}

func TestCellText(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("JST", 9*3600))
	var zero *time.Time
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "-"}, {"", "-"}, {"x", "x"}, {time.Time{}, "-"}, {zero, "-"},
		{at, "2026-01-01T18:04:05Z"}, {&at, "2026-01-01T18:04:05Z"},
		{batch.StateRunning, "running"}, {json.RawMessage(`{"a":1}`), `{"a":1}`}, {42, "42"},
	} {
		require.Equal(t, tc.want, cellText(tc.v), "%#v", tc.v)
	}
	require.Equal(t, "a b c", oneLine("a\n  b\tc"))
	long := oneLine(strings.Repeat("é", 200))
	require.Equal(t, 120, len([]rune(long)))
	require.True(t, strings.HasSuffix(long, "..."))
}

func TestTableWriter(t *testing.T) {
	var b strings.Builder
	tw := newTable(&b)
	tw.kv("Name", "nightly")
	tw.kv("Empty", "")
	tw.kv("Nil", nil)
	tw.kv("Longer key", 3)
	tw.blank()
	rows(tw, []json.RawMessage{[]byte(`{"id":"a","n":1}`), []byte(`"not an object"`), []byte(`{"id":"bb","n":22}`)}, []any{"ID", "N"},
		func(x *struct {
			ID string `json:"id"`
			N  int    `json:"n"`
		}) []any {
			return []any{x.ID, x.N}
		})
	require.NoError(t, tw.flush())
	require.Equal(t, "Name:        nightly\nLonger key:  3\n\nID  N\na   1\nbb  22\n", b.String(),
		"empty values are left out; a row that does not decode is skipped")
}

func TestPrint_TableOrJSON(t *testing.T) {
	var b strings.Builder
	a := &app{stdout: &b, output: outputJSON}
	require.NoError(t, a.print(json.RawMessage(`{"x":1}`), func(t *tableWriter) { t.row("never") }))
	require.Equal(t, "{\n  \"x\": 1\n}\n", b.String())
	b.Reset()
	a.output = outputTable
	require.NoError(t, a.print(json.RawMessage(`{"x":1}`), func(t *tableWriter) { t.row("X", 1) }))
	require.Equal(t, "X  1\n", b.String())
}

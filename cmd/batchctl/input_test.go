package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestSubmit_YAMLFileAndBareBatch(t *testing.T) {
	tb := setup(t, nil)
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "job.yaml")
	require.NoError(t, os.WriteFile(yamlFile, []byte(`# the document's request as YAML, without the wrapper
type: field_update
operations:
  - type: update
    resource: fields
    filter: {status: inactive}
    update:
      irrigation_schedule: {frequency: weekly, start_time: "06:00", since: 2025-01-19}
`), 0o600))

	r := tb.cli(t, "submit", yamlFile, "--wait", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.EqualValues(t, 20, job.Progress.Completed)

	rec, err := tb.fields.Get(t.Context(), "field0003")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"frequency": "weekly", "start_time": "06:00", "since": "2025-01-19"}, rec["irrigation_schedule"],
		"an unquoted YAML date stays the text it was written as")
}

func TestToJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{name: "JSON is compacted", in: "{\n  \"a\": [1, 2]\n}\n", want: `{"a":[1,2]}`},
		{name: "YAML", in: "a: 1\nb: [x, true]\nc: {d: null}\n", want: `{"a":1,"b":["x",true],"c":{"d":null}}`},
		{name: "YAML dates stay text", in: "day: 2025-01-19\nat: 2025-01-19T06:00:00Z\n", want: `{"at":"2025-01-19T06:00:00Z","day":"2025-01-19"}`},
		{name: "nested non-string key", in: "a:\n  1: x\n", err: "a: YAML key 1 is not a string"},
		{name: "empty", in: " \n", err: "the input is empty"},
		{name: "two documents", in: "a: 1\n---\nb: 2\n", err: "the input holds more than one YAML document"},
		{name: "broken JSON says JSON", in: `{"a": [}`, err: "not valid JSON: "},
		{name: "neither", in: "a: [", err: "not valid JSON or YAML: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toJSON([]byte(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got))
		})
	}
}

func TestUnwrapObject(t *testing.T) {
	require.JSONEq(t, `{"type":"x"}`, string(unwrapObject([]byte(`{"batch":{"type":"x"}}`), "batch")))
	require.JSONEq(t, `{"type":"x"}`, string(unwrapObject([]byte(`{"type":"x"}`), "batch")), "a bare object stays")
	require.JSONEq(t, `{"batch":{},"options":{}}`, string(unwrapObject([]byte(`{"batch":{},"options":{}}`), "batch")), "not a wrapper: more keys")
}

func TestReadInput_Mistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat(" ", maxInput+1)), 0o600))
	env := map[string]string{envServer: "http://127.0.0.1:1"} // never reached
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"submit", filepath.Join(dir, "missing.yaml")}, "", "no such file or directory"},
		{[]string{"submit", big}, "", "is larger than 33554432 bytes"},
		{[]string{"submit", "-"}, "", "stdin: the input is empty"},
		{[]string{"schedule", "create", "-"}, "- [", "stdin: not valid JSON or YAML"},
	} {
		r := runCLI(t, runOptions{stdin: tc.stdin}, env, tc.args...)
		require.Equal(t, exitInvalid, r.code, "%v: %s", tc.args, r.stderr)
		require.Contains(t, r.stderr, tc.want)
	}
}

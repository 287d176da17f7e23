package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// docTemplate is the API document's template, as YAML.
const docTemplate = `template:
  name: bulk_field_update
  description: Update multiple field properties
  parameters:
    - {name: status, type: string, required: true, enum: [active, inactive]}
    - {name: crop_type, type: string, required: false}
    - {name: area_min, type: integer, required: false, default: 0}
  operations:
    - type: update
      resource: fields
      filter: {status: active}
      template:
        status: "${status}"
        crop_type: "${crop_type}"
`

// docSchedule is the API document's schedule, as the request body.
const docSchedule = `{"schedule": {"name": "Daily Field Updates", "description": "Update field status based on sensor data",
	"batch": {"operations": [{"type": "update", "resource": "fields", "filter": {"status": "active"}, "update": {"checked": true}}]},
	"timing": {"frequency": "daily", "time": "00:00", "timezone": "Asia/Tokyo"}}}`

// TestObjects_CreateListGetUpdateDelete runs the commands every kind of
// stored object shares on one object of each kind, created from a file that
// holds the API's request body or the bare object, as JSON or YAML.
func TestObjects_CreateListGetUpdateDelete(t *testing.T) {
	tb := setup(t, nil)
	for _, tc := range []struct {
		kind            *objectKind
		file, update    string
		field, newValue string // what the update changes
	}{
		{kind: templateKind, file: docTemplate, field: "description", newValue: "Update statuses",
			update: strings.Replace(docTemplate, "Update multiple field properties", "Update statuses", 1)},
		{kind: scheduleKind, file: docSchedule, field: "description", newValue: "Check fields",
			update: strings.Replace(docSchedule, "Update field status based on sensor data", "Check fields", 1)},
		{kind: webhookKind, file: `{"url": "` + tb.srv.URL + `/hook", "events": ["job_failed"]}`, field: "description", newValue: "alerts",
			update: `url: ` + tb.srv.URL + "/hook\nevents: [job_failed]\ndescription: alerts\n"},
	} {
		t.Run(tc.kind.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tc.kind.name+".txt")
			require.NoError(t, os.WriteFile(file, []byte(tc.file), 0o600))
			r := tb.cli(t, tc.kind.name, "create", file)
			require.Equal(t, 0, r.code, r.stderr)
			id, _ := decode[map[string]any](t, r.stdout)["id"].(string)
			require.NotEmpty(t, id)

			r = tb.cli(t, tc.kind.name, "list")
			require.Equal(t, 0, r.code, r.stderr)
			page := decode[map[string][]map[string]any](t, r.stdout)
			require.Len(t, page[tc.kind.plural], 1)
			require.Equal(t, id, page[tc.kind.plural][0]["id"])
			r = tb.cliWith(t, runOptions{ttyOut: true}, tc.kind.name, "list")
			require.Regexp(t, `(?m)\AID\s+.*\n`+id+`\s`, r.stdout, "a header, then a row per object")

			r = tb.cli(t, tc.kind.name, "get", id)
			require.Equal(t, 0, r.code, r.stderr)
			require.Equal(t, id, decode[map[string]any](t, r.stdout)["id"])
			title := strings.ToUpper(tc.kind.name[:1]) + tc.kind.name[1:]
			r = tb.cliWith(t, runOptions{ttyOut: true}, tc.kind.name, "get", id)
			require.Regexp(t, `(?m)^`+title+`:\s+`+id+`$`, r.stdout)

			r = tb.cliWith(t, runOptions{stdin: tc.update}, tc.kind.name, "update", id, "-")
			require.Equal(t, 0, r.code, r.stderr)
			require.Equal(t, tc.newValue, decode[map[string]any](t, r.stdout)[tc.field])
			r = tb.cli(t, tc.kind.name, "get", id)
			require.Equal(t, tc.newValue, decode[map[string]any](t, r.stdout)[tc.field], "the update is stored")

			r = tb.cliWith(t, runOptions{stdin: `{"` + tc.kind.name + `": {"name": 7}}`}, tc.kind.name, "update", id, "-")
			require.Equal(t, exitInvalid, r.code, "the API refuses a bad object: %s", r.stderr)

			r = tb.cliWith(t, runOptions{ttyOut: true}, tc.kind.name, "delete", id)
			require.Equal(t, 0, r.code, r.stderr)
			require.Equal(t, "deleted "+tc.kind.name+" "+id+"\n", r.stdout)
			r = tb.cli(t, tc.kind.name, "get", id)
			require.Equal(t, exitNotFound, r.code)
			r = tb.cli(t, tc.kind.name, "delete", id)
			require.Equal(t, exitNotFound, r.code)
			require.Regexp(t, regexp.QuoteMeta("NOT_FOUND, HTTP 404"), r.stderr)
		})
	}
}

func TestObjects_DeletePrintsJSONWhenPiped(t *testing.T) {
	tb := setup(t, nil)
	id := runOK[batch.Schedule](t, tb, docSchedule, "schedule", "create", "-").ID
	require.Equal(t, map[string]any{"deleted": id}, runOK[map[string]any](t, tb, "", "schedule", "delete", id))
}

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestTemplate_TablesAndRunByName(t *testing.T) {
	tb := setup(t, nil)
	file := filepath.Join(t.TempDir(), "template.yaml")
	require.NoError(t, os.WriteFile(file, []byte(docTemplate), 0o600))

	r := tb.cli(t, "template", "create", file)
	require.Equal(t, 0, r.code, r.stderr)
	tmpl := decode[batch.Template](t, r.stdout)
	require.Equal(t, "bulk_field_update", tmpl.Name)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "template", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^`+tmpl.ID+`\s+bulk_field_update\s+status\*,crop_type,area_min\s+1\s+`, r.stdout)

	r = tb.cliWith(t, runOptions{ttyOut: true}, "template", "get", tmpl.ID)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^status\s+string\s+true\s+-\s+\["active","inactive"\]`, r.stdout)
	require.Regexp(t, `(?m)^area_min\s+integer\s+false\s+0\s+-`, r.stdout)
	require.Regexp(t, `(?m)^Operations:\s+update fields$`, r.stdout)

	// Run by name, with typed parameters, and follow the job.
	r = tb.cli(t, "template", "run", "bulk_field_update", "--param", "status=inactive", "-p", "crop_type=rice", "--param", "area_min=3", "--wait")
	require.Equal(t, 0, r.code, r.stderr)
	job := decode[batch.Job](t, r.stdout)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, tmpl.ID, job.TemplateID)
	require.EqualValues(t, 40, job.Progress.Completed, "every active field")
	rec, err := tb.fields.Get(t.Context(), "field0001")
	require.NoError(t, err)
	require.Equal(t, "inactive", rec["status"])
	require.Equal(t, "rice", rec["crop_type"])

	// A value the template refuses is the API's 400.
	r = tb.cli(t, "template", "run", tmpl.ID, "--param", "status=dormant")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, "INVALID_BATCH")
	require.Contains(t, r.stderr, "status")
	// A value that does not fit the declared type never leaves.
	r = tb.cli(t, "template", "run", tmpl.ID, "--param", "status=active", "--param", "area_min=many")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, `--param area_min: "many" is not an integer`)

	// The same idempotency key submits once.
	first := runOK[batch.Job](t, tb, "", "template", "run", tmpl.ID, "-p", "status=active", "--idempotency-key", "t-1")
	second := runOK[batch.Job](t, tb, "", "template", "run", tmpl.ID, "-p", "status=active", "--idempotency-key", "t-1")
	require.Equal(t, first.ID, second.ID)
}

func TestTemplate_RunByAnAmbiguousNameAsksForTheID(t *testing.T) {
	tb := setup(t, nil)
	var ids []string
	for range 2 {
		ids = append(ids, runOK[batch.Template](t, tb, docTemplate, "template", "create", "-").ID)
	}
	r := tb.cli(t, "template", "run", "bulk_field_update", "-p", "status=active")
	require.Equal(t, exitInvalid, r.code)
	require.Contains(t, r.stderr, `2 templates are named "bulk_field_update" (`+ids[0]+", "+ids[1]+`); give its id`)
	require.Zero(t, tb.requested("POST "+"/api/v1/batch/jobs"), "nothing was submitted")
}

func TestTemplateParams(t *testing.T) {
	pairs, err := splitParams([]string{"n=3", "f=1.5", "b=true", "list=[1,\"a\"]", "obj={\"k\":1}", "s=x=y", "other=7"})
	require.NoError(t, err)
	tmpl := &batch.Template{Parameters: []batch.Parameter{
		{Name: "n", Type: "integer"}, {Name: "f", Type: "number"}, {Name: "b", Type: "boolean"},
		{Name: "list", Type: "array"}, {Name: "obj", Type: "object"}, {Name: "s", Type: "string"},
	}}
	values, err := templateParams(tmpl, pairs)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"n": int64(3), "f": 1.5, "b": true, "list": []any{float64(1), "a"}, "obj": map[string]any{"k": float64(1)},
		"s": "x=y", "other": "7", // undeclared: sent as text for the server to refuse
	}, values)

	_, err = splitParams([]string{"novalue"})
	require.EqualError(t, err, `--param "novalue": write NAME=VALUE`)
	for typ, bad := range map[string]string{"integer": "1.5", "number": "many", "boolean": "yes please", "array": "[1,"} {
		_, err := paramValue(typ, bad)
		require.Error(t, err, typ)
	}
}

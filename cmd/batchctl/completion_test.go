package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestCompletion(t *testing.T) {
	tb, id := setupWithJob(t)

	r := tb.cli(t, "completion", "bash")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "__start_batchctl")

	// The shell asks for job ids; they come from the server, newest first,
	// with their status and type.
	r = tb.cli(t, "__complete", "status", "")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^`+id+`\tcompleted field_update$`, r.stdout)
	require.Contains(t, r.stdout, "\n:36\n", "no files, in the server's order")
	r = tb.cli(t, "__complete", "status", id, "")
	require.Equal(t, ":4\n", firstLines(r.stdout, 1), "one job id only")

	r = tb.cli(t, "__complete", "list", "--state", "")
	require.Contains(t, r.stdout, "paused\n")

	r = tb.cli(t, "__complete", "--output", "")
	require.Contains(t, r.stdout, "table\njson\n")
}

func TestCompletion_ObjectIDsWithTheirLabel(t *testing.T) {
	tb := setup(t, nil)
	tmpl := runOK[batch.Template](t, tb, docTemplate, "template", "create", "-")
	hook := runOK[batch.Webhook](t, tb, "", "webhook", "create", "--url", tb.srv.URL+"/hook")

	r := tb.cli(t, "__complete", "template", "run", "")
	require.Equal(t, tmpl.ID+"\tbulk_field_update\n:4\n", firstLines(r.stdout, 2))
	r = tb.cli(t, "__complete", "webhook", "get", "")
	require.Equal(t, hook.ID+"\t"+tb.srv.URL+"/hook\n:4\n", firstLines(r.stdout, 2))
	r = tb.cli(t, "__complete", "template", "update", tmpl.ID, "")
	require.Equal(t, ":0\n", firstLines(r.stdout, 1), "the FILE argument completes file names")

	// Without a server there is nothing to offer, and no error.
	r = tb.cliWith(t, runOptions{env: map[string]string{envServer: "http://127.0.0.1:1"}}, "__complete", "template", "get", "")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, ":4\n", firstLines(r.stdout, 1))
}

// firstLines returns the first n lines of s, each with its newline.
func firstLines(s string, n int) string {
	lines := strings.SplitAfterN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "")
}

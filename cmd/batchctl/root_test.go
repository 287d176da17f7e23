package main

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestGlobalFlagsAndEnvironment(t *testing.T) {
	tb, id := setupWithJob(t)

	// Flags win over the environment.
	r := runCLI(t, runOptions{}, map[string]string{envServer: "http://127.0.0.1:1", envAPIKey: "wrong"},
		"--server", tb.srv.URL, "--api-key", testKey, "status", id)
	require.Equal(t, 0, r.code, r.stderr)

	// The server URL may name the API prefix and omit the scheme.
	host := strings.TrimPrefix(tb.srv.URL, "http://")
	r = runCLI(t, runOptions{}, map[string]string{envServer: host + "/api/v1/batch/", envAPIKey: testKey}, "status", id)
	require.Equal(t, 0, r.code, r.stderr)

	// JSON when piped, a table on a terminal, either on request.
	r = tb.cli(t, "status", id)
	require.Equal(t, id, decode[batch.Job](t, r.stdout).ID)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "status", id)
	require.Regexp(t, `(?m)^Job:\s+`+id+`$`, r.stdout)
	r = tb.cliWith(t, runOptions{ttyOut: true}, "status", id, "--output", "json")
	require.Equal(t, id, decode[batch.Job](t, r.stdout).ID)
	r = tb.cli(t, "status", id, "--output", "table")
	require.Regexp(t, `(?m)^Progress:\s+16/16 \(100%\), 0 failed$`, r.stdout)
	r = tb.cli(t, "status", id, "--output", "yaml")
	require.Equal(t, exitInvalid, r.code)
}

func TestCommandLineMistakes(t *testing.T) {
	t.Parallel()
	env := map[string]string{} // none of these reaches a server
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"subm"}, `unknown command "subm" for "batchctl"; did you mean submit?; see batchctl --help`},
		{[]string{"template", "lst"}, `unknown command "lst" for "batchctl template"`},
		{[]string{"list", "extra"}, `batchctl list takes no arguments, got ["extra"]`},
		{[]string{"webhook", "create", "a", "b"}, "batchctl webhook create takes at most 1 argument(s), got 2"},
		{[]string{"artifact", "get", "batch1"}, "batchctl artifact get needs 2 argument(s) (JOB_ID NAME), got 1"},
		{[]string{"--server", "ftp://host", "list"}, "--server must be an http(s) URL"},
		{[]string{"--output", "yaml", "list"}, `--output must be table or json, got "yaml"`},
	} {
		r := runCLI(t, runOptions{}, env, tc.args...)
		require.Equal(t, exitInvalid, r.code, "%v: %s", tc.args, r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
}

func TestHelpVersionAndCompletionNeedNoServer(t *testing.T) {
	t.Parallel()
	unreachable := map[string]string{envServer: "http://127.0.0.1:1"}
	r := runCLI(t, runOptions{}, unreachable)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "Templates, schedules and webhooks:")
	r = runCLI(t, runOptions{}, unreachable, "schedule")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "preview")

	env := map[string]string{envServer: "ftp://nowhere"}
	r = runCLI(t, runOptions{}, env, "--version")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "batchctl version (devel)\n", r.stdout)
	r = runCLI(t, runOptions{}, env, "completion", "zsh")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, runOptions{}, env, "list")
	require.Equal(t, exitInvalid, r.code, "a command that needs the server says the URL is wrong")
}

func TestDefaultServer(t *testing.T) {
	t.Parallel()
	a := &app{getenv: func(string) string { return "" }, isTerminal: func(io.Writer) bool { return false }}
	root := newRootCmd(a)
	require.NoError(t, a.setup(root))
	require.Equal(t, defaultServer, a.server)
	require.Equal(t, outputJSON, a.output)
	require.Equal(t, defaultServer+"/api/v1/batch/jobs", a.api.url("/jobs", nil))
}

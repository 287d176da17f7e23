// Command batchctl uses the Batch API from a terminal: it submits batches
// (JSON or YAML) and follows them with a live progress bar, reads a job's
// status, errors, audit trail and artifacts, controls jobs, and manages
// templates, schedules and webhooks.
//
//	go install github.com/batchworks/batch/cmd/batchctl@latest
//	export BATCH_SERVER=http://127.0.0.1:8080 BATCH_API_KEY=secret
//	batchctl submit job.yaml --wait
//	batchctl template run bulk_field_update --param status=active --wait
//
// # Output
//
// Results go to stdout: a table on a terminal, JSON (the API's "data"
// object) when stdout is piped; --output table|json chooses. Progress and
// errors go to stderr: a progress bar on a terminal, one line per update
// otherwise. --wait follows the job's Server-Sent Events stream
// (GET /jobs/{job_id}/stream) and polls GET /jobs/{job_id} against a server
// that has no stream.
//
// # Exit status
//
//	0  success
//	1  the followed job failed or was cancelled, or any other error
//	2  the request is invalid: the API answered 400 (INVALID_BATCH), 413 or
//	   415, the input file is not a batch, or the command line is wrong
//	3  NOT_FOUND
//	4  RATE_LIMITED
//	5  authentication failed (401 or 403)
//
// The API's error message and details are printed to stderr.
//
// # Shell completion
//
// "batchctl completion bash|zsh|fish|powershell" prints a completion
// script; job, template, schedule and webhook ids complete from the server.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &app{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		getenv:     os.Getenv,
		isTerminal: isTerminal,
	})
	stop()
	os.Exit(code)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestWait_ProgressBarOnATerminal(t *testing.T) {
	tb := setup(t, nil)
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 2}}]}}`)
	tb.release()
	r := tb.cliWith(t, runOptions{ttyErr: true}, "wait", id, "--poll-interval", "20ms")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "100%", "the bar fills when the job completes")
	require.Contains(t, r.stderr, "[==============================]")
	require.Contains(t, r.stderr, id+" completed 2/2")
	require.Contains(t, r.stderr, "\r", "the bar redraws in place")
}

func TestLineView(t *testing.T) {
	var b bytes.Buffer
	v := &lineView{w: &b, id: "batch1"}
	running := &batch.Job{ID: "batch1", Status: batch.StateRunning, Progress: batch.Progress{TotalOperations: 4, Completed: 1, Failed: 1, Percentage: 50},
		Statistics: &batch.Statistics{EstimatedRemainingTime: batch.Duration(3 * time.Second)}}
	v.update(running)
	v.update(running) // unchanged: no line
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v.event(&lifecycle{Type: "job_paused", At: at, Principal: "key:ab12"})
	v.close(&batch.Job{ID: "batch1", Status: batch.StateCompleted, Progress: batch.Progress{TotalOperations: 4, Completed: 3, Failed: 1, Percentage: 100}})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	require.Len(t, lines, 3, b.String())
	require.Regexp(t, `^\S+Z batch1 running 2/4 \(50%\) failed=1 remaining=3s$`, lines[0])
	require.Equal(t, "2026-01-02T03:04:05Z batch1 job_paused by key:ab12", lines[1])
	require.Regexp(t, `^\S+Z batch1 completed 4/4 \(100%\) failed=1$`, lines[2], "no estimate once final")
}

func TestBarView(t *testing.T) {
	var b bytes.Buffer
	v := newBarView(&b, "batch1")
	v.update(&batch.Job{ID: "batch1", Status: batch.StateRunning, Progress: batch.Progress{TotalOperations: 4, Completed: 2, Failed: 1}})
	require.Contains(t, b.String(), "batch1 running 3/4, 1 failed")
	v.close(&batch.Job{ID: "batch1", Status: batch.StateFailed, Progress: batch.Progress{TotalOperations: 4, Completed: 2, Failed: 2}})
	require.Contains(t, b.String(), "batch1 failed 4/4, 2 failed")
	require.NotContains(t, b.String(), "100%", "a failed job does not fill the bar")
	require.True(t, strings.HasSuffix(b.String(), "\n"))

	require.EqualValues(t, 0, perMille(&batch.Progress{}))
	require.EqualValues(t, 500, perMille(&batch.Progress{TotalOperations: 4, Completed: 1, Failed: 1}))
	require.EqualValues(t, barScale, perMille(&batch.Progress{TotalOperations: 2, Completed: 3}), "never past the end")
}

func TestQuietShowsNothing(t *testing.T) {
	tb := setup(t, nil)
	tb.release()
	id := submitJob(t, tb, `{"batch": {"operations": [{"type": "gated", "params": {"count": 2}}]}}`)
	r := tb.cli(t, "wait", id, "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
}

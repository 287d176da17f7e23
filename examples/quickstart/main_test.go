package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

// TestQuickstart: each run starts afresh and leaves no file behind; its
// log reads line by line when it is not a terminal, and says why the job
// has 2,500 items.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quickstart job twice")
	}
	t.Chdir(t.TempDir())
	for range 2 {
		var data, logs bytes.Buffer
		require.NoError(t, run(t.Context(), "", &output{data: &data, log: &logs, lastStep: -1}))
		var res struct {
			Data struct {
				JobID    string `json:"job_id"`
				Status   string `json:"status"`
				Progress struct {
					Total int `json:"total_operations"`
				} `json:"progress"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(data.Bytes(), &res))
		require.Equal(t, "batch1", res.Data.JobID, "a fresh database every run")
		require.Equal(t, "completed", res.Data.Status)
		require.Equal(t, 2500, res.Data.Progress.Total)

		text := logs.String()
		require.NotContains(t, text, "\r", "no carriage returns in a log")
		require.Contains(t, text, "selects 2500 of the 10000 fields")
		lines := strings.Split(strings.TrimSpace(text), "\n")
		require.Equal(t, "progress 100%  2500/2500 items done, 0 failed  completed", lines[len(lines)-1])
		for _, l := range lines {
			require.Less(t, len(l), 120, "one short line per step: %q", l)
		}
		entries, err := os.ReadDir(".")
		require.NoError(t, err)
		require.Empty(t, entries, "no database left behind")
	}

}

// TestQuickstart_Terminal: a terminal gets one line redrawn in place.
func TestQuickstart_Terminal(t *testing.T) {
	var logs bytes.Buffer
	o := &output{log: &logs, terminal: true}
	o.progress(&batch.Job{Status: batch.StateRunning, Progress: batch.Progress{TotalOperations: 2500, Completed: 1000, Percentage: 40}})
	o.progress(&batch.Job{Status: batch.StateCompleted, Progress: batch.Progress{TotalOperations: 2500, Completed: 2500, Percentage: 100}})
	require.Equal(t, "\r\x1b[K[############..................]  40%  1000/2500 items done, 0 failed  running"+
		"\r\x1b[K[##############################] 100%  2500/2500 items done, 0 failed  completed", logs.String())
}

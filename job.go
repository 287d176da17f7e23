package batch

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// State is a job's lifecycle state.
type State string

// Job states. queued, running and paused are live; completed, failed and
// cancelled are final.
const (
	StateQueued    State = "queued"    // waiting to start
	StateRunning   State = "running"   // executing items
	StatePaused    State = "paused"    // temporarily stopped; resume continues it
	StateCompleted State = "completed" // every item ran (some may have failed: see the counts)
	StateFailed    State = "failed"    // could not finish: abort on error, failure threshold, timeout or system fault
	StateCancelled State = "cancelled" // stopped by a caller
)

// States lists every job state.
func States() []State {
	return []State{StateQueued, StateRunning, StatePaused, StateCompleted, StateFailed, StateCancelled}
}

// Final reports whether s is a state a job never leaves.
func (s State) Final() bool {
	return s == StateCompleted || s == StateFailed || s == StateCancelled
}

func (s State) valid() bool {
	for _, x := range States() {
		if s == x {
			return true
		}
	}
	return false
}

// Job is a submitted batch: its state, progress and outcome, as the API
// document's status response shows it.
type Job struct {
	ID          string `json:"job_id"`
	Status      State  `json:"status"`
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
	// Owner is the principal that submitted the job ("" for none).
	Owner      string `json:"owner,omitempty"`
	TemplateID string `json:"template_id,omitempty"`
	ScheduleID string `json:"schedule_id,omitempty"`
	// Reverts is the job this job reverts (see [Engine.Revert]), and
	// RevertedBy the job that reverts this one.
	Reverts    string `json:"reverts,omitempty"`
	RevertedBy string `json:"reverted_by,omitempty"`
	// Revert counts what a revert job did to the records it puts back.
	Revert *RevertStats `json:"revert,omitempty"`

	CreatedAt           time.Time  `json:"created_at"`
	StartedAt           *time.Time `json:"started_at,omitempty"`
	FinishedAt          *time.Time `json:"finished_at,omitempty"`
	EstimatedCompletion *time.Time `json:"estimated_completion,omitempty"`

	Progress   Progress    `json:"progress"`
	Statistics *Statistics `json:"statistics,omitempty"`
	// Errors holds the first failed items (up to [JobErrorsInline]); page
	// through all of them with [Engine.JobErrors]. It is an empty list, never
	// absent, when no item failed, as the API document shows it.
	Errors []ItemError `json:"errors"`
	// Results has one entry per operation that produced a summary or an
	// artifact (export, analyze, ...), once it ran.
	Results []Result `json:"results,omitempty"`
	// Error says why a failed job failed: an EXECUTION_ERROR whose details
	// are the item errors that failed it.
	Error *Error `json:"error,omitempty"`
}

// RevertStats counts the records of a revert job.
type RevertStats struct {
	// Restored records are back as they were before the reverted job,
	// Forced of them over a later change ("force": true).
	Restored int64 `json:"restored"`
	// Skipped records were changed since and left alone: their items
	// failed with CONFLICT.
	Skipped int64 `json:"skipped"`
	Forced  int64 `json:"forced"`
}

// JobErrorsInline is how many item errors a [Job] carries inline.
const JobErrorsInline = 10

// Progress counts a job's items.
type Progress struct {
	TotalOperations int64 `json:"total_operations"`
	Completed       int64 `json:"completed"`
	Failed          int64 `json:"failed"`
	// Percentage is floor(100 x (completed + failed) / total).
	Percentage       int               `json:"percentage"`
	CurrentOperation *CurrentOperation `json:"current_operation,omitempty"`
}

// CurrentOperation is the item a running job started most recently.
type CurrentOperation struct {
	// Index is the item's index within the job, from 0.
	Index      int64     `json:"index"`
	Type       string    `json:"type"`
	ResourceID string    `json:"resource_id,omitempty"`
	StartedAt  time.Time `json:"started_at"`
}

// Statistics describes how a started job is doing.
type Statistics struct {
	// SuccessRate is 100 x completed / (completed + failed), one decimal.
	SuccessRate            float64  `json:"success_rate"`
	AverageOperationTime   Duration `json:"average_operation_time"`
	EstimatedRemainingTime Duration `json:"estimated_remaining_time"`
}

// ItemError is a failed (or retried) item of a job.
type ItemError struct {
	// ItemIndex is the item's number in the job, from 0 ([Item].Index): the
	// API document's errors[].operation_index.
	ItemIndex int64 `json:"operation_index"`
	// BatchOperation is the place in the batch's operations list of the
	// operation the item belongs to ([Item].Operation,
	// [Result].OperationIndex).
	BatchOperation int       `json:"batch_operation"`
	ResourceID     string    `json:"resource_id,omitempty"`
	Error          ErrorBody `json:"error"`
	Attempts       int       `json:"attempts"`
	Status         string    `json:"status"`
}

// ErrorBody is the code and message of an item error.
type ErrorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Result is what one producing operation of a job left behind.
type Result struct {
	// OperationIndex is the operation's index in the batch.
	OperationIndex int       `json:"operation_index"`
	Type           string    `json:"type"`
	Summary        any       `json:"summary,omitempty"`
	Artifact       *Artifact `json:"artifact,omitempty"`
}

// Artifact is a file a job produced, such as an export. Read it with
// [Engine.OpenArtifact].
type Artifact struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	// URL is where the HTTP API serves it; set by httpapi.
	URL string `json:"url,omitempty"`
}

// Duration is a time.Duration written in JSON as a short Go duration
// string ("1.25s", "20m", "1h30m", "40us") and read from one. It is
// written exactly: what is read back is the same duration. Only ASCII is
// written (microseconds are "us").
type Duration time.Duration

// String formats d exactly and briefly: no trailing zero units.
func (d Duration) String() string { return exactDuration(time.Duration(d)) }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string such as "30s" or "1h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a form like \"500ms\", \"30s\" or \"1h30m\"", s)
	}
	*d = Duration(v) // where a negative value is wrong, the check that uses it says so
	return nil
}

// exactDuration writes d as time.Duration.String does, in ASCII and
// without trailing zero units: "1ns", "1.25s", "1h30m", "40us".
func exactDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := strings.Replace(d.String(), "µs", "us", 1)
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// displayRound rounds a measured duration to what the API shows: tenths
// of a second from a second up, whole milliseconds from a millisecond,
// whole microseconds below that, whole seconds from a minute.
func displayRound(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 0
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// formatDuration writes a measured duration the way the API document
// does: "1.2s", "20m", "1h5m", "350ms", "40us".
func formatDuration(d time.Duration) string {
	return exactDuration(displayRound(d))
}

// percentage is floor(100 x done / total), 100 for an empty job that finished.
func percentage(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(done * 100 / total)
}

// successRate is 100 x completed / (completed + failed), one decimal.
func successRate(completed, failed int64) float64 {
	if completed+failed == 0 {
		return 0
	}
	return math.Round(1000*float64(completed)/float64(completed+failed)) / 10
}

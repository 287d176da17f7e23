package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch"
)

func TestExecutor_DocumentUpdate(t *testing.T) {
	t.Parallel()
	onEachStore(t, nil, func(t *testing.T, tb *testBundle) {
		// With the filter's fields indexed the submission counts its
		// items from the index, without reading a record.
		tb.indexFields(t, "status", "irrigation_enabled")
		tb.seedFields(t, 2000)
		job := tb.submit(t, docBatch(t))
		require.Equal(t, batch.StateQueued, job.Status)
		require.Equal(t, int64(500), job.Progress.TotalOperations)
		require.NotNil(t, job.EstimatedCompletion)

		job = tb.wait(t, job.ID)
		require.Equal(t, batch.StateCompleted, job.Status)
		require.Equal(t, int64(500), job.Progress.Completed)
		require.Zero(t, job.Progress.Failed)
		require.Equal(t, 100, job.Progress.Percentage)
		require.NotNil(t, job.StartedAt)
		require.NotNil(t, job.FinishedAt)
		require.Equal(t, 100.0, job.Statistics.SuccessRate)

		want := map[string]any{"frequency": "daily", "start_time": "06:00", "duration_minutes": float64(30)}
		n := 0
		require.NoError(t, tb.fields.Scan(t.Context(), nil, func(r batch.Record) error {
			matches := r["status"] == "active" && r["irrigation_enabled"] == true
			if matches {
				n++
				require.Equal(t, want, r["irrigation_schedule"], r.ID())
			} else {
				require.NotContains(t, r, "irrigation_schedule", r.ID())
			}
			return nil
		}))
		require.Equal(t, 500, n)
	})
}

// flaky fails each item's first failures tries with err, then succeeds.
func flaky(failures int, err error) (batch.Operation, *sync.Map) {
	var tries sync.Map
	return countingOp(func(ctx context.Context, it *batch.Item) error {
		v, _ := tries.LoadOrStore(it.Index, new(atomic.Int64))
		if v.(*atomic.Int64).Add(1) <= int64(failures) {
			return err
		}
		return nil
	}), &tries
}

func TestExecutor_Retries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		err           error
		failures      int
		attempts      int
		wantFailed    int64
		wantTries     int64 // per item
		wantCode      batch.Code
		wantAttempts  int
		backoffOption string
	}{
		{name: "system errors retried until success", err: errors.New("flaky disk"), failures: 2, attempts: 3, wantTries: 3, backoffOption: batch.BackoffImmediate},
		{name: "attempts exhausted", err: errors.New("flaky disk"), failures: 5, attempts: 2, wantFailed: 10, wantTries: 2, wantCode: batch.CodeSystem, wantAttempts: 2, backoffOption: batch.BackoffLinear},
		{name: "resource errors retried", err: batch.NewError(batch.CodeResource, "db busy"), failures: 1, attempts: 2, wantTries: 2, backoffOption: batch.BackoffExponential},
		{name: "validation errors never retried", err: batch.ValidationError("bad value"), failures: 1, attempts: 3, wantFailed: 10, wantTries: 1, wantCode: batch.CodeValidation, wantAttempts: 1},
		{name: "not found never retried", err: batch.ErrNotFound, failures: 1, attempts: 3, wantFailed: 10, wantTries: 1, wantCode: batch.CodeResource, wantAttempts: 1},
		{name: "permanent never retried", err: batch.Permanent(errors.New("quota gone")), failures: 1, attempts: 3, wantFailed: 10, wantTries: 1, wantCode: batch.CodeSystem, wantAttempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, "memory", nil)
			op, tries := flaky(tt.failures, tt.err)
			require.NoError(t, tb.e.RegisterOperation("flaky", op))
			job := tb.wait(t, tb.submit(t, opBatch("flaky", 10, batch.BatchOptions{
				Retry: batch.RetryOptions{Attempts: tt.attempts, Backoff: tt.backoffOption, Delay: batch.Duration(time.Millisecond)},
			})).ID)
			require.Equal(t, batch.StateCompleted, job.Status)
			require.Equal(t, tt.wantFailed, job.Progress.Failed)
			require.Equal(t, 10-tt.wantFailed, job.Progress.Completed)
			tries.Range(func(_, v any) bool {
				require.Equal(t, tt.wantTries, v.(*atomic.Int64).Load())
				return true
			})
			if tt.wantFailed > 0 {
				require.NotEmpty(t, job.Errors)
				require.Equal(t, tt.wantCode, job.Errors[0].Error.Code)
				require.Equal(t, tt.wantAttempts, job.Errors[0].Attempts)
				require.Equal(t, "failed", job.Errors[0].Status)
			}
		})
	}
}

func TestExecutor_CustomBackoff(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	var calls sync.Map
	require.NoError(t, tb.e.RegisterBackoff("zero", func(attempt int, err error) time.Duration {
		calls.Store(attempt, err.Error())
		return 0
	}))
	op, _ := flaky(2, errors.New("try again"))
	require.NoError(t, tb.e.RegisterOperation("flaky", op))
	job := tb.wait(t, tb.submit(t, opBatch("flaky", 3, batch.BatchOptions{
		Retry: batch.RetryOptions{Attempts: 3, Backoff: batch.BackoffCustom, Function: "zero"},
	})).ID)
	require.Equal(t, int64(3), job.Progress.Completed)
	for _, attempt := range []int{1, 2} {
		msg, ok := calls.Load(attempt)
		require.True(t, ok, "backoff called after attempt %d", attempt)
		require.Equal(t, "try again", msg)
	}
	_, ok := calls.Load(3)
	require.False(t, ok, "no backoff after the last attempt")
}

func TestExecutor_PanickingHandlerFailsOnlyItsItem(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	require.NoError(t, tb.e.RegisterOperation("panicky", countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index == 3 {
			panic("handler bug")
		}
		return nil
	})))
	job := tb.wait(t, tb.submit(t, opBatch("panicky", 8, batch.BatchOptions{Retry: batch.RetryOptions{Attempts: 2, Backoff: batch.BackoffImmediate}})).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(7), job.Progress.Completed)
	require.Equal(t, int64(1), job.Progress.Failed)
	require.Equal(t, int64(3), job.Errors[0].ItemIndex)
	require.Equal(t, batch.CodeSystem, job.Errors[0].Error.Code)
	require.Contains(t, job.Errors[0].Error.Message, "panic: handler bug")
	require.Equal(t, 2, job.Errors[0].Attempts)
}

func TestExecutor_ItemTimeout(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	require.NoError(t, tb.e.RegisterOperation("slow", countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index%2 == 0 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})))
	job := tb.wait(t, tb.submit(t, opBatch("slow", 6, batch.BatchOptions{ItemTimeout: batch.Duration(20 * time.Millisecond)})).ID)
	require.Equal(t, batch.StateCompleted, job.Status)
	require.Equal(t, int64(3), job.Progress.Failed)
	require.Equal(t, int64(3), job.Progress.Completed)
	for _, e := range job.Errors {
		require.Equal(t, batch.CodeTimeout, e.Error.Code)
		require.Equal(t, "operation timed out after 20ms", e.Error.Message)
	}
}

func TestExecutor_JobTimeout(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	require.NoError(t, tb.e.RegisterOperation("slow", countingOp(func(ctx context.Context, it *batch.Item) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
			return nil
		}
	})))
	job := tb.wait(t, tb.submit(t, opBatch("slow", 1000, batch.BatchOptions{Parallel: ptr(false), Timeout: batch.Duration(60 * time.Millisecond)})).ID)
	require.Equal(t, batch.StateFailed, job.Status)
	require.NotNil(t, job.Error)
	require.Equal(t, batch.CodeExecutionError, job.Error.Code)
	require.Contains(t, job.Error.Message, "timeout")
	require.Less(t, job.Progress.Completed, int64(1000))
}

func TestExecutor_Concurrency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts batch.BatchOptions
		want int64
	}{
		{"max_concurrent bounds items in flight", batch.BatchOptions{MaxConcurrent: 3}, 3},
		{"parallel false runs one at a time", batch.BatchOptions{Parallel: ptr(false), MaxConcurrent: 8}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// In a bubble the items' 2ms sleep is exact: the bubble's time
			// moves only once every worker that may start an item has.
			synctest.Test(t, func(t *testing.T) { concurrency(t, tt.opts, tt.want) })
		})
	}
}

func concurrency(t *testing.T, opts batch.BatchOptions, want int64) {
	tb := setup(t, "memory", nil)
	var inFlight, peak atomic.Int64
	require.NoError(t, tb.e.RegisterOperation("track", countingOp(func(ctx context.Context, it *batch.Item) error {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		inFlight.Add(-1)
		return nil
	})))
	job := tb.wait(t, tb.submit(t, opBatch("track", 40, opts)).ID)
	require.Equal(t, int64(40), job.Progress.Completed)
	require.Equal(t, want, peak.Load())
}

// validatedFields sets a validator on "fields" that rejects area > 40.
func validatedFields(t *testing.T, tb *testBundle) {
	require.NoError(t, tb.e.DefineCollection("fields", &batch.CollectionOptions{Validate: func(ctx context.Context, r batch.Record) error {
		if a, _ := r["area"].(float64); a > 40 {
			return fmt.Errorf("Invalid area %v: at most 40", a)
		}
		return nil
	}}))
	var err error
	tb.fields, err = tb.e.Collection("fields")
	require.NoError(t, err)
}

func TestExecutor_ValidationModes(t *testing.T) {
	t.Parallel()
	// 200 fields, 100 active; areas 1..50 cycle, so active fields with area
	// > 40 fail validation once "area" is raised by the update below.
	tests := []struct {
		name        string
		mode        string
		onError     string
		wantState   batch.State
		wantChanged func(changed, total int) bool
	}{
		{"strict skip runs every valid item", batch.ModeStrict, batch.OnErrorSkip, batch.StateCompleted, func(c, _ int) bool { return c > 0 }},
		{"strict abort runs nothing", batch.ModeStrict, batch.OnErrorAbort, batch.StateFailed, func(c, _ int) bool { return c == 0 }},
		{"lenient skip runs every valid item", batch.ModeLenient, batch.OnErrorSkip, batch.StateCompleted, func(c, _ int) bool { return c > 0 }},
		{"lenient abort stops early", batch.ModeLenient, batch.OnErrorAbort, batch.StateFailed, func(c, total int) bool { return c < total }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, "bolt", nil)
			validatedFields(t, tb)
			tb.seedFields(t, 200)
			job := tb.wait(t, tb.submit(t, &batch.Batch{
				Operations: []batch.OperationSpec{{Type: "update", Resource: "fields", Filter: map[string]any{"status": "active"}, Where: "record.area > 20", Update: map[string]any{"touched": true}}},
				Options:    batch.BatchOptions{MaxConcurrent: 1, Validation: batch.ValidationOptions{Mode: tt.mode, OnError: tt.onError}},
			}).ID)
			require.Equal(t, tt.wantState, job.Status)
			changed, valid := 0, 0
			require.NoError(t, tb.fields.Scan(t.Context(), nil, func(r batch.Record) error {
				if r["touched"] == true {
					changed++
					require.LessOrEqual(t, r["area"].(float64), 40.0, "an invalid record was written")
				}
				if a := r["area"].(float64); r["status"] == "active" && a > 20 && a <= 40 {
					valid++
				}
				return nil
			}))
			require.True(t, tt.wantChanged(changed, valid), "changed %d of %d valid", changed, valid)
			if tt.onError == batch.OnErrorSkip {
				require.Equal(t, valid, changed)
				require.Equal(t, int64(valid), job.Progress.Completed)
				require.Equal(t, job.Progress.TotalOperations-int64(valid), job.Progress.Failed)
				require.Equal(t, batch.CodeValidation, job.Errors[0].Error.Code)
				require.Contains(t, job.Errors[0].Error.Message, "Invalid area")
			} else {
				require.Equal(t, batch.CodeExecutionError, job.Error.Code)
				require.NotEmpty(t, job.Error.Details)
				require.Equal(t, string(batch.CodeValidation), job.Error.Details[0].Code)
			}
		})
	}
}

func TestExecutor_MaxFailureRate(t *testing.T) {
	t.Parallel()
	tb := setup(t, "memory", nil)
	require.NoError(t, tb.e.RegisterOperation("half", countingOp(func(ctx context.Context, it *batch.Item) error {
		if it.Index%2 == 1 {
			return batch.ValidationError("odd item")
		}
		return nil
	})))
	job := tb.wait(t, tb.submit(t, opBatch("half", 400, batch.BatchOptions{Parallel: ptr(false), MaxFailureRate: ptr(10.0)})).ID)
	require.Equal(t, batch.StateFailed, job.Status)
	require.Contains(t, job.Error.Message, "max_failure_rate")
	require.Less(t, job.Progress.Completed+job.Progress.Failed, int64(400))
	require.Greater(t, job.Progress.Failed*100, int64(10*400))
}

func TestExecutor_StatusShowsProgressWhileRunning(t *testing.T) {
	t.Parallel()
	tb := setup(t, "bolt", nil)
	release := make(chan struct{})
	require.NoError(t, tb.e.RegisterOperation("gate", countingOp(heldFrom(5, release))))
	job := tb.submit(t, opBatch("gate", 10, batch.BatchOptions{Parallel: ptr(false)}))
	require.Eventually(t, func() bool {
		j, err := tb.e.Job(t.Context(), job.ID)
		return err == nil && j.Progress.Completed == 5 && j.Progress.CurrentOperation != nil
	}, 10*time.Second, time.Millisecond)
	j, err := tb.e.Job(t.Context(), job.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StateRunning, j.Status)
	require.Equal(t, 50, j.Progress.Percentage)
	require.Equal(t, int64(5), j.Progress.CurrentOperation.Index)
	require.Equal(t, "gate", j.Progress.CurrentOperation.Type)
	require.Equal(t, "item5", j.Progress.CurrentOperation.ResourceID)
	require.NotNil(t, j.Statistics)
	require.Equal(t, 100.0, j.Statistics.SuccessRate)
	close(release)
	require.Equal(t, batch.StateCompleted, tb.wait(t, job.ID).Status)
}

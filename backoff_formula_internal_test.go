package batch

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJobRun_BackoffFormula(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(t.Context())
	r := &jobRun{e: e}
	ro := RetryOptions{Backoff: BackoffCustom, Delay: Duration(time.Second), MaxDelay: Duration(10 * time.Second),
		Formula: "error_type == 'timeout' ? 7 : delay * attempt / 4"}
	boom := errors.New("boom")
	require.Equal(t, 250*time.Millisecond, r.backoff(ro, 1, boom), "a plain error is a system error")
	require.Equal(t, 750*time.Millisecond, r.backoff(ro, 3, &Error{Code: CodeResource}))
	require.Equal(t, 7*time.Second, r.backoff(ro, 1, &Error{Code: CodeTimeout}))
	require.Equal(t, 10*time.Second, r.backoff(ro, 100, boom), "capped at max_delay")
	ro.Formula = "error_code == 'RESOURCE_ERROR' ? -5 : max_delay * 2"
	require.Zero(t, r.backoff(ro, 1, &Error{Code: CodeResource}), "never below 0")
	require.Equal(t, 10*time.Second, r.backoff(ro, 1, boom))
}

// The formula's variables, its bounds, and what a formula that fails to
// run or gives no number means.
func TestFormulaBackoff(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(t.Context())
	ro := RetryOptions{Backoff: BackoffCustom, Delay: Duration(2 * time.Second), MaxDelay: Duration(time.Minute)}
	for _, tt := range []struct {
		formula string
		attempt int
		err     error
		want    time.Duration
	}{
		{"attempt", 3, nil, 3 * time.Second},
		{"delay * 2 ** (attempt - 1)", 4, nil, 16 * time.Second},
		{"delay * 2 ** (attempt - 1)", 10, nil, time.Minute},
		{"error_type == 'validation' ? 0.5 : 9", 1, &Error{Code: CodeValidation}, 500 * time.Millisecond},
		{"error_code == 'CONFLICT' ? 1 : 9", 1, &Error{Code: CodeConflict}, time.Second},
		{"error_type == 'system' ? 4 : 9", 1, errors.New("plain"), 4 * time.Second},
		{"0.001", 1, nil, time.Millisecond},
		{"0", 1, nil, 0},
		{"-1", 1, nil, 0},
		{"0.0 / 0.0", 1, nil, 0},
		{"max_delay", 1, nil, time.Minute},
		{"int('x')", 1, nil, 2 * time.Second},
		{"attempt +", 1, nil, 2 * time.Second},
	} {
		ro.Formula = tt.formula
		require.Equal(t, tt.want, e.formulaBackoff(ro, tt.attempt, tt.err), "%s, attempt %d", tt.formula, tt.attempt)
	}
	_, cached := e.formulas.Load("attempt")
	require.True(t, cached, "a formula is compiled once")
}

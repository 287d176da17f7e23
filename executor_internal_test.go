package batch

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJobRun_Backoff(t *testing.T) {
	t.Parallel()
	e, err := New(NewMemoryStore(), nil)
	require.NoError(t, err)
	defer e.Close(t.Context())
	require.NoError(t, e.RegisterBackoff("huge", func(attempt int, err error) time.Duration { return time.Hour * time.Duration(attempt) }))
	r := &jobRun{e: e}
	ro := func(backoff string) RetryOptions {
		return RetryOptions{Backoff: backoff, Delay: Duration(100 * time.Millisecond), MaxDelay: Duration(time.Second), Function: "huge"}
	}
	boom := errors.New("boom")

	require.Zero(t, r.backoff(ro(BackoffImmediate), 3, boom))
	for attempt := 1; attempt < 5; attempt++ {
		require.Equal(t, 100*time.Millisecond, r.backoff(ro(BackoffLinear), attempt, boom), "linear is a fixed delay")
	}
	for attempt, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 40: time.Second} {
		for range 50 {
			d := r.backoff(ro(BackoffExponential), attempt, boom)
			require.GreaterOrEqual(t, d, full/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, full, "attempt %d: doubling, capped at max_delay", attempt)
		}
	}
	require.Equal(t, time.Second, r.backoff(ro(BackoffCustom), 2, boom), "custom delays are capped too")
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   error
		code  Code
		retry bool
	}{
		{"plain error", errors.New("disk"), CodeSystem, true},
		{"validation", ValidationError("bad"), CodeValidation, false},
		{"not found", ErrNotFound, CodeResource, false},
		{"wrapped not found", errors.Join(errors.New("ctx"), notFound("record", "x")), CodeResource, false},
		{"resource", NewError(CodeResource, "busy"), CodeResource, true},
		{"permanent resource", Permanent(NewError(CodeResource, "gone")), CodeResource, false},
		{"timeout", NewError(CodeTimeout, "slow"), CodeTimeout, true},
		{"unknown code", NewError(CodeRateLimited, "x"), CodeSystem, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, msg, retry := classify(tt.err)
			require.Equal(t, tt.code, code)
			require.Equal(t, tt.retry, retry)
			require.NotEmpty(t, msg)
		})
	}
}

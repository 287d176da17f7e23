package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/httpapi"
)

func TestRateLimits(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	tb := setup(t, &httpapi.Options{Now: clock.Now, RateLimits: httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: 3, Per: time.Minute}}}, nil)

	start := clock.Now()
	for i := range 3 {
		res := tb.must(t, http.StatusOK, "GET", "/jobs", "")
		require.Equal(t, "3", res.header.Get("X-RateLimit-Limit"))
		require.Equal(t, strconv.Itoa(2-i), res.header.Get("X-RateLimit-Remaining"))
		require.Equal(t, strconv.FormatInt(start.Add(time.Minute).Unix(), 10), res.header.Get("X-RateLimit-Reset"), "the window frees up when the oldest request leaves it")
		clock.Advance(10 * time.Second)
	}
	res := tb.must(t, http.StatusTooManyRequests, "GET", "/jobs", "")
	require.Equal(t, "RATE_LIMITED", res.err["code"])
	require.Equal(t, "30", res.header.Get("Retry-After"), "the oldest request leaves the window in 30s")
	require.Equal(t, "0", res.header.Get("X-RateLimit-Remaining"))
	require.Equal(t, "rate limit of 3 requests per 1m0s exceeded; retry in 30 seconds", res.err["message"])
	clock.Advance(30 * time.Second)
	require.Equal(t, http.StatusOK, tb.do(t, "GET", "/jobs", "").status, "a slot frees when the oldest request leaves the window")

	// Job creation has its own limit: the document's 10 per hour.
	res = tb.do(t, "POST", "/jobs", docRequest)
	require.Equal(t, "10", res.header.Get("X-RateLimit-Limit"))
	require.Equal(t, "9", res.header.Get("X-RateLimit-Remaining"))
}

// TestRateLimits_PerClient: each principal has its own budget.
func TestRateLimits_PerClient(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{Authenticator: httpapi.APIKeys("a", "b"), RateLimits: httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: 1, Per: time.Hour}}}, nil)
	tb.must(t, http.StatusOK, "GET", "/jobs", "", bearer("a")...)
	tb.must(t, http.StatusTooManyRequests, "GET", "/jobs", "", bearer("a")...)
	tb.must(t, http.StatusOK, "GET", "/jobs", "", bearer("b")...)
}

func TestRateLimits_ExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{}, nil)
	var created, limited atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", tb.srv.URL+httpapi.Prefix+"/jobs", strings.NewReader(docRequest))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			default:
				t.Errorf("status %d", res.StatusCode)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(10), created.Load())
	require.Equal(t, int64(90), limited.Load())
}

// rateStore is a RateStore that answers what it is told and records what
// it is asked.
type rateStore struct {
	mu      sync.Mutex
	keys    []string
	allowed bool
	count   int
	oldest  time.Time
	err     error
}

func (s *rateStore) Hit(ctx context.Context, key string, now time.Time, per time.Duration, n int) (bool, int, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, key+" "+per.String()+" "+strconv.Itoa(n))
	return s.allowed, s.count, s.oldest, s.err
}

func (s *rateStore) asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// TestRateLimits_Store: with a RateStore the counts are the store's: it
// is asked per class and client, and its answer sets the headers.
func TestRateLimits_Store(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	store := &rateStore{allowed: true, count: 2, oldest: clock.Now().Add(-20 * time.Minute)}
	tb := setup(t, &httpapi.Options{Now: clock.Now, RateStore: store, RateLimits: httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: 5, Per: time.Hour}}}, nil)
	res := tb.must(t, http.StatusOK, "GET", "/jobs", "")
	require.Equal(t, "5", res.header.Get("X-RateLimit-Limit"))
	require.Equal(t, "3", res.header.Get("X-RateLimit-Remaining"))
	require.Equal(t, strconv.FormatInt(clock.Now().Add(40*time.Minute).Unix(), 10), res.header.Get("X-RateLimit-Reset"), "the oldest request leaves the window in 40 minutes")
	require.Equal(t, []string{"status|ip:127.0.0.1 1h0m0s 5"}, store.asked())

	store.mu.Lock()
	store.allowed, store.count = false, 5
	store.mu.Unlock()
	res = tb.must(t, http.StatusTooManyRequests, "GET", "/jobs", "")
	require.Equal(t, "2400", res.header.Get("Retry-After"))
	require.Equal(t, "0", res.header.Get("X-RateLimit-Remaining"))
}

// TestRateLimits_StoreFailsOpen: a RateStore that fails lets requests
// through, without rate-limit headers, rather than take the API down.
func TestRateLimits_StoreFailsOpen(t *testing.T) {
	t.Parallel()
	store := &rateStore{err: errors.New("database is down")}
	tb := setup(t, &httpapi.Options{RateStore: store, RateLimits: httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: 1, Per: time.Hour}}}, nil)
	for range 3 {
		res := tb.must(t, http.StatusOK, "GET", "/jobs", "")
		require.Empty(t, res.header.Get("X-RateLimit-Limit"))
	}
	require.Len(t, store.asked(), 3)
}

// TestRateLimits_Disabled: DisableRateLimits answers without limits or
// their headers.
func TestRateLimits_Disabled(t *testing.T) {
	t.Parallel()
	tb := setup(t, &httpapi.Options{DisableRateLimits: true, RateLimits: httpapi.RateLimits{StatusChecks: httpapi.Limit{Requests: 1, Per: time.Hour}}}, nil)
	for range 3 {
		require.Empty(t, tb.must(t, http.StatusOK, "GET", "/jobs", "").header.Get("X-RateLimit-Limit"))
	}
}

package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limit allows Requests requests per client in any window of length Per.
type Limit struct {
	Requests int
	Per      time.Duration
}

// RateLimits holds a [Limit] per route class. A zero Limit means the
// document's default for that class.
type RateLimits struct {
	// JobCreation limits POST /jobs. Default 10 per hour.
	JobCreation Limit
	// StatusChecks limits reading jobs, their errors and artifacts, and job
	// control. Default 600 per hour.
	StatusChecks Limit
	// TemplateManagement limits the template routes. Default 100 per hour.
	TemplateManagement Limit
	// ScheduleManagement limits the schedule routes. Default 100 per hour.
	ScheduleManagement Limit
	// WebhookManagement limits the webhook routes. Default 100 per hour.
	WebhookManagement Limit
	// Streams limits opening progress streams (GET /jobs/{job_id}/stream);
	// a stream counts once however long it runs. Default 120 per hour.
	Streams Limit
	// FailedAuth limits failed authentications (wrong credentials; a
	// request with none does not count) per client address: past
	// it, every request from that address gets 429 until the window frees
	// up, whatever credentials it carries. Default 10 per minute. It
	// applies whenever there is an Authenticator, even with rate limits
	// disabled; a negative Requests turns it off.
	FailedAuth Limit
}

// The default limits: the document's for job creation, status checks and
// template management; schedules and webhooks get a budget of their own,
// as large as the templates', and so do progress streams.
const (
	DefaultJobCreationPerHour        = 10
	DefaultStatusChecksPerHour       = 600
	DefaultTemplateManagementPerHour = 100
	DefaultScheduleManagementPerHour = 100
	DefaultWebhookManagementPerHour  = 100
	DefaultStreamsPerHour            = 120
	// DefaultFailedAuthPerMinute is the default limit of failed
	// authentications per client address.
	DefaultFailedAuthPerMinute = 10
)

func (l RateLimits) withDefaults() RateLimits {
	fill := func(x *Limit, n int) {
		if x.Requests <= 0 {
			x.Requests = n
		}
		if x.Per <= 0 {
			x.Per = time.Hour
		}
	}
	fill(&l.JobCreation, DefaultJobCreationPerHour)
	fill(&l.StatusChecks, DefaultStatusChecksPerHour)
	fill(&l.TemplateManagement, DefaultTemplateManagementPerHour)
	fill(&l.ScheduleManagement, DefaultScheduleManagementPerHour)
	fill(&l.WebhookManagement, DefaultWebhookManagementPerHour)
	fill(&l.Streams, DefaultStreamsPerHour)
	if l.FailedAuth.Requests == 0 {
		l.FailedAuth.Requests = DefaultFailedAuthPerMinute
	}
	if l.FailedAuth.Per <= 0 {
		l.FailedAuth.Per = time.Minute
	}
	return l
}

// limitClass is a group of routes that share a limit.
type limitClass struct {
	name  string
	limit Limit
	// local keeps the class's counts in this process even with a
	// RateStore.
	local bool
}

// RateStore counts rate-limited requests where several servers see the
// same counts.
type RateStore interface {
	// Hit counts a request under key at now unless n requests under key
	// already fall in the window (now-per, now]. It reports whether the
	// request was counted, how many requests the window then holds, and
	// the time of the oldest of them.
	Hit(ctx context.Context, key string, now time.Time, per time.Duration, n int) (allowed bool, count int, oldest time.Time, err error)
}

// limiter counts requests per client and class in a sliding window: it
// keeps the time of each request still inside the window, so "10 per hour"
// means at most 10 in any hour, and it is exact under concurrency.
type limiter struct {
	now   func() time.Time
	store RateStore // nil: counted in memory
	log   *slog.Logger

	// mu guards windows and swept.
	mu      sync.Mutex
	windows map[string]*window // by class|client
	swept   time.Time
}

// window holds the times of a client's requests still inside its window.
type window struct {
	per  time.Duration
	hits []time.Time // oldest first
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, windows: make(map[string]*window)}
}

// verdict is the limiter's answer to one request: the class's limit, what
// is left of it, and when the window frees up.
type verdict struct {
	now, reset time.Time
	per        time.Duration
	limit      int
	remaining  int
	allowed    bool
}

// allow counts a request of client in class, sets the X-RateLimit headers
// and returns a RATE_LIMITED error (with Retry-After set) when the client
// is over its limit.
func (l *limiter) allow(ctx context.Context, w http.ResponseWriter, class *limitClass, client string) error {
	v, ok := l.hit(ctx, class, client)
	if !ok {
		return nil
	}
	return v.answer(w)
}

// hit counts a request of client in class unless the client is over its
// limit. ok is false when the RateStore failed: the request is then let
// through (fail open: a store fault must not take the API down) and has no
// verdict.
func (l *limiter) hit(ctx context.Context, class *limitClass, client string) (v verdict, ok bool) {
	now := l.now()
	per, n := class.limit.Per, class.limit.Requests
	v = verdict{now: now, reset: now.Add(per), per: per, limit: n}
	key := class.name + "|" + client
	if l.store != nil && !class.local {
		allowed, count, oldest, err := l.store.Hit(ctx, key, now, per, n)
		if err != nil {
			l.log.Error("rate limit store", "err", err)
			return verdict{}, false
		}
		if count > 0 {
			v.reset = oldest.Add(per)
		}
		v.remaining, v.allowed = n-count, allowed
		return v, true
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	win := l.windows[key]
	if win == nil {
		win = &window{per: per}
		l.windows[key] = win
	}
	hits := win.hits
	cut := now.Add(-per)
	drop := 0
	for drop < len(hits) && !hits[drop].After(cut) {
		drop++
	}
	hits = hits[drop:]
	v.allowed = len(hits) < n
	if v.allowed {
		hits = append(hits, now)
	}
	win.hits = hits
	if len(hits) > 0 {
		v.reset = hits[0].Add(per)
	}
	v.remaining = n - len(hits)
	if now.Sub(l.swept) > per {
		l.sweep(now)
	}
	return v, true
}

// answer sets the rate-limit headers and returns the RATE_LIMITED error of
// a request that was not allowed.
func (v verdict) answer(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(v.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(v.remaining, 0)))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(int64(math.Ceil(float64(v.reset.UnixNano())/1e9)), 10))
	if v.allowed {
		return nil
	}
	wait := max(int64(math.Ceil(v.reset.Sub(v.now).Seconds())), 1)
	h.Set("Retry-After", strconv.FormatInt(wait, 10))
	return &apiError{
		status:  http.StatusTooManyRequests,
		code:    "RATE_LIMITED",
		message: fmt.Sprintf("rate limit of %d requests per %s exceeded; retry in %d seconds", v.limit, v.per, wait),
	}
}

// exhausted reports whether client has used up its limit in class, without
// counting a request.
func (l *limiter) exhausted(class *limitClass, client string) bool {
	cut := l.now().Add(-class.limit.Per)
	l.mu.Lock()
	defer l.mu.Unlock()
	win := l.windows[class.name+"|"+client]
	if win == nil {
		return false
	}
	n := 0
	for _, t := range win.hits {
		if t.After(cut) {
			n++
		}
	}
	return n >= class.limit.Requests
}

// sweep forgets clients with no request left in their window. l.mu is held.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	for key, win := range l.windows {
		if len(win.hits) == 0 || !win.hits[len(win.hits)-1].After(now.Add(-win.per)) {
			delete(l.windows, key)
		}
	}
}

// Package httpapi serves a [batch.Engine] as the Batch API: the documented
// endpoints under /api/v1/batch, with the document's bodies, error shapes,
// rate limits and status codes.
//
// # Mounting
//
// [New] returns one http.Handler that routes inside with its own
// http.ServeMux, so it mounts on any mux or router; nothing touches
// http.DefaultServeMux:
//
//	mux := http.NewServeMux()
//	mux.Handle("/api/v1/batch/", httpapi.New(engine, &httpapi.Options{
//		Authenticator: httpapi.APIKeys("secret-key"),
//	}))
//
// # Requests and responses
//
// Request bodies wrap the object the way the document does ({"batch": ...})
// and must be JSON (Content-Type application/json; anything else is 415) of
// at most Options.MaxBodyBytes (413 beyond). Unknown fields, malformed JSON
// and invalid values are 400 INVALID_BATCH with one detail per problem.
// Successful responses are {"data": ...}; errors are {"error": {"code",
// "message", "details"}} with the document's codes: 400 INVALID_BATCH,
// 401 UNAUTHORIZED, 403 FORBIDDEN, 404 NOT_FOUND, 409 INVALID_STATE or
// SCHEDULE_CONFLICT, 429 RATE_LIMITED, 500 EXECUTION_ERROR, and 507
// STORAGE_FULL when the store's disk is full. A client mistake is never a
// 500. Bodies follow strict JSON rules (batch.CheckJSON).
//
// # Timeouts
//
// The handler sets no server timeouts; the serving program does (see
// examples/server). Responses that are long on purpose extend their own
// connection's deadlines: job creation with ?wait= for the wait, artifact
// downloads and progress streams for as long as the client keeps reading. Failed
// authentications are limited per client address (RateLimits.FailedAuth).
//
// # Progress stream
//
// GET /jobs/{job_id}/stream answers text/event-stream (Server-Sent
// Events): a "progress" message with the job as GET /jobs/{job_id} shows
// it, another whenever it changes (at most four a second), the lifecycle
// events as they happen ("job_started", "job_paused", "job_resumed",
// "job_completed", "job_failed", "job_cancelled", data {"type", "at",
// "principal", "job_id", "job"}), and last "end" with the final job, after
// which the server closes the stream. Every message has an increasing
// "id"; a Last-Event-ID header continues the numbering. The stream has
// its own rate limit ([RateLimits].Streams), counted once per stream.
// Register [Handler.CloseStreams] with http.Server.RegisterOnShutdown so a
// graceful shutdown does not wait for open streams.
//
// # Principals
//
// With an [Authenticator], every request names a principal; each job,
// template, schedule and webhook belongs to the principal that created it,
// and another principal gets 404 for it, never sees it in a list, and is
// never named it in an error or a conflict. The built-in collections are
// the service's shared data. Maintenance operations that act on the whole
// store (backup, restore, optimize) need an administrator
// ([Options].Admin), 403 FORBIDDEN otherwise; a plain principal's cleanup
// deletes only its own finished jobs. Without an Authenticator the API is
// open: every client acts as the service itself and sees every job, and
// rate limits tell clients apart by remote address.
package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/batchworks/batch"
)

// Prefix is where the API lives.
const Prefix = "/api/v1/batch"

// DefaultMaxBodyBytes is the default request body limit: 32 MiB.
const DefaultMaxBodyBytes = 32 << 20

// Options configures a [Handler]. A nil *Options or a zero field means the
// default given on the field.
type Options struct {
	// Authenticator names the principal of each request. nil leaves the API
	// open: every client acts as the service itself.
	Authenticator Authenticator
	// Admin reports whether a principal is an administrator, who may run
	// the maintenance operations backup, restore and optimize, and whose
	// cleanup covers every principal's jobs (see "Tenancy" in the batch
	// package). nil means nobody is. With [APIKeys], name administrators
	// by [KeyPrincipal].
	Admin func(principal string) bool
	// MaxBodyBytes bounds request bodies. 0 means [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// RateLimits sets the limits per client. The zero value means the
	// document's defaults ([DefaultRateLimits]).
	RateLimits RateLimits
	// DisableRateLimits turns rate limiting off.
	DisableRateLimits bool
	// RateStore, when set, keeps the rate-limit counts, so that servers
	// sharing it share the limits (pgstore's Store is one). nil counts in
	// this process's memory.
	RateStore RateStore
	// MaxWait bounds the ?wait= parameter of job creation. 0 means 5 minutes.
	MaxWait time.Duration
	// Now is the clock for rate limits, a seam for tests. nil means time.Now.
	Now func() time.Time
	// Logger receives server-side errors. nil discards them.
	Logger *slog.Logger
}

// Handler serves the Batch API over one engine. It is safe for concurrent
// use.
type Handler struct {
	engine  *batch.Engine
	opts    Options
	mux     *http.ServeMux
	limiter *limiter
	// authFailures is the class counting failed authentications per
	// client address.
	authFailures *limitClass
	log          *slog.Logger

	// streamsDone is closed by CloseStreams.
	streamsDone chan struct{}
	closeOnce   sync.Once
}

// New returns the API handler for engine. opts may be nil.
func New(engine *batch.Engine, opts *Options) *Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, DefaultMaxBodyBytes)
	o.MaxWait = cmp.Or(o.MaxWait, 5*time.Minute)
	if o.Now == nil {
		o.Now = time.Now
	}
	o.RateLimits = o.RateLimits.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{engine: engine, opts: o, mux: http.NewServeMux(), log: o.Logger, streamsDone: make(chan struct{})}
	h.limiter = newLimiter(o.Now)
	h.limiter.store, h.limiter.log = o.RateStore, o.Logger
	h.authFailures = &limitClass{name: "auth_failures", limit: o.RateLimits.FailedAuth, local: true}
	h.routes()
	return h
}

// route registers a pattern ("GET /jobs/{job_id}") under [Prefix], limited
// by the rate-limit class (nil for none).
func (h *Handler) route(pattern string, class *limitClass, fn func(w http.ResponseWriter, r *http.Request) error) {
	method, path, _ := cutPattern(pattern)
	h.mux.HandleFunc(method+" "+Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		if class != nil && !h.opts.DisableRateLimits {
			if err := h.limiter.allow(r.Context(), w, class, clientKey(r)); err != nil {
				writeError(w, r, err, h.log)
				return
			}
		}
		if err := fn(w, r); err != nil {
			writeError(w, r, err, h.log)
		}
	})
}

func cutPattern(p string) (method, path string, ok bool) {
	for i := range len(p) {
		if p[i] == ' ' {
			return p[:i], p[i+1:], true
		}
	}
	return "", p, false
}

// routes lists every endpoint; each resource kind has its own file.
func (h *Handler) routes() {
	create := &limitClass{name: "create", limit: h.opts.RateLimits.JobCreation}
	status := &limitClass{name: "status", limit: h.opts.RateLimits.StatusChecks}
	h.route("POST /jobs", create, h.createJob)
	h.route("GET /jobs", status, h.listJobs)
	h.route("GET /jobs/{job_id}", status, h.getJob)
	h.route("DELETE /jobs/{job_id}", status, h.deleteJob)
	h.route("POST /jobs/{job_id}/pause", status, h.pauseJob)
	h.route("POST /jobs/{job_id}/resume", status, h.resumeJob)
	h.route("POST /jobs/{job_id}/cancel", status, h.cancelJob)
	h.route("GET /jobs/{job_id}/errors", status, h.jobErrors)
	h.route("GET /jobs/{job_id}/artifacts/{name}", status, h.artifact)
	h.route("GET /jobs/{job_id}/events", status, h.jobEvents)
	h.route("GET /jobs/{job_id}/stream", &limitClass{name: "stream", limit: h.opts.RateLimits.Streams}, h.streamJob)
	management := &limitClass{name: "templates", limit: h.opts.RateLimits.TemplateManagement}
	h.templateRoutes(management)
	h.webhookRoutes(management)
	h.scheduleRoutes(management)
}

// principalKey is the request context key of the authenticated principal.
type principalKey struct{}

// ServeHTTP authenticates the request and routes it. Unknown paths and
// methods get JSON 404 and 405 answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	principal := ""
	if h.opts.Authenticator != nil {
		limitFailures := h.authFailures.limit.Requests > 0
		addr := remoteHost(r.RemoteAddr)
		if limitFailures && h.limiter.exhausted(h.authFailures, addr) {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(h.authFailures.limit.Per.Seconds(), 1))))
			writeError(w, r, &apiError{status: http.StatusTooManyRequests, code: string(batch.CodeRateLimited),
				message: fmt.Sprintf("too many failed authentications from this address; at most %d per %s", h.authFailures.limit.Requests, h.authFailures.limit.Per)}, h.log)
			return
		}
		p, err := h.opts.Authenticator.Authenticate(r)
		if err != nil {
			if limitFailures && !errors.Is(err, ErrNoCredentials) {
				_ = h.limiter.allow(r.Context(), httptest.NewRecorder(), h.authFailures, addr)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="batch"`)
			writeError(w, r, errUnauthorized(err), h.log)
			return
		}
		principal = p
	}
	ctx := context.WithValue(batch.WithPrincipal(r.Context(), principal), principalKey{}, principal)
	if principal != "" && h.opts.Admin != nil && h.opts.Admin(principal) {
		ctx = batch.WithAdmin(ctx)
	}
	r = r.WithContext(ctx)
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// Let the mux decide between 404 and 405, then answer in JSON.
		rec := httptest.NewRecorder()
		h.mux.ServeHTTP(rec, r)
		if allow := rec.Header().Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if rec.Code == http.StatusMethodNotAllowed {
			writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", message: r.Method + " is not allowed here"}, h.log)
			return
		}
		writeError(w, r, &apiError{status: http.StatusNotFound, code: string(batch.CodeNotFound), message: "no such endpoint: " + r.URL.Path}, h.log)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// principal returns the request's principal ("" on an open API).
func principal(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(string)
	return p
}

// clientKey tells clients apart for rate limits: the principal when there
// is one, else the remote address.
func clientKey(r *http.Request) string {
	if p := principal(r); p != "" {
		return "p:" + p
	}
	return "ip:" + remoteHost(r.RemoteAddr)
}

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
// It works at any mount: at another subtree of a ServeMux
// (mux.Handle("/admin/batch/", h), wildcards included), behind
// http.StripPrefix, or at [Options].BasePath. The URLs it writes (Location
// headers, artifact downloads) follow the mount; [URL] builds them.
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
// # Routes
//
// Paths are under the mount ([Prefix] by default). Bodies are JSON; "{...}"
// stands for the object as the batch package writes it (its JSON tags).
// Lists take ?cursor= and ?limit= (1 to 1000) and answer a next_cursor
// while there is more. The rate-limit class of each group is in
// parentheses.
//
// Jobs (rate-limit classes: job creation for POST /jobs, status checks for
// the rest):
//
//	POST   /jobs                        {"batch": {...}} or {"batch": {"template_id", "parameters"}};
//	                                    ?wait=30s waits for the end; Idempotency-Key header
//	                                    -> 201 {"data": job} (200 for a replayed key), Location;
//	                                    400 INVALID_BATCH; 500 EXECUTION_ERROR when it failed while waited on
//	GET    /jobs                        ?state=&cursor=&limit= -> 200 {"data": {"jobs": [job], "next_cursor"}}
//	GET    /jobs/{job_id}               -> 200 {"data": job}; 404 NOT_FOUND
//	DELETE /jobs/{job_id}               -> 204; 409 INVALID_STATE while it runs
//	POST   /jobs/{job_id}/pause         -> 200 {"data": job}; 409 INVALID_STATE
//	POST   /jobs/{job_id}/resume        -> 200 {"data": job}; 409 INVALID_STATE
//	POST   /jobs/{job_id}/cancel        -> 200 {"data": job}; 409 INVALID_STATE
//	GET    /jobs/{job_id}/errors        ?cursor=&limit= -> 200 {"data": {"errors": [item error], "next_cursor"}}
//	GET    /jobs/{job_id}/events        ?cursor=&limit= -> 200 {"data": {"events": [{"type", "at", "principal", ...}]}}
//	GET    /jobs/{job_id}/artifacts/{name}  -> 200 the file (an export's data, a report, a backup)
//	GET    /jobs/{job_id}/stream        -> 200 text/event-stream: progress messages, lifecycle events, end
//
// A job is {"job_id", "status", "progress", "statistics", "errors",
// "results", ...} ([batch.Job]); each item error has the document's
// operation_index (the item's number) and batch_operation (its
// operation's place in the batch).
//
// Templates (template management):
//
//	POST   /templates                   {"template": {...}} -> 201 {"data": template}, Location
//	GET    /templates                   -> 200 {"data": {"templates": [template], "next_cursor"}}
//	GET    /templates/{template_id}     -> 200 {"data": template}
//	PUT    /templates/{template_id}     {"template": {...}} -> 200 {"data": template}
//	DELETE /templates/{template_id}     -> 204
//
// Schedules (schedule management):
//
//	POST   /schedules                   {"schedule": {...}} -> 201 {"data": schedule} with id and next_run_at,
//	                                    Location; 409 SCHEDULE_CONFLICT for the same work at the same time
//	GET    /schedules                   -> 200 {"data": {"schedules": [schedule], "next_cursor"}}
//	GET    /schedules/{schedule_id}     -> 200 {"data": schedule}
//	PUT    /schedules/{schedule_id}     {"schedule": {...}} -> 200 {"data": schedule}; 409 SCHEDULE_CONFLICT
//	DELETE /schedules/{schedule_id}     -> 204
//	POST   /schedules/{schedule_id}/pause   -> 200 {"data": schedule}
//	POST   /schedules/{schedule_id}/resume  -> 200 {"data": schedule}; 409 SCHEDULE_CONFLICT
//	GET    /schedules/{schedule_id}/preview ?n=5 (1 to 100) -> 200 {"data": {"schedule_id", "runs": [time]}}
//
// Webhooks (webhook management):
//
//	POST   /webhooks                    {"webhook": {"url", "events", "description"}} -> 201 {"data": webhook}
//	                                    with its secret, Location
//	GET    /webhooks                    -> 200 {"data": {"webhooks": [webhook], "next_cursor"}}
//	GET    /webhooks/{webhook_id}       -> 200 {"data": webhook}
//	PUT    /webhooks/{webhook_id}       {"webhook": {...}} -> 200 {"data": webhook}
//	DELETE /webhooks/{webhook_id}       -> 204
//	GET    /webhooks/{webhook_id}/deliveries  ?cursor=&limit= -> 200 {"data": {"deliveries": [delivery], "next_cursor"}}
//
// Webhook events are job_created, job_started, job_paused, job_resumed,
// job_completed, job_failed, job_cancelled and schedule_fired, or
// batch_event for every job event; each delivery is the document's
// {"type": "batch_event", "timestamp", "event": {...}}.
//
// Every limited route answers X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset, and 429 RATE_LIMITED with Retry-After past the limit
// (see [RateLimits] for the classes and their defaults).
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
// # Dry runs and reverts
//
// POST /jobs?dry_run=true takes the body of POST /jobs and answers 200 with
// what the batch would do now ([batch.DryRun]), storing nothing; it counts
// against the status-check limit, not job creation. POST
// /jobs/{job_id}/revert, with an optional body {"force": true}, answers 201
// with the job that puts back every built-in record the finished job
// changed ([batch.Engine.Revert]); 409 INVALID_STATE says why a job cannot
// be reverted. With ?dry_run=true it answers 200 with what the revert would
// do, on the status-check limit.
//
// # Uploads
//
// An import source too big for a request body is sent as it is: PUT (or
// POST) /uploads with the file as the body (any Content-Type, at most
// Options.MaxUploadBytes) streams it into the store and answers 201 with
// {"data": {"upload_id", "size", "owner", "created_at"}}; an import then
// names it ({"source": {"format": "ndjson", "upload": "upload1"}}) and reads
// it as a stream. GET and DELETE /uploads/{upload_id} read and remove one;
// uploads belong to their principal like jobs do.
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
	"strconv"
	"strings"
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
	// MaxUploadBytes bounds one upload (PUT /uploads), which is streamed
	// into the store, not held. 0 means [DefaultMaxUploadBytes].
	MaxUploadBytes int64
	// RateLimits sets the limits per client. A zero Limit means that
	// class's default ([DefaultJobCreationPerHour] and the constants beside
	// it).
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
	// BasePath is the path at which requests reach the handler
	// ("/admin/batch"). "" derives it from the request: the ServeMux
	// pattern the handler is mounted at, else [Prefix] when the path starts
	// with it, else the root. An outer http.StripPrefix needs nothing:
	// written URLs put the stripped part back.
	BasePath string
	// DisableUI turns the dashboard at ui/ under the mount path off.
	DisableUI bool
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
	// patterns are the registered route patterns, in order.
	patterns []string

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
	o.MaxUploadBytes = cmp.Or(o.MaxUploadBytes, DefaultMaxUploadBytes)
	o.MaxWait = cmp.Or(o.MaxWait, 5*time.Minute)
	o.BasePath = strings.TrimSuffix(o.BasePath, "/")
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

// route registers a pattern ("GET /jobs/{job_id}") under the mount,
// limited by the rate-limit class (nil for none).
func (h *Handler) route(pattern string, class *limitClass, fn func(w http.ResponseWriter, r *http.Request) error) {
	h.patterns = append(h.patterns, pattern)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
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

// limited applies the rate-limit class classOf picks for each request.
func (h *Handler) limited(fn func(w http.ResponseWriter, r *http.Request) error, classOf func(*http.Request) *limitClass) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !h.opts.DisableRateLimits {
			if err := h.limiter.allow(r.Context(), w, classOf(r), clientKey(r)); err != nil {
				return err
			}
		}
		return fn(w, r)
	}
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
	// A dry run spends the status budget, not the job-creation one.
	h.route("POST /jobs", nil, h.limited(h.createJob, func(r *http.Request) *limitClass {
		if dryRun(r) {
			return status
		}
		return create
	}))
	h.route("GET /jobs", status, h.listJobs)
	h.route("GET /jobs/{job_id}", status, h.getJob)
	h.route("DELETE /jobs/{job_id}", status, h.deleteJob)
	h.route("POST /jobs/{job_id}/pause", status, h.pauseJob)
	h.route("POST /jobs/{job_id}/resume", status, h.resumeJob)
	h.route("POST /jobs/{job_id}/cancel", status, h.cancelJob)
	h.route("GET /jobs/{job_id}/errors", status, h.jobErrors)
	h.route("GET /jobs/{job_id}/artifacts/{name}", status, h.artifact)
	h.route("GET /jobs/{job_id}/events", status, h.jobEvents)
	h.route("POST /jobs/{job_id}/revert", nil, h.limited(h.revertJob, func(r *http.Request) *limitClass {
		if dryRun(r) {
			return status
		}
		return create
	}))
	h.route("GET /jobs/{job_id}/stream", &limitClass{name: "stream", limit: h.opts.RateLimits.Streams}, h.streamJob)
	h.uploadRoutes(create)
	h.templateRoutes(&limitClass{name: "templates", limit: h.opts.RateLimits.TemplateManagement})
	h.webhookRoutes(&limitClass{name: "webhooks", limit: h.opts.RateLimits.WebhookManagement})
	h.scheduleRoutes(&limitClass{name: "schedules", limit: h.opts.RateLimits.ScheduleManagement})
	h.uiRoutes()
}

// principalKey is the request context key of the authenticated principal.
type principalKey struct{}

// ServeHTTP authenticates the request and routes it. Unknown paths and
// methods get JSON 404 and 405 answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	asked := r.URL.Path
	public, rest, ok := h.mount(r)
	if ok {
		if pr := withMount(r.Context(), r, public, rest); h.isPublic(pr) {
			h.mux.ServeHTTP(w, pr)
			return
		}
	}
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
				h.limiter.hit(r.Context(), h.authFailures, addr)
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
	r = withMount(ctx, r, public, rest)
	if _, pattern := h.mux.Handler(r); !ok || pattern == "" {
		h.notRouted(w, r, ok, asked)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// notRouted answers a request no route takes: 405 METHOD_NOT_ALLOWED with
// the Allow header where a path inside the mount has routes for other
// methods, else 404 NOT_FOUND naming the path asked for. The mux decides
// between the two; its own plain-text answer is discarded. A path outside
// the mount is never handed to the mux, which might route it.
func (h *Handler) notRouted(w http.ResponseWriter, r *http.Request, mounted bool, asked string) {
	if mounted {
		probe := &probeWriter{header: make(http.Header)}
		h.mux.ServeHTTP(probe, r)
		if probe.code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED", message: r.Method + " is not allowed here"}, h.log)
			return
		}
	}
	writeError(w, r, &apiError{status: http.StatusNotFound, code: string(batch.CodeNotFound), message: "no such endpoint: " + asked}, h.log)
}

// probeWriter is a ResponseWriter that keeps the status and headers of an
// answer and discards its body.
type probeWriter struct {
	header http.Header
	code   int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
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

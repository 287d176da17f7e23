// Command server serves the Batch API over a bbolt file.
//
//	go run ./examples/server -addr 127.0.0.1:8080 -db batch.db -api-key secret
//
// The dashboard is at http://127.0.0.1:8080/api/v1/batch/ui/ (sign in with
// the API key, or open .../ui/#key=secret); -ui=false turns it off. The
// OpenAPI document is at /api/v1/batch/openapi.json.
//
// With -demo (the default) an empty database gets 1,000 demo "fields". With
// -metrics the engine is observed by otelbatch and GET /metrics serves its
// metrics in the Prometheus text format (through the OpenTelemetry
// Prometheus exporter), and a request's traceparent header becomes the
// parent of the jobs it submits. Schedule e-mails go through -smtp-addr
// (with -smtp-from, -smtp-user, the password in $BATCH_SMTP_PASSWORD, and
// -smtp-starttls); without it a schedule asking for e-mail is refused with
// a 400 that says so. SIGTERM
// or Ctrl-C stops it gracefully: requests finish, running jobs checkpoint
// and resume on the next start, and the exit status is 0. Whatever has not
// stopped after -shutdown-timeout (default 30s) is abandoned and the
// process exits with status 1; like a SIGKILL, that loses nothing that a
// restart cannot resume.
//
// -api-key names the accepted keys; -admin-key adds administrator keys,
// the only ones that may run backup, restore and optimize, and whose
// cleanup covers every key's jobs. Connections are bounded by -read-timeout,
// -write-timeout and -idle-timeout.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
	"github.com/batchworks/batch/internal/demo"
	"github.com/batchworks/batch/otelbatch"
	"github.com/batchworks/batch/pgstore"
)

// keyList is a repeatable string flag.
type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }

type config struct {
	addr                 string
	db                   string
	postgres             string
	demo                 bool
	apiKeys              keyList
	adminKeys            keyList
	rateLimit            bool
	allowPrivateWebhooks bool
	ui                   bool
	readTimeout          time.Duration
	writeTimeout         time.Duration
	idleTimeout          time.Duration
	shutdownTimeout      time.Duration
	metrics              bool
	smtp                 smtpConfig
}

// smtpConfig is the mail server schedule notifications go through.
type smtpConfig struct {
	addr, from, user string
	startTLS         bool
}

// smtpPasswordEnv holds the SMTP password, kept off the command line.
const smtpPasswordEnv = "BATCH_SMTP_PASSWORD"

// mailer returns the configured SMTP mailer, or nil without -smtp-addr.
func (c smtpConfig) mailer() (batch.Mailer, error) {
	if c.addr == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("-smtp-addr %q: %w", c.addr, err)
	}
	if c.from == "" {
		return nil, errors.New("-smtp-addr needs -smtp-from")
	}
	m := &batch.SMTPMailer{Addr: c.addr, From: c.from}
	if c.user != "" {
		m.Auth = smtp.PlainAuth("", c.user, os.Getenv(smtpPasswordEnv), host)
	}
	if c.startTLS {
		m.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return m, nil
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&c.db, "db", "./batch.db", "bbolt database file (created if missing)")
	flag.StringVar(&c.postgres, "postgres", "", "PostgreSQL connection string: run on that database instead of -db; several servers may share it")
	flag.BoolVar(&c.demo, "demo", true, "put 1,000 demo fields into an empty database")
	flag.Var(&c.apiKeys, "api-key", "accepted API key (repeatable); none leaves the API open")
	flag.Var(&c.adminKeys, "admin-key", "accepted administrator API key (repeatable): may run backup, restore, optimize and cleanup of everyone's jobs")
	flag.BoolVar(&c.rateLimit, "rate-limit", true, "apply the API's rate limits")
	flag.BoolVar(&c.allowPrivateWebhooks, "allow-private-webhooks", false, "allow webhook URLs on loopback and private networks")
	flag.BoolVar(&c.ui, "ui", true, "serve the dashboard at /api/v1/batch/ui/ (-ui=false turns it off)")
	flag.DurationVar(&c.readTimeout, "read-timeout", 60*time.Second, "longest time to read a request, body included")
	flag.DurationVar(&c.writeTimeout, "write-timeout", 60*time.Second, "longest time to write a response; ?wait=, artifact downloads and progress streams extend it as they go")
	flag.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "how long an idle keep-alive connection stays open")
	flag.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long to let requests and jobs wind down before exiting anyway (jobs resume on the next start)")
	flag.BoolVar(&c.metrics, "metrics", false, "serve Prometheus metrics at /metrics")
	flag.StringVar(&c.smtp.addr, "smtp-addr", "", "SMTP server host:port for schedule e-mails; without it, schedules asking for e-mail are refused")
	flag.StringVar(&c.smtp.from, "smtp-from", "", "sender address of schedule e-mails")
	flag.StringVar(&c.smtp.user, "smtp-user", "", "SMTP user (PLAIN auth); the password comes from $"+smtpPasswordEnv)
	flag.BoolVar(&c.smtp.startTLS, "smtp-starttls", false, "use STARTTLS when the SMTP server offers it")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("server failed", "err", err)
		os.Exit(1)
	}
}

// openEngine opens the engine on PostgreSQL when -postgres is given, with
// the database as the servers' shared rate-limit store, else on the bbolt
// file.
func openEngine(ctx context.Context, c config, eopts *batch.Options) (*batch.Engine, httpapi.RateStore, error) {
	if c.postgres == "" {
		e, err := batch.Open(c.db, eopts)
		return e, nil, err
	}
	store, err := pgstore.Open(ctx, c.postgres, nil)
	if err != nil {
		return nil, nil, err
	}
	e, err := batch.New(store, eopts)
	return e, store, err
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	mailer, err := c.smtp.mailer()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	eopts := &batch.Options{Logger: log, AllowPrivateWebhooks: c.allowPrivateWebhooks, Mailer: mailer}
	var obs *otelbatch.Observer
	if c.metrics {
		var shutdown func(context.Context) error
		obs, shutdown, err = metrics(mux)
		if err != nil {
			return err
		}
		defer shutdown(context.Background())
		eopts.Observer = obs
	}
	engine, rates, err := openEngine(ctx, c, eopts)
	if err != nil {
		return err
	}
	// Index the fields the API document's request filters on.
	if err := engine.DefineCollection("fields", &batch.CollectionOptions{Indexes: []string{"status", "irrigation_enabled"}}); err != nil {
		engine.Close(context.Background())
		return err
	}
	if c.demo {
		if err := seedDemo(ctx, engine); err != nil {
			engine.Close(context.Background())
			return err
		}
	}
	opts := &httpapi.Options{DisableRateLimits: !c.rateLimit, Logger: log, DisableUI: !c.ui, RateStore: rates}
	if keys := append(append([]string(nil), c.apiKeys...), c.adminKeys...); len(keys) > 0 {
		opts.Authenticator = httpapi.APIKeys(keys...)
		admins := map[string]bool{}
		for _, k := range c.adminKeys {
			admins[httpapi.KeyPrincipal(k)] = true
		}
		opts.Admin = func(p string) bool { return admins[p] }
	}
	apiHandler := httpapi.New(engine, opts)
	var api http.Handler = apiHandler
	if obs != nil {
		api = obs.Handler(api)
	}
	mux.Handle(httpapi.Prefix+"/", api)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: min(10*time.Second, c.readTimeout),
		ReadTimeout:       c.readTimeout,
		WriteTimeout:      c.writeTimeout,
		IdleTimeout:       c.idleTimeout,
	}
	srv.RegisterOnShutdown(apiHandler.CloseStreams) // progress streams end; clients reconnect

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		engine.Close(context.Background())
		return err
	}
	log.Info("serving the Batch API", "addr", ln.Addr().String(), "db", c.db, "auth", len(c.apiKeys)+len(c.adminKeys) > 0)
	if c.ui {
		log.Info("dashboard", "url", "http://"+ln.Addr().String()+httpapi.Prefix+"/ui/")
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	if serr := shutdown(srv, engine, c.shutdownTimeout, log); serr != nil {
		return serr
	}
	if obs != nil {
		obs.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// shutdown stops serving and closes the engine within timeout: requests
// get half of it to finish, then their connections are closed; running jobs
// checkpoint. Whatever is still going when the time is up is abandoned:
// the store is crash-safe, and unfinished jobs resume on the next start.
func shutdown(srv *http.Server, engine *batch.Engine, timeout time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(timeout)
	done := make(chan error, 1)
	go func() {
		httpCtx, cancel := context.WithDeadline(context.Background(), time.Now().Add(timeout/2))
		defer cancel()
		if err := srv.Shutdown(httpCtx); err != nil {
			log.Warn("requests still running at shutdown; closing their connections", "err", err)
			srv.Close()
		}
		// Jobs get what is left, less a margin to close the store.
		engineCtx, cancel := context.WithDeadline(context.Background(), deadline.Add(-timeout/10))
		defer cancel()
		done <- engine.Close(engineCtx)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("shutdown took longer than %v; exiting anyway, unfinished jobs resume on the next start", timeout)
	}
}

// seedDemo puts 1,000 demo fields into an empty "fields" collection.
func seedDemo(ctx context.Context, engine *batch.Engine) error {
	fields, err := engine.Collection("fields")
	if err != nil {
		return err
	}
	n, err := fields.Count(ctx, nil)
	if err != nil || n > 0 {
		return err
	}
	return fields.PutMany(ctx, demo.Fields(1000))
}

// metrics serves GET /metrics on mux from a Prometheus registry of its own,
// fed by an OpenTelemetry meter provider through the OpenTelemetry
// Prometheus exporter, and returns the observer to give the engine. The
// exporter (rather than client_golang metrics written by hand) keeps
// otelbatch the one place that defines the metrics: the same names reach
// Prometheus here and any OpenTelemetry backend elsewhere.
func metrics(mux *http.ServeMux) (*otelbatch.Observer, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	obs, err := otelbatch.New(&otelbatch.Options{MeterProvider: mp})
	if err != nil {
		mp.Shutdown(context.Background())
		return nil, nil, err
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return obs, mp.Shutdown, nil
}

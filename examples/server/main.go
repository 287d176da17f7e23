// Command server serves the Batch API over a bbolt file.
//
//	go run ./examples/server -addr 127.0.0.1:8080 -db batch.db -api-key secret
//
// With -demo (the default) an empty database gets 1,000 demo "fields". SIGTERM
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
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/batchworks/batch"
	"github.com/batchworks/batch/httpapi"
)

// keyList is a repeatable string flag.
type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }

type config struct {
	addr                 string
	db                   string
	demo                 bool
	apiKeys              keyList
	adminKeys            keyList
	rateLimit            bool
	allowPrivateWebhooks bool
	readTimeout          time.Duration
	writeTimeout         time.Duration
	idleTimeout          time.Duration
	shutdownTimeout      time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&c.db, "db", "./batch.db", "bbolt database file (created if missing)")
	flag.BoolVar(&c.demo, "demo", true, "put 1,000 demo fields into an empty database")
	flag.Var(&c.apiKeys, "api-key", "accepted API key (repeatable); none leaves the API open")
	flag.Var(&c.adminKeys, "admin-key", "accepted administrator API key (repeatable): may run backup, restore, optimize and cleanup of everyone's jobs")
	flag.BoolVar(&c.rateLimit, "rate-limit", true, "apply the API's rate limits")
	flag.BoolVar(&c.allowPrivateWebhooks, "allow-private-webhooks", false, "allow webhook URLs on loopback and private networks")
	flag.DurationVar(&c.readTimeout, "read-timeout", 60*time.Second, "longest time to read a request, body included")
	flag.DurationVar(&c.writeTimeout, "write-timeout", 60*time.Second, "longest time to write a response; ?wait=, artifact downloads and progress streams extend it as they go")
	flag.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "how long an idle keep-alive connection stays open")
	flag.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long to let requests and jobs wind down before exiting anyway (jobs resume on the next start)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("server failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	engine, err := batch.Open(c.db, &batch.Options{Logger: log, AllowPrivateWebhooks: c.allowPrivateWebhooks})
	if err != nil {
		return err
	}
	if c.demo {
		if err := seedDemo(ctx, engine); err != nil {
			engine.Close(context.Background())
			return err
		}
	}
	opts := &httpapi.Options{DisableRateLimits: !c.rateLimit, Logger: log}
	if keys := append(append([]string(nil), c.apiKeys...), c.adminKeys...); len(keys) > 0 {
		opts.Authenticator = httpapi.APIKeys(keys...)
		admins := map[string]bool{}
		for _, k := range c.adminKeys {
			admins[httpapi.KeyPrincipal(k)] = true
		}
		opts.Admin = func(p string) bool { return admins[p] }
	}
	mux := http.NewServeMux()
	mux.Handle(httpapi.Prefix+"/", httpapi.New(engine, opts))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: min(10*time.Second, c.readTimeout),
		ReadTimeout:       c.readTimeout,
		WriteTimeout:      c.writeTimeout,
		IdleTimeout:       c.idleTimeout,
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		engine.Close(context.Background())
		return err
	}
	log.Info("serving the Batch API", "addr", ln.Addr().String(), "db", c.db, "auth", len(c.apiKeys)+len(c.adminKeys) > 0)
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
	crops := []string{"rice", "corn", "wheat", "soy"}
	recs := make([]batch.Record, 1000)
	for i := range recs {
		status := "active"
		if i%3 == 2 {
			status = "inactive"
		}
		recs[i] = batch.Record{
			"id":                 fmt.Sprintf("field%04d", i+1),
			"name":               fmt.Sprintf("Field %d", i+1),
			"status":             status,
			"irrigation_enabled": i%8 < 3,
			"crop_type":          crops[i%len(crops)],
			"area":               float64(5 + i%40),
		}
	}
	return fields.PutMany(ctx, recs)
}

// Command server serves the Batch API over a bbolt file.
//
//	go run ./examples/server -addr 127.0.0.1:8080 -db batch.db -api-key secret
//
// The dashboard is at http://127.0.0.1:8080/api/v1/batch/ui/ (sign in with
// the API key, or open .../ui/#key=secret); -ui=false turns it off. The
// OpenAPI document is at /api/v1/batch/openapi.json.
//
// With -demo (the default) an empty database gets 1,000 demo "fields". SIGTERM
// or Ctrl-C stops it gracefully: requests finish, running jobs checkpoint
// and resume on the next start, and the exit status is 0. A SIGKILL loses
// nothing that a restart cannot resume.
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
	rateLimit            bool
	allowPrivateWebhooks bool
	ui                   bool
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&c.db, "db", "./batch.db", "bbolt database file (created if missing)")
	flag.BoolVar(&c.demo, "demo", true, "put 1,000 demo fields into an empty database")
	flag.Var(&c.apiKeys, "api-key", "accepted API key (repeatable); none leaves the API open")
	flag.BoolVar(&c.rateLimit, "rate-limit", true, "apply the API's rate limits")
	flag.BoolVar(&c.allowPrivateWebhooks, "allow-private-webhooks", false, "allow webhook URLs on loopback and private networks")
	flag.BoolVar(&c.ui, "ui", true, "serve the dashboard at /api/v1/batch/ui/ (-ui=false turns it off)")
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
	opts := &httpapi.Options{DisableRateLimits: !c.rateLimit, Logger: log, DisableUI: !c.ui}
	if len(c.apiKeys) > 0 {
		opts.Authenticator = httpapi.APIKeys(c.apiKeys...)
	}
	mux := http.NewServeMux()
	mux.Handle(httpapi.Prefix+"/", httpapi.New(engine, opts))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		engine.Close(context.Background())
		return err
	}
	log.Info("serving the Batch API", "addr", ln.Addr().String(), "db", c.db, "auth", len(c.apiKeys) > 0)
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
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		log.Warn("http shutdown", "err", serr)
	}
	if cerr := engine.Close(shutdownCtx); cerr != nil {
		return cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
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

package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
)

// Deps are the parts a standalone service binary wires up before its own
// service: configuration, logger, NATS, streams, catalog, metrics, health.
type Deps struct {
	Config  Config
	Logger  *slog.Logger
	NC      *nats.Conn
	JS      jetstream.JetStream
	Catalog *catalog.Catalog
	Metrics *metrics.Metrics
	Health  *Health
	Echo    *echo.Echo
}

// Bootstrap connects to the external NATS named by the configuration,
// provisions streams and buckets, and loads the catalog.
func Bootstrap(ctx context.Context, name, defaultHTTPAddr string) (*Deps, error) {
	cfg, err := ConfigFromEnv(defaultHTTPAddr)
	if err != nil {
		return nil, err
	}
	logger := NewLogger(cfg.LogLevel).With("service", name)
	nc, err := broker.Connect(cfg.NATSURL, name)
	if err != nil {
		return nil, err
	}
	js, err := broker.JetStream(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := broker.Provision(ctx, js, cfg.Limits); err != nil {
		nc.Close()
		return nil, err
	}
	box, err := cfg.SecretBox(logger)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cat, err := catalog.Open(ctx, catalog.Options{JS: js, Logger: logger, Secrets: box})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := cat.Start(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	m := metrics.New()
	h := &Health{}
	e := httpx.NewEcho(logger)
	h.Register(e, m)
	return &Deps{Config: cfg, Logger: logger, NC: nc, JS: js, Catalog: cat, Metrics: m, Health: h, Echo: e}, nil
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// Lifecycle is a part that runs until stopped: consumers, followers.
type Lifecycle interface {
	// Stop stops intake and finishes or abandons in-flight work by ctx's end.
	Stop(ctx context.Context) error
}

// ServeUntilDone serves d.Echo on the configured address until ctx ends,
// then shuts down in order: stop HTTP intake, stop the parts in the order
// given, drain NATS.
func (d *Deps) ServeUntilDone(ctx context.Context, parts ...Lifecycle) error {
	srv, err := httpx.Listen(d.Config.HTTPAddr, d.Echo)
	if err != nil {
		return err
	}
	d.Logger.Info("listening", "addr", srv.Addr())
	d.Health.SetReady(true)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if err != nil {
			d.Logger.Error("http server failed", "err", err)
		}
	}
	d.Health.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), d.Config.ShutdownWait)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	for _, p := range parts {
		if err := p.Stop(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	broker.Drain(sctx, d.NC)
	d.Logger.Info("stopped")
	return errors.Join(errs...)
}

// StopFunc adapts a function to Lifecycle.
type StopFunc func(ctx context.Context) error

// Stop calls f.
func (f StopFunc) Stop(ctx context.Context) error { return f(ctx) }

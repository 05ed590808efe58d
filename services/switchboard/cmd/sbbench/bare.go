package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// bare is the baseline: the least an honest durable ingest can do — an echo
// server (the same framework, error handler and HTTP server as Switchboard)
// whose handler reads the body, publishes it to JetStream synchronously and
// answers 202 — on its own embedded nats-server in the same process.
// Scenarios add their baseline routes to Echo before the first request
// (echo's router is not safe to change while serving).
type bare struct {
	dir  string
	ns   *broker.Embedded
	NC   *nats.Conn
	JS   jetstream.JetStream
	Echo *echo.Echo
	sync *bareSync // the request round trip (sync.go)
	srv  *httpx.Server
	done chan error
	Base string // http://host:port
}

// Subjects and stream of the baseline.
const (
	bareStream        = "BARE"
	bareEventsSubject = "bare.events"
)

func startBare(ctx context.Context, parent string) (*bare, error) {
	dir, err := os.MkdirTemp(parent, "bare-")
	if err != nil {
		return nil, err
	}
	b := &bare{dir: dir}
	ok := false
	defer func() {
		if !ok {
			b.Stop(context.Background())
		}
	}()
	if b.ns, err = broker.StartEmbedded(broker.EmbeddedOptions{DataDir: dir, Name: "bare"}); err != nil {
		return nil, err
	}
	if b.NC, err = b.ns.Connect("bare"); err != nil {
		return nil, err
	}
	if b.JS, err = broker.JetStream(b.NC); err != nil {
		return nil, err
	}
	// The same settings as Switchboard's TRIGGERS stream (file storage,
	// limits retention, a dedupe window even though the baseline sends no
	// Nats-Msg-Id).
	lim := broker.DefaultLimits()
	if _, err = b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: bareStream, Subjects: []string{"bare.>"},
		Retention: jetstream.LimitsPolicy, MaxAge: lim.TriggersMaxAge, Duplicates: lim.DuplicateWindow,
		Storage: jetstream.FileStorage, Replicas: 1, AllowDirect: true,
	}); err != nil {
		return nil, err
	}
	b.Echo = httpx.NewEcho(slog.New(slog.DiscardHandler))
	b.Echo.POST("/bare/events", b.postEvent)
	ok = true
	return b, nil
}

// serve starts the HTTP server once every route is registered.
func (b *bare) serve() error {
	srv, err := httpx.Listen("127.0.0.1:0", b.Echo)
	if err != nil {
		return err
	}
	b.srv, b.done = srv, make(chan error, 1)
	go func() { b.done <- srv.Serve() }()
	b.Base = "http://" + srv.Addr()
	return nil
}

func (b *bare) postEvent(c *echo.Context) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, httpx.DefaultMaxBody))
	if err != nil {
		return c.NoContent(http.StatusBadRequest)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	if _, err := b.JS.Publish(ctx, bareEventsSubject, body); err != nil {
		return c.NoContent(http.StatusServiceUnavailable)
	}
	return c.JSON(http.StatusAccepted, map[string]string{"status": "accepted"})
}

func (b *bare) Stop(ctx context.Context) {
	if b.srv != nil {
		_ = b.srv.Shutdown(ctx)
		<-b.done
	}
	if b.sync != nil {
		b.sync.stop()
	}
	if b.NC != nil {
		broker.Drain(ctx, b.NC)
	}
	if b.ns != nil {
		b.ns.Shutdown()
	}
	_ = os.RemoveAll(b.dir)
}

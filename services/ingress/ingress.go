// Package ingress is Switchboard's HTTP front door for the customer's app
// and operators: it accepts App Events and request triggers, stores them
// durably in JetStream before answering, and applies workflow documents.
// It holds no read model: run history is the history role's.
package ingress

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/idempotency"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
)

// Options configure the ingress service.
type Options struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Catalog *catalog.Catalog
	Access  *access.Checker
	// Triggers publishes the trigger events (the one producer contract).
	Triggers *trigger.Publisher
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// MaxBody bounds request bodies (default 1 MiB).
	MaxBody int64
	// PublishTimeout bounds the wait for JetStream's acknowledgement.
	PublishTimeout time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered
	// (default idempotency.DefaultTTL).
	IdempotencyTTL time.Duration
	// Blobs reads a run's response step spilled to the object store, for
	// the answer to a repeated synchronous request; nil answers such a
	// repeat with a 202 instead.
	Blobs *blob.Store
}

// Service serves the ingress routes.
type Service struct {
	opts    Options
	log     *slog.Logger
	replies *replyMux
}

// New validates opts.
func New(opts Options) (*Service, error) {
	if opts.NC == nil || opts.JS == nil || opts.Catalog == nil || opts.Access == nil || opts.Triggers == nil {
		return nil, errors.New("ingress: NC, JS, Catalog, Access and Triggers are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = httpx.DefaultMaxBody
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = idempotency.DefaultTTL
	}
	replies, err := newReplyMux(opts.NC)
	if err != nil {
		return nil, err
	}
	return &Service{opts: opts, log: opts.Logger.With("service", "ingress"), replies: replies}, nil
}

// Name is the role's name, "ingress".
func (s *Service) Name() string { return "ingress" }

// Start has nothing to do: New already subscribed to the reply inbox, and
// the routes serve as soon as they are registered.
func (s *Service) Start(context.Context) error { return nil }

// Register mounts the routes on e.
func (s *Service) Register(e *echo.Echo) {
	e.PUT("/v1/projects/:p", s.putProject)
	e.GET("/v1/projects/:p", s.getProject)
	e.POST("/v1/projects/:p/api-keys", s.createAPIKey)

	e.POST("/v1/projects/:p/apply", s.apply)
	e.GET("/v1/projects/:p/workflows", s.listWorkflows)
	e.GET("/v1/projects/:p/workflows/:w", s.getWorkflow)
	e.DELETE("/v1/projects/:p/workflows/:w", s.deleteWorkflow)

	// Events and request triggers are what a user's browser calls (sdk.go).
	s.registerBrowser(e)
}

// Stop releases the reply subscription. HTTP intake is stopped by the
// server first, and every accepted request was already acknowledged by
// JetStream, so nothing else needs draining.
func (s *Service) Stop(context.Context) error { return s.replies.close() }

// projectCaller authenticates a call on project p and checks p exists.
func (s *Service) projectCaller(c *echo.Context) (access.Principal, error) {
	return s.opts.Access.ExistingProject(c.Request(), c.Param("p"))
}

func (s *Service) waitCatalog(c *echo.Context, rev uint64) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	if err := s.opts.Catalog.WaitRevision(ctx, rev); err != nil {
		return apierr.Unavailable(err)
	}
	return nil
}

func noContent(c *echo.Context) error { return c.NoContent(http.StatusNoContent) }

// Package receiver is Switchboard's webhook receiver role: one shared route
// for every provider's webhooks, with everything provider-specific read from
// the integration's manifest (pkg/manifest) — providers are data.
//
//	POST /v1/hooks/{p}/{integration}          app-level: one URL per integration;
//	                                           the tenant comes from the verified payload
//	POST /v1/hooks/{p}/{integration}/{token}  per-credential: the credential's unguessable token
//	PUT  /v1/projects/{p}/integrations/{integration}/webhook-secrets
//	GET  /v1/projects/{p}/users/{u}/credentials/{c}/webhook-url
//	POST /v1/projects/{p}/integrations/{integration}/replay
//	POST /projects/{p}/sdk/resources/{r}/connect  an API Resource's user-level connection
//
// A delivery is answered 2xx only once JetStream stored its events. On the
// way: the integration (and, per credential, the token) is resolved before
// the body is read; the body is read under a cap; a handshake the manifest
// declares is answered; the raw bytes are verified (pkg/verify: constant
// time, timestamps both ways, failing closed with 503 when the source has no
// usable secret or an unknown scheme); the manifest's expressions split the
// delivery into events and read each one's type, id and tenant; each event
// is published through pkg/trigger with a dedupe key of the provider event
// id (or the payload hash) that lives for days, so a provider's retry is
// answered 200 "deduplicated" and starts nothing.
//
// The receiver never looks up tenants: an app-level event carries the
// provider account id, and the router resolves it to credentials through
// the directory's index and records "no credential for account X" when
// there is none — the provider is answered 200 either way, so it does not
// retry forever.
package receiver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
)

// Name is the role's name.
const Name = "webhook-receiver"

// DefaultNotFoundFloor is the least time a 404 for a per-credential URL
// takes. Unknown and disabled tokens take different paths through the
// directory (a miss, or a hit and a record read); answering both no sooner
// than this keeps the difference from telling a token guesser which tokens
// exist.
const DefaultNotFoundFloor = 50 * time.Millisecond

// Options configure the receiver.
type Options struct {
	Catalog   *catalog.Catalog
	Directory *directory.Directory
	Access    *access.Checker
	// Triggers publishes the events, each its own dedupe claim
	// (trigger.Dedupe.InSubject); with its Dedupe bucket, claims an earlier
	// version wrote there are honoured for a TTL after the upgrade.
	Triggers *trigger.Publisher
	// JS reads TRIGGERS for replays; nil: replay answers 503.
	JS jetstream.JetStream
	// PublicBaseURL is the URL providers call (e.g. https://hooks.example.com):
	// schemes that sign the URL (Twilio, Square, HubSpot v2/v3) are verified
	// against it plus the request path, never against X-Forwarded-*.
	// Empty uses this server's scheme and the request's Host: right when
	// providers call the server directly (dev), wrong behind a proxy.
	PublicBaseURL string
	// MaxBody caps a delivery's body (default httpx.DefaultMaxBody).
	MaxBody int64
	// PublishTimeout bounds storing one delivery's events (default 10s).
	PublishTimeout time.Duration
	// NotFoundFloor, see DefaultNotFoundFloor.
	NotFoundFloor time.Duration
	// Now is the verifier's clock (tests); nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the webhook receiver role.
type Service struct {
	opts Options
	log  *slog.Logger
}

// New validates opts.
func New(opts Options) (*Service, error) {
	if opts.Catalog == nil || opts.Directory == nil || opts.Access == nil || opts.Triggers == nil {
		return nil, errors.New("webhook-receiver: Catalog, Directory, Access and Triggers are required")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = httpx.DefaultMaxBody
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.NotFoundFloor <= 0 {
		opts.NotFoundFloor = DefaultNotFoundFloor
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{opts: opts, log: opts.Logger.With("service", Name)}, nil
}

// Name is the role's name.
func (s *Service) Name() string { return Name }

// Start has nothing to do: the role is its handlers.
func (s *Service) Start(context.Context) error { return nil }

// Stop has nothing to drain: a delivery is answered only after its events
// were stored, and the shared server finishes requests before roles stop.
func (s *Service) Stop(context.Context) error { return nil }

// Register mounts the routes. Every method reaches the hook handlers:
// handshakes use GET (Dropbox, Meta) and HEAD (Intercom), and a manifest
// says which methods a delivery may use.
func (s *Service) Register(e *echo.Echo) {
	e.Any("/v1/hooks/:p/:integration", s.appHook)
	e.Any("/v1/hooks/:p/:integration/:token", s.credentialHook)
	e.PUT("/v1/projects/:p/integrations/:integration/webhook-secrets", s.putSecrets)
	e.GET("/v1/projects/:p/users/:u/credentials/:c/webhook-url", s.getWebhookURL)
	e.POST("/v1/projects/:p/integrations/:integration/replay", s.replay)
	s.registerResources(e)
}

// Package lifecycle is Switchboard's connection lifecycle service: the HTTP
// API that creates and updates connected users, connects and disconnects
// their credentials, turns workflows on or off per credential (or per
// user, for workflows that need no credential), and imports users in bulk.
//
// Users and credentials live in the directory (pkg/directory); projects,
// workflows and integrations are checked against the catalog. Every change
// is written to the directory and the handler waits until this process's
// directory reflects it, so a read that follows a write (here, or in a
// router sharing the process) sees it.
package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// MaxIDLen is the longest user, credential or provider account id accepted:
// the one id limit (access.MaxIDLen).
const MaxIDLen = access.MaxIDLen

// visibleWait bounds how long a handler waits for its own write to show up
// in the directory's reads.
const visibleWait = 10 * time.Second

// Options configure a Service.
type Options struct {
	// Catalog answers whether projects, workflows and integrations exist.
	Catalog *catalog.Catalog
	// Directory stores users, credentials and enablement.
	Directory *directory.Directory
	Access    *access.Checker
	// MaxBody limits request bodies; <= 0 means httpx.DefaultMaxBody.
	MaxBody int64
	// MaxImportBytes limits a bulk import's body; 0 reads
	// SWITCHBOARD_MAX_IMPORT_BYTES, else DefaultMaxImportBytes.
	MaxImportBytes int64
	// Logger; nil discards.
	Logger *slog.Logger
	// JS and Triggers run the lifecycle events (derive.go): a durable
	// consumer of the directory's changes publishing through Triggers,
	// which needs its Dedupe bucket. Without both no events are derived.
	JS       jetstream.JetStream
	Triggers *trigger.Publisher
	// DeriveAckWait is how long a change may go unsettled before another
	// replica derives it (default DefaultDeriveAckWait).
	DeriveAckWait time.Duration
	// Poll tunes the polling triggers (poll.go).
	Poll PollOptions

	// PublicURL is the base URL browsers and providers reach this
	// service at (SWITCHBOARD_PUBLIC_URL): the OAuth redirect URI is
	// PublicURL + CallbackPath.
	PublicURL string
	// HTTPClient calls providers' token and account endpoints (default: a
	// client with a 30 s timeout).
	HTTPClient *http.Client
	// StateTTL bounds a connect flow (default DefaultStateTTL).
	StateTTL time.Duration
	// RefreshLead, RefreshJitter and RefreshInterval time OAuth token
	// refreshes (defaults DefaultRefreshLead, DefaultRefreshJitter,
	// DefaultRefreshInterval; a negative jitter means none).
	RefreshLead, RefreshJitter, RefreshInterval time.Duration
	// Subscriptions tune webhook subscriptions (subscriptions.go).
	Subscriptions SubscriptionOptions

	fault func(stage string) error // tests: stop a derivation mid-way
}

// Service serves the connection lifecycle API.
type Service struct {
	cat       *catalog.Catalog
	dir       *directory.Directory
	access    *access.Checker
	maxBody   int64
	maxImport int64
	logger    *slog.Logger
	opts      Options
	deriver   *deriver
	// poller and pollIndex run the polling triggers (poll.go).
	poller    *poller
	pollIndex *pollIndexer
	refresher *refresher
	// subscriber creates and deletes webhook subscriptions (subscriptions.go).
	subscriber *subscriber

	httpClient                                  *http.Client
	stateTTL                                    time.Duration
	refreshLead, refreshJitter, refreshInterval time.Duration
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	switch {
	case opts.Catalog == nil:
		return nil, errors.New("lifecycle: Options.Catalog is required")
	case opts.Directory == nil:
		return nil, errors.New("lifecycle: Options.Directory is required")
	case opts.Access == nil:
		return nil, errors.New("lifecycle: Options.Access is required")
	}
	maxBody := opts.MaxBody
	if maxBody <= 0 {
		maxBody = httpx.DefaultMaxBody
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxImport := opts.MaxImportBytes
	if maxImport <= 0 {
		var err error
		if maxImport, err = MaxImportBytesFromEnv(); err != nil {
			return nil, err
		}
	}
	s := &Service{cat: opts.Catalog, dir: opts.Directory, access: opts.Access, maxBody: maxBody,
		maxImport: maxImport, logger: logger, opts: opts,
		httpClient: opts.HTTPClient, stateTTL: opts.StateTTL,
		refreshLead: opts.RefreshLead, refreshJitter: opts.RefreshJitter, refreshInterval: opts.RefreshInterval}
	if s.httpClient == nil {
		s.httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	if s.stateTTL <= 0 {
		s.stateTTL = DefaultStateTTL
	}
	if s.refreshLead <= 0 {
		s.refreshLead = DefaultRefreshLead
	}
	switch {
	case s.refreshJitter == 0:
		s.refreshJitter = DefaultRefreshJitter
	case s.refreshJitter < 0:
		s.refreshJitter = 0
	}
	if s.refreshInterval <= 0 {
		s.refreshInterval = DefaultRefreshInterval
	}
	return s, nil
}

// Name is the role's name, "connection-lifecycle".
func (s *Service) Name() string { return "connection-lifecycle" }

// Start starts deriving lifecycle events from the directory's changes
// (when Options.JS and Triggers are set); the rest of the service is its
// HTTP handlers, which work on the shared catalog and directory.
func (s *Service) Start(ctx context.Context) error {
	if s.opts.JS == nil || s.opts.Triggers == nil {
		return nil
	}
	d, err := startDeriver(ctx, deriverOptions{JS: s.opts.JS, Triggers: s.opts.Triggers, Required: s.requiredSettings,
		Logger: s.logger, AckWait: s.opts.DeriveAckWait, fault: s.opts.fault})
	if err != nil {
		return err
	}
	s.deriver = d
	if err := s.startPoller(ctx); err != nil {
		return err
	}
	if err := s.startRefresher(ctx); err != nil {
		return err
	}
	return s.startSubscriber(ctx)
}

// Stop drains the change consumer. The handlers have nothing to drain:
// each finishes its write before it answers, and the shared HTTP server has
// finished them before roles stop.
func (s *Service) Stop(ctx context.Context) error {
	if s.poller != nil {
		s.poller.stop(ctx)
	}
	if s.pollIndex != nil {
		if err := s.pollIndex.stop(ctx); err != nil {
			return err
		}
	}
	if s.refresher != nil {
		s.refresher.stop()
	}
	if s.subscriber != nil {
		if err := s.subscriber.stop(ctx); err != nil {
			return err
		}
	}
	if s.deriver == nil {
		return nil
	}
	return s.deriver.stop(ctx)
}

// Register mounts the routes on e.
func (s *Service) Register(e *echo.Echo) {
	const user = "/v1/projects/:p/users/:u"
	e.PUT(user, s.putUser)
	e.GET(user, s.getUser)
	e.PUT(user+"/workflows/:w", s.putUserWorkflow)
	e.PUT(user+"/credentials/:c", s.putCredential)
	e.GET(user+"/credentials/:c", s.getCredential)
	e.DELETE(user+"/credentials/:c", s.deleteCredential)
	e.PUT(user+"/credentials/:c/workflows/:w", s.putCredentialWorkflow)
	s.registerSettings(e)
	s.registerConnect(e)
	s.registerPolls(e)
	e.GET("/v1/projects/:p/users", s.listUsers)
	e.POST("/v1/projects/:p/users/import", s.importUsers)
	// The connected user's own view, for the SDK in their browser (sdk.go).
	s.registerSDK(e)
}

// call is an authenticated request on one connected user of one project.
type call struct {
	project string
	user    string
}

// authorize authenticates the caller for project p (401/403), checks that
// the project exists (404), validates the user id and resolves it against
// the caller: an API key acts for any user, a user token only for its own.
func (s *Service) authorize(c *echo.Context) (call, error) {
	p, err := pathParam(c, "p")
	if err != nil {
		return call{}, err
	}
	pr, err := s.access.Project(c.Request(), p)
	if err != nil {
		return call{}, err
	}
	if _, ok := s.cat.Project(p); !ok {
		return call{}, apierr.NotFound("project_not_found", "project %q does not exist", p)
	}
	u, err := pathID(c, "u", "user")
	if err != nil {
		return call{}, err
	}
	u, err = access.ActingUser(pr, u)
	if err != nil {
		return call{}, err
	}
	return call{project: p, user: u}, nil
}

// authorizeCredential is authorize plus the credential id {c} from the
// path.
func (s *Service) authorizeCredential(c *echo.Context) (call, string, error) {
	cl, err := s.authorize(c)
	if err != nil {
		return call{}, "", err
	}
	credID, err := pathID(c, "c", "credential")
	if err != nil {
		return call{}, "", err
	}
	return cl, credID, nil
}

// authorizeKey authenticates the caller for project p from the path and
// refuses a user token (403 with forbidden): the request needs the
// project's API key. It does not check that the project exists.
func (s *Service) authorizeKey(c *echo.Context, forbidden string) (string, error) {
	p, err := pathParam(c, "p")
	if err != nil {
		return "", err
	}
	pr, err := s.access.Project(c.Request(), p)
	if err != nil {
		return "", err
	}
	if pr.Role == access.RoleUser {
		return "", apierr.Forbidden("%s", forbidden)
	}
	return p, nil
}

// pathParam returns path parameter name, unescaped. Echo matches on the raw
// path when it differs from the decoded one (e.g. an id containing "%2F"),
// and then hands out the still-escaped value.
func pathParam(c *echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", apierr.BadRequest("invalid_id", "path segment %q is not validly escaped", name).WithField(name)
		}
		v = u
	}
	return v, nil
}

// pathID returns a free-form id from the path: non-empty UTF-8 of at most
// MaxIDLen bytes.
func pathID(c *echo.Context, name, field string) (string, error) {
	v, err := pathParam(c, name)
	if err != nil {
		return "", err
	}
	if err := access.RequireID(field, v); err != nil {
		return "", err
	}
	return v, nil
}

// pathWorkflow returns the workflow id from the path and the workflow it
// names; enabling a workflow that does not exist is a 404, not a silent
// no-op.
func (s *Service) pathWorkflow(c *echo.Context, project string) (*workflow.Workflow, error) {
	w, err := pathParam(c, "w")
	if err != nil {
		return nil, err
	}
	if !workflow.ValidID(w) {
		return nil, apierr.BadRequest("invalid_id", "%q is not a valid workflow id", w).WithField("workflow")
	}
	wf, ok := s.cat.Workflow(project, w)
	if !ok {
		return nil, apierr.NotFound("workflow_not_found", "workflow %q does not exist in project %q", w, project)
	}
	return wf, nil
}

// readJSON reads the bounded body (413 over the limit) and decodes it with
// decode. An empty body counts as {}.
func readJSON[T any](s *Service, c *echo.Context, decode func([]byte) (T, error)) (T, error) {
	body, err := httpx.ReadBody(c, s.maxBody)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(body)
}

// Bodies.

// userBody is PUT /users/{u}.
type userBody struct {
	// Metadata replaces the user's metadata when present; null clears it.
	Metadata    map[string]any
	HasMetadata bool
}

// decodeUserBody decodes and validates a PUT user body.
func decodeUserBody(body []byte) (*userBody, error) {
	var raw struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return nil, err
	}
	out := &userBody{}
	var err error
	out.Metadata, out.HasMetadata, err = optionalObject("metadata", raw.Metadata)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// credentialBody is PUT /users/{u}/credentials/{c}. Fields other than
// integration are optional: absent keeps the stored value, null clears it.
type credentialBody struct {
	Integration       string
	ProviderAccountID *string
	Secret            map[string]any
	HasSecret         bool
	Settings          map[string]any
	HasSettings       bool
	Status            string // empty: unchanged
}

// decodeCredentialBody decodes and validates a PUT credential body. Every
// failure is a 400 *apierr.Error.
func decodeCredentialBody(body []byte) (*credentialBody, error) {
	var raw struct {
		Integration       *string         `json:"integration"`
		ProviderAccountID json.RawMessage `json:"providerAccountId"`
		Secret            json.RawMessage `json:"secret"`
		Settings          json.RawMessage `json:"settings"`
		Status            *string         `json:"status"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return nil, err
	}
	out := &credentialBody{}
	switch {
	case raw.Integration == nil || *raw.Integration == "":
		return nil, apierr.BadRequest("missing_field", "integration is required").WithField("integration")
	case !workflow.ValidID(*raw.Integration):
		return nil, apierr.BadRequest("invalid_field",
			"integration %q is not a valid id (lowercase letters, digits, - and _, at most 63)", *raw.Integration).WithField("integration")
	}
	out.Integration = *raw.Integration
	if len(raw.ProviderAccountID) > 0 {
		var v *string
		if err := json.Unmarshal(raw.ProviderAccountID, &v); err != nil {
			return nil, apierr.BadRequest("invalid_field", "providerAccountId must be a string").WithField("providerAccountId")
		}
		if v == nil {
			v = new(string)
		}
		if len(*v) > MaxIDLen {
			return nil, apierr.BadRequest("invalid_field", "providerAccountId is longer than %d bytes", MaxIDLen).WithField("providerAccountId")
		}
		out.ProviderAccountID = v
	}
	var err error
	if out.Secret, out.HasSecret, err = optionalObject("secret", raw.Secret); err != nil {
		return nil, err
	}
	if out.Settings, out.HasSettings, err = optionalObject("settings", raw.Settings); err != nil {
		return nil, err
	}
	if raw.Status != nil {
		switch *raw.Status {
		case directory.CredentialValid, directory.CredentialInvalid:
			out.Status = *raw.Status
		default:
			return nil, apierr.BadRequest("invalid_field", "status must be %q or %q", directory.CredentialValid, directory.CredentialInvalid).WithField("status")
		}
	}
	return out, nil
}

// enabledBody is PUT .../workflows/{w}.
type enabledBody struct {
	Enabled bool
}

func decodeEnabledBody(body []byte) (*enabledBody, error) {
	var raw struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return nil, err
	}
	if raw.Enabled == nil {
		return nil, apierr.BadRequest("missing_field", "enabled (true or false) is required").WithField("enabled")
	}
	return &enabledBody{Enabled: *raw.Enabled}, nil
}

// decodeObject decodes a JSON object body into v (400 invalid_json). An
// empty body is {}; any other non-object (null, array, scalar) is rejected.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	if trimmed[0] != '{' {
		return apierr.BadRequest("invalid_json", "the request body must be a JSON object")
	}
	return httpx.DecodeJSON(trimmed, v)
}

// optionalObject interprets a field that may be absent (nil, false), null
// (nil, true) or an object (value, true).
func optionalObject(field string, raw json.RawMessage) (map[string]any, bool, error) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false, apierr.BadRequest("invalid_field", "%s must be a JSON object", field).WithField(field)
	}
	return m, true, nil
}

// Handlers.

func (s *Service) putUser(c *echo.Context) error {
	cl, err := s.authorize(c)
	if err != nil {
		return err
	}
	b, err := readJSON(s, c, decodeUserBody)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, rev, err := s.dir.UpdateUser(ctx, cl.project, cl.user, func(u *directory.User) error {
		if b.HasMetadata {
			u.Metadata = b.Metadata
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	s.logger.Info("user updated", "project", cl.project, "user", cl.user, "metadata_changed", b.HasMetadata)
	return c.JSON(http.StatusOK, u)
}

// userView is a user with its credentials, secrets redacted.
type userView struct {
	*directory.User
	Credentials []*directory.Credential `json:"credentials"`
}

func (s *Service) getUser(c *echo.Context) error {
	cl, err := s.authorize(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.dir.User(ctx, cl.project, cl.user)
	if errors.Is(err, directory.ErrNotFound) {
		return apierr.NotFound("user_not_found", "user %q does not exist in project %q", cl.user, cl.project)
	}
	if err != nil {
		return storeErr(err)
	}
	creds, err := s.dir.Credentials(ctx, cl.project, cl.user)
	if err != nil {
		return storeErr(err)
	}
	view := userView{User: u, Credentials: make([]*directory.Credential, 0, len(creds))}
	for _, cr := range creds {
		view.Credentials = append(view.Credentials, cr.Public())
	}
	return c.JSON(http.StatusOK, view)
}

func (s *Service) putUserWorkflow(c *echo.Context) error {
	cl, err := s.authorize(c)
	if err != nil {
		return err
	}
	wf, err := s.pathWorkflow(c, cl.project)
	if err != nil {
		return err
	}
	if wf.Integration != "" {
		return apierr.New(http.StatusConflict, "integration_mismatch",
			"workflow %q uses integration %q: enable it per credential (PUT …/credentials/{c}/workflows/%s)", wf.ID, wf.Integration, wf.ID).WithField("workflow")
	}
	b, err := readJSON(s, c, decodeEnabledBody)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// Upsert: a user known so far only through tokens or events may have a
	// workflow turned off before it was ever PUT.
	u, rev, err := s.dir.UpdateUser(ctx, cl.project, cl.user, func(u *directory.User) error {
		if u.Workflows == nil {
			u.Workflows = map[string]bool{}
		}
		u.Workflows[wf.ID] = b.Enabled
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	s.logger.Info("user workflow enablement set", "project", cl.project, "user", cl.user, "workflow", wf.ID, "enabled", b.Enabled)
	return c.JSON(http.StatusOK, u)
}

var errCredentialNotFound = errors.New("credential not found")

// integrationMismatch is returned when a PUT names another integration than
// the stored credential's: a credential is one account of one integration.
func integrationMismatch(cred, have, want string) *apierr.Error {
	return apierr.New(http.StatusConflict, "integration_mismatch",
		"credential %q belongs to integration %q, not %q; disconnect it first or use another credential id", cred, have, want).WithField("integration")
}

func (s *Service) putCredential(c *echo.Context) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	b, err := readJSON(s, c, decodeCredentialBody)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// A connect flow implies the user: the directory creates it with the
	// credential when it does not exist yet.
	var created bool
	cred, rev, err := s.dir.UpdateCredential(ctx, cl.project, cl.user, credID, func(cr *directory.Credential, isNew bool) error {
		created = isNew
		if !isNew && cr.Integration != b.Integration {
			return integrationMismatch(credID, cr.Integration, b.Integration)
		}
		cr.Integration = b.Integration
		if b.ProviderAccountID != nil {
			cr.ProviderAccountID = *b.ProviderAccountID
		}
		if b.HasSecret {
			cr.Secret, cr.HasSecret = b.Secret, b.Secret != nil
		}
		if b.HasSettings {
			if err := s.checkSettings(cl.project, b.Integration, b.Settings); err != nil {
				return err
			}
			cr.Settings = b.Settings
		}
		if b.Status != "" {
			cr.Status = b.Status
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	// Never log the secret, nor settings (they may hold customer data).
	s.logger.Info("credential connected", "project", cl.project, "user", cl.user, "credential", credID,
		"integration", cred.Integration, "status", cred.Status, "created", created, "secret_changed", b.HasSecret)
	// Lifecycle events (Integration Enabled once the required settings are
	// in, credential.invalid …) are derived from the stored change by the
	// role's change consumer (derive.go), not published here: a crash
	// between this write and an event cannot lose it.
	return c.JSON(http.StatusOK, cred.Public())
}

func (s *Service) deleteCredential(c *echo.Context) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	rev, err := s.dir.DeleteCredential(ctx, cl.project, cl.user, credID)
	if err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			return credentialNotFound(cl, credID)
		}
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	s.logger.Info("credential disconnected", "project", cl.project, "user", cl.user, "credential", credID)
	return c.NoContent(http.StatusNoContent)
}

func (s *Service) putCredentialWorkflow(c *echo.Context) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	wf, err := s.pathWorkflow(c, cl.project)
	if err != nil {
		return err
	}
	b, err := readJSON(s, c, decodeEnabledBody)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cred, rev, err := s.dir.UpdateCredential(ctx, cl.project, cl.user, credID, func(cr *directory.Credential, isNew bool) error {
		if isNew {
			return errCredentialNotFound
		}
		switch {
		case wf.Integration == "":
			return apierr.New(http.StatusConflict, "integration_mismatch",
				"workflow %q needs no credential: enable it per user (PUT …/users/{u}/workflows/%s)", wf.ID, wf.ID).WithField("workflow")
		case wf.Integration != cr.Integration:
			return apierr.New(http.StatusConflict, "integration_mismatch",
				"workflow %q uses integration %q but credential %q is for %q", wf.ID, wf.Integration, credID, cr.Integration).WithField("workflow")
		}
		if cr.Workflows == nil {
			cr.Workflows = map[string]bool{}
		}
		cr.Workflows[wf.ID] = b.Enabled
		return nil
	})
	if err != nil {
		if errors.Is(err, errCredentialNotFound) {
			return credentialNotFound(cl, credID)
		}
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	s.logger.Info("credential workflow enablement set", "project", cl.project, "user", cl.user, "credential", credID,
		"workflow", wf.ID, "enabled", b.Enabled)
	return c.JSON(http.StatusOK, cred.Public())
}

func credentialNotFound(cl call, cred string) *apierr.Error {
	return apierr.NotFound("credential_not_found", "user %q has no credential %q", cl.user, cred)
}

// storeErr passes API errors from update functions through, turns input
// the directory refuses (an id or a value over its budget) into 400, and
// storage failures into 503.
func storeErr(err error) error {
	if _, ok := apierr.As(err); ok {
		return err
	}
	var ve *directory.ValidationError
	if errors.As(err, &ve) {
		return apierr.BadRequest(ve.Code, "%s", ve.Message).WithField(ve.Field)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the request was cancelled before the change was stored").Wrap(err)
	}
	return apierr.New(http.StatusServiceUnavailable, "unavailable", "the directory is not available; retry later").Wrap(err)
}

// waitVisible waits until this process's directory reads reflect rev.
func (s *Service) waitVisible(ctx context.Context, rev uint64) error {
	if rev == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, visibleWait)
	defer cancel()
	if err := s.dir.WaitRevision(wctx, rev); err != nil {
		return apierr.New(http.StatusServiceUnavailable, "unavailable",
			"the change was stored but is not visible yet; retrying the request is safe").Wrap(fmt.Errorf("lifecycle: %w", err))
	}
	return nil
}

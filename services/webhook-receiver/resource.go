package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// ResourceConnection is what POST /projects/{p}/sdk/resources/{r}/connect
// answers: the user's credential for the resource (no secret) and its own
// webhook URL.
type ResourceConnection struct {
	Credential *directory.Credential `json:"credential"`
	WebhookURL string                `json:"webhookUrl,omitempty"`
}

// registerResources mounts the API Resource routes: the user-level connect
// where the mirrored product's SDK calls it (connectAction), behind the
// project's CORS rule (a browser page calls it with the user's token), and
// the app-level credential, API key only.
func (s *Service) registerResources(e *echo.Echo) {
	cors := s.opts.Access.CORS(http.MethodPost)
	const connect = "/projects/:p/sdk/resources/:r/connect"
	e.POST(connect, s.connectResource, cors)
	e.OPTIONS(connect, httpx.Preflight(http.MethodPost), cors)
	const app = "/v1/projects/:p/resources/:r/credential"
	e.PUT(app, s.putAppCredential)
	e.GET(app, s.getAppCredential)
	e.DELETE(app, s.deleteAppCredential)
}

// resource finds project p's API Resource r, or answers 404.
func (s *Service) resource(p, r string) (*workflow.Integration, error) {
	in, ok := s.opts.Catalog.Integration(p, r)
	if !workflow.ValidID(r) || !ok || !in.Effective().Resource {
		return nil, apierr.NotFound("unknown_resource", "no API resource %q in project %q (an Integration document with resource: true)", r, p)
	}
	return in, nil
}

// connectResource is the user-level connection of an API Resource: the
// body's credential values ({"access_token", "refresh_token"} for OAuth, or
// named API key values) become the secret of the user's credential for the
// resource (id: the resource's, or "credentialId"), VALID, with an optional
// "providerAccountId" for app-level event routing. A user token connects its
// own user; an API key the user named by X-Switchboard-User. An app-level
// resource has no user credentials: 409.
func (s *Service) connectResource(c *echo.Context) error {
	p, r := c.Param("p"), c.Param("r")
	pr, err := s.opts.Access.ExistingProject(c.Request(), p)
	if err != nil {
		return err
	}
	u, err := access.ActingUser(pr, c.Request().Header.Get("X-Switchboard-User"))
	if err != nil {
		return err
	}
	in, err := s.resource(p, r)
	if err != nil {
		return err
	}
	if in.Effective().AppLevel() {
		return errAppLevel(p, r)
	}
	fields, err := readCredentialValues(c)
	if err != nil {
		return err
	}
	credID, _ := fields["credentialId"].(string)
	account, _ := fields["providerAccountId"].(string)
	delete(fields, "credentialId")
	delete(fields, "providerAccountId")
	if credID == "" {
		credID = r
	}
	if err := access.RequireID("credentialId", credID); err != nil {
		return err
	}
	secret, err := credentialSecret(fields)
	if err != nil {
		return err
	}
	cr, rev, err := s.opts.Directory.UpdateCredential(c.Request().Context(), p, u, credID, func(cr *directory.Credential, created bool) error {
		if !created && cr.Integration != r {
			return errIntegrationMismatch
		}
		cr.Integration, cr.Status, cr.Secret = r, directory.CredentialValid, secret
		if account != "" {
			cr.ProviderAccountID = account
		}
		return nil
	})
	var ve *directory.ValidationError
	switch {
	case errors.Is(err, errIntegrationMismatch):
		return apierr.New(http.StatusConflict, "integration_mismatch", "credential %q of user %q is for another integration", credID, u).WithField("credentialId")
	case errors.As(err, &ve):
		return apierr.BadRequest(ve.Code, "%s", ve.Message).WithField(ve.Field)
	case err != nil:
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the connection could not be stored; retry").Wrap(err)
	}
	wctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	if err := s.opts.Directory.WaitRevision(wctx, rev); err != nil {
		return apierr.Unavailable(err)
	}
	out := ResourceConnection{Credential: cr.Public()}
	if in.Effective().Webhook != nil {
		out.WebhookURL = s.publicBase(c.Request()) + "/v1/hooks/" + p + "/" + r + "/" + cr.WebhookToken
	}
	return c.JSON(http.StatusOK, out)
}

var errIntegrationMismatch = errors.New("credential of another integration")

// errAppLevel refuses a user-level connection of an app-level resource:
// its one credential set is the project's, stored with the API key.
func errAppLevel(p, r string) error {
	return apierr.New(http.StatusConflict, "resource_app_level",
		"API resource %q is app-level (level: app): users do not connect it; its one credential is set with PUT /v1/projects/%s/resources/%s/credential", r, p, r)
}

// MaxCredentialValuesBody caps the body of a resource connection or of an
// app-level credential: a few tokens or keys.
const MaxCredentialValuesBody = 64 << 10

// readCredentialValues reads the body of a resource connection: one JSON
// object of credential values, numbers kept as written.
func readCredentialValues(c *echo.Context) (map[string]any, error) {
	body, err := httpx.ReadBody(c, MaxCredentialValuesBody)
	if err != nil {
		return nil, err
	}
	return decodeCredentialValues(body)
}

// decodeCredentialValues parses a resource connection's body.
func decodeCredentialValues(body []byte) (map[string]any, error) {
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, apierr.BadRequest("invalid_json", "the body must be a JSON object of credential values")
	}
	if dec.More() {
		return nil, apierr.BadRequest("invalid_json", "the body must be one JSON object of credential values")
	}
	return fields, nil
}

// credentialSecret turns the SDK's credential values into a credential
// secret: its snake_case OAuth names become the keys an http step's
// `auth: credential` reads (accessToken, refreshToken); other named values
// (apiKey, username, password …) stay as given.
func credentialSecret(fields map[string]any) (map[string]any, error) {
	if len(fields) == 0 {
		return nil, apierr.BadRequest("missing_field", "no credential values (e.g. access_token)")
	}
	secret := make(map[string]any, len(fields))
	for k, v := range fields {
		switch k {
		case "access_token":
			k = "accessToken"
		case "refresh_token":
			k = "refreshToken"
		}
		secret[k] = v
	}
	return secret, nil
}

// AppCredentialInfo is an app-level resource's credential as the API shows
// it: which values it holds, never the values.
type AppCredentialInfo struct {
	Resource string `json:"resource"`
	// Level is always manifest.LevelApp.
	Level string `json:"level"`
	// Status is VALID: a stored app credential serves every user.
	Status string `json:"status"`
	// Keys are the names of the stored values (e.g. accessToken), sorted.
	Keys      []string  `json:"keys"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func appCredentialInfo(r string, ac *directory.AppCredential) AppCredentialInfo {
	keys := make([]string, 0, len(ac.Secret))
	for k := range ac.Secret {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return AppCredentialInfo{Resource: r, Level: manifest.LevelApp, Status: directory.CredentialValid, Keys: keys, UpdatedAt: ac.UpdatedAt}
}

// appResource authenticates an API-key caller for project p and finds its
// app-level resource r: 404 for none, 409 for a user-level one (whose
// credentials are each user's, connected through the SDK route).
func (s *Service) appResource(c *echo.Context) (string, string, error) {
	p, r := c.Param("p"), c.Param("r")
	if err := s.serverSide(c, p); err != nil {
		return "", "", err
	}
	in, err := s.resource(p, r)
	if err != nil {
		return "", "", err
	}
	if !in.Effective().AppLevel() {
		return "", "", apierr.New(http.StatusConflict, "resource_user_level",
			"API resource %q is user-level: each user connects it (POST /projects/%s/sdk/resources/%s/connect); declare level: app for one credential set for every user", r, p, r)
	}
	return p, r, nil
}

// putAppCredential stores an app-level resource's one credential set (API
// key only), with the body of a user-level connection: {"access_token",
// "refresh_token"} or named API key values. It replaces what was stored.
func (s *Service) putAppCredential(c *echo.Context) error {
	p, r, err := s.appResource(c)
	if err != nil {
		return err
	}
	fields, err := readCredentialValues(c)
	if err != nil {
		return err
	}
	for _, k := range []string{"credentialId", "providerAccountId"} {
		if _, ok := fields[k]; ok {
			return apierr.BadRequest("invalid_field", "an app-level credential is the project's one credential: it has no %s", k).WithField(k)
		}
	}
	secret, err := credentialSecret(fields)
	if err != nil {
		return err
	}
	ac := &directory.AppCredential{Secret: secret, UpdatedAt: s.opts.Now().UTC()}
	if _, err := s.opts.Directory.SetAppCredential(c.Request().Context(), p, r, ac); err != nil {
		var ve *directory.ValidationError
		if errors.As(err, &ve) {
			return apierr.BadRequest(ve.Code, "%s", ve.Message).WithField(ve.Field)
		}
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the credential could not be stored; retry").Wrap(err)
	}
	return c.JSON(http.StatusOK, appCredentialInfo(r, ac))
}

// getAppCredential shows an app-level resource's credential without its
// values (API key only); 404 when none is stored.
func (s *Service) getAppCredential(c *echo.Context) error {
	p, r, err := s.appResource(c)
	if err != nil {
		return err
	}
	ac, err := s.opts.Directory.AppCredential(c.Request().Context(), p, r)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return apierr.NotFound("no_app_credential", "API resource %q has no app-level credential yet (PUT …/resources/%s/credential)", r, r)
	case errors.Is(err, directory.ErrSecretUnavailable):
		return apierr.New(http.StatusServiceUnavailable, "secret_unavailable", "the credential is stored but cannot be opened by this process (SWITCHBOARD_SECRET_KEY)").Wrap(err)
	case err != nil:
		return apierr.Unavailable(err)
	}
	return c.JSON(http.StatusOK, appCredentialInfo(r, ac))
}

// deleteAppCredential removes an app-level resource's credential (API key
// only): the resource's runs then fail at their `auth: credential` step.
func (s *Service) deleteAppCredential(c *echo.Context) error {
	p, r, err := s.appResource(c)
	if err != nil {
		return err
	}
	if _, err := s.opts.Directory.SetAppCredential(c.Request().Context(), p, r, nil); err != nil {
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the credential could not be removed; retry").Wrap(err)
	}
	return c.NoContent(http.StatusNoContent)
}

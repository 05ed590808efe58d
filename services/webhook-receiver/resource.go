package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// ResourceConnection is what POST /projects/{p}/sdk/resources/{r}/connect
// answers: the user's credential for the resource (no secret) and its own
// webhook URL.
type ResourceConnection struct {
	Credential *directory.Credential `json:"credential"`
	WebhookURL string                `json:"webhookUrl,omitempty"`
}

// registerResources mounts the API Resource connect route where the
// mirrored product's SDK calls it (connectAction), behind the project's
// CORS rule: a browser page calls it with the user's token.
func (s *Service) registerResources(e *echo.Echo) {
	cors := s.opts.Access.CORS(http.MethodPost)
	const connect = "/projects/:p/sdk/resources/:r/connect"
	e.POST(connect, s.connectResource, cors)
	e.OPTIONS(connect, httpx.Preflight(http.MethodPost), cors)
}

// connectResource is the user-level connection of an API Resource: the
// body's credential values ({"access_token", "refresh_token"} for OAuth, or
// named API key values) become the secret of the user's credential for the
// resource (id: the resource's, or "credentialId"), VALID, with an optional
// "providerAccountId" for app-level event routing. A user token connects its
// own user; an API key the user named by X-Switchboard-User.
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
	in, ok := s.opts.Catalog.Integration(p, r)
	if !workflow.ValidID(r) || !ok || !in.Effective().Resource {
		return apierr.NotFound("unknown_resource", "no API resource %q in project %q (an Integration document with resource: true)", r, p)
	}
	body, err := httpx.ReadBody(c, 64<<10)
	if err != nil {
		return err
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return apierr.BadRequest("invalid_json", "the body must be a JSON object of credential values")
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
	if len(fields) == 0 {
		return apierr.BadRequest("missing_field", "no credential values (e.g. access_token)")
	}
	secret := make(map[string]any, len(fields))
	for k, v := range fields {
		// The SDK's snake_case OAuth names are the keys an http step's
		// `auth: credential` reads (accessToken, refreshToken).
		switch k {
		case "access_token":
			k = "accessToken"
		case "refresh_token":
			k = "refreshToken"
		}
		secret[k] = v
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

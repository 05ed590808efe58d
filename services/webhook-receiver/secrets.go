package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/verify"
)

// Credential secret keys holding a credential's own webhook secrets: a
// list of {value, expiresAt, id, use} under "webhookSecrets", or one
// string under "webhookSecret". The Asana handshake writes the list.
const (
	CredentialSecretsKey = "webhookSecrets"
	CredentialSecretKey  = "webhookSecret"
)

// secrets are the secrets a delivery is verified with: a credential URL's
// own when the credential has any (Asana's per-subscription secret), else
// the integration's app-level ones (Shopify's app secret signs every
// shop's deliveries).
func (s *Service) secrets(ctx context.Context, src source) ([]verify.Secret, error) {
	if src.cred != nil && src.cred.HasSecret {
		sec, err := s.opts.Directory.Secret(ctx, src.project, src.cred.User, src.cred.ID)
		if err != nil {
			return nil, err
		}
		if own := credentialSecrets(sec); len(own) > 0 {
			return own, nil
		}
	}
	app, err := s.opts.Directory.WebhookSecrets(ctx, src.project, src.integration.ID)
	if err != nil {
		return nil, err
	}
	out := make([]verify.Secret, 0, len(app))
	for i, w := range app {
		id := w.ID
		if id == "" {
			id = "#" + strconv.Itoa(i)
		}
		out = append(out, verify.Secret{ID: id, Value: w.Value, ExpiresAt: w.ExpiresAt, Use: w.Use})
	}
	return out, nil
}

func credentialSecrets(sec map[string]any) []verify.Secret {
	var out []verify.Secret
	if v, ok := sec[CredentialSecretKey].(string); ok && v != "" {
		out = append(out, verify.Secret{ID: "credential", Value: v})
	}
	if list, ok := sec[CredentialSecretsKey].([]any); ok {
		for i, x := range list {
			b, err := json.Marshal(x)
			if err != nil {
				continue
			}
			var ws directory.WebhookSecret
			if json.Unmarshal(b, &ws) != nil || ws.Value == "" {
				continue
			}
			id := ws.ID
			if id == "" {
				id = fmt.Sprintf("credential#%d", i)
			}
			out = append(out, verify.Secret{ID: id, Value: ws.Value, ExpiresAt: ws.ExpiresAt, Use: ws.Use})
		}
	}
	return out
}

// errHookSecretSet refuses a second X-Hook-Secret handshake: the secret
// is accepted only while a subscription is being created, so whoever
// learns a credential's URL cannot replace its secret.
var errHookSecretSet = apierr.New(http.StatusConflict, "hook_secret_already_set",
	"this credential's webhook already has its secret; remove it from the credential to subscribe again")

// storeHookSecret keeps Asana's X-Hook-Secret as the credential's webhook
// secret, next to whatever else its secret holds.
func (s *Service) storeHookSecret(ctx context.Context, cred *directory.Credential, value string) error {
	sec := map[string]any{}
	if cred.HasSecret {
		cur, err := s.opts.Directory.Secret(ctx, cred.Project, cred.User, cred.ID)
		if err != nil {
			return apierr.New(http.StatusServiceUnavailable, "unavailable", "the credential's secret cannot be read; retry later").Wrap(err)
		}
		if len(credentialSecrets(cur)) > 0 {
			return errHookSecretSet
		}
		for k, v := range cur {
			sec[k] = v
		}
	}
	sec[CredentialSecretsKey] = []any{map[string]any{"id": "hook-secret", "value": value}}
	rev, err := s.opts.Directory.SetSecret(ctx, cred.Project, cred.User, cred.ID, sec)
	if err != nil {
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the hook secret could not be stored; retry").Wrap(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The first event follows the handshake at once: this process must
	// verify it with the stored secret.
	if err := s.opts.Directory.WaitRevision(wctx, rev); err != nil {
		return apierr.Unavailable(err)
	}
	return nil
}

// SecretsRequest is the body of PUT …/integrations/{i}/webhook-secrets.
type SecretsRequest struct {
	Secrets []directory.WebhookSecret `json:"secrets"`
}

// SecretsResponse lists the stored secrets without their values.
type SecretsResponse struct {
	Integration string       `json:"integration"`
	Secrets     []SecretInfo `json:"secrets"`
}

// SecretInfo is a stored secret as the API shows it: never its value.
type SecretInfo struct {
	ID        string     `json:"id"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Use       string     `json:"use,omitempty"`
	Expired   bool       `json:"expired,omitempty"`
}

// serverSide authenticates the caller for existing project p and refuses a
// user token: the request needs the project's API key.
func (s *Service) serverSide(c *echo.Context, p string) error {
	pr, err := s.opts.Access.ExistingProject(c.Request(), p)
	if err != nil {
		return err
	}
	return access.ServerSide(pr)
}

// putSecrets replaces an integration's app-level webhook secrets (API key
// only). Several at once: during a rotation the old one gets an expiresAt.
func (s *Service) putSecrets(c *echo.Context) error {
	p, id := c.Param("p"), c.Param("integration")
	if err := s.serverSide(c, p); err != nil {
		return err
	}
	in, ok := s.opts.Catalog.Integration(p, id)
	if !ok || in.Effective().Webhook == nil {
		return apierr.NotFound("unknown_integration", "no webhook integration %q in project %q", id, p)
	}
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	var req SecretsRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields() // a typo'd expiresAt must not make a secret live forever
	if err := dec.Decode(&req); err != nil {
		return apierr.BadRequest("invalid_json", "the body is not a valid secrets request: %v", err)
	}
	if req.Secrets == nil {
		return apierr.BadRequest("invalid_field", "secrets is required (an empty list removes them)").WithField("secrets")
	}
	if _, err := s.opts.Directory.SetWebhookSecrets(c.Request().Context(), p, id, req.Secrets); err != nil {
		var ve *directory.ValidationError
		if errors.As(err, &ve) {
			return apierr.BadRequest(ve.Code, "%s", ve.Message).WithField(ve.Field)
		}
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the secrets could not be stored; retry").Wrap(err)
	}
	out := SecretsResponse{Integration: id, Secrets: make([]SecretInfo, 0, len(req.Secrets))}
	now := s.opts.Now()
	for i, sec := range req.Secrets {
		info := SecretInfo{ID: sec.ID, Use: sec.Use}
		if info.ID == "" {
			info.ID = fmt.Sprintf("#%d", i)
		}
		if !sec.ExpiresAt.IsZero() {
			t := sec.ExpiresAt
			info.ExpiresAt, info.Expired = &t, !now.Before(t)
		}
		out.Secrets = append(out.Secrets, info)
	}
	return c.JSON(http.StatusOK, out)
}

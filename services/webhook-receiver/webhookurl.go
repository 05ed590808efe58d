package receiver

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// WebhookURL is the answer of GET …/credentials/{c}/webhook-url.
type WebhookURL struct {
	Integration string `json:"integration"`
	Credential  string `json:"credential"`
	// URL is the credential's own webhook URL, to paste into the
	// provider's settings (manual user-level setup) or to register through
	// its API.
	URL string `json:"url"`
}

// getWebhookURL is GET /v1/projects/{p}/users/{u}/credentials/{c}/webhook-url:
// the per-credential URL of a connected account. A user token reads its own
// credentials' URLs only; an API key any user's.
func (s *Service) getWebhookURL(c *echo.Context) error {
	p := c.Param("p")
	pr, err := s.opts.Access.ExistingProject(c.Request(), p)
	if err != nil {
		return err
	}
	u, err := access.ActingUser(pr, c.Param("u"))
	if err != nil {
		return err
	}
	cr, err := s.opts.Directory.Credential(c.Request().Context(), p, u, c.Param("c"))
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return apierr.NotFound("credential_not_found", "user %q has no credential %q", u, c.Param("c"))
	case err != nil:
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the directory is not available; retry later").Wrap(err)
	}
	in, ok := s.opts.Catalog.Integration(p, cr.Integration)
	if !ok || in.Effective().Webhook == nil {
		return apierr.NotFound("no_webhook", "integration %q of credential %q receives no webhooks", cr.Integration, cr.ID)
	}
	return c.JSON(http.StatusOK, WebhookURL{
		Integration: cr.Integration, Credential: cr.ID,
		URL: s.publicBase(c.Request()) + "/v1/hooks/" + p + "/" + cr.Integration + "/" + cr.WebhookToken,
	})
}

package lifecycle

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// Read endpoints besides GET …/users/{u}: the project's users (paged)
// and one credential. Secrets are never shown: a credential is its public
// view, whose secret fields are redacted.

// listUsers is GET /v1/projects/{p}/users?limit=&cursor= (API key only:
// it reads the whole project).
func (s *Service) listUsers(c *echo.Context) error {
	p, err := pathParam(c, "p")
	if err != nil {
		return err
	}
	pr, err := s.access.ExistingProject(c.Request(), p)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	limit := 0
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > directory.MaxPage {
			return apierr.BadRequest("invalid_field", "limit must be 1..%d", directory.MaxPage).WithField("limit")
		}
	}
	page, err := s.dir.Users(c.Request().Context(), p, c.QueryParam("cursor"), limit)
	if err != nil {
		return storeErr(err)
	}
	return c.JSON(http.StatusOK, page)
}

// getCredential is GET /v1/projects/{p}/users/{u}/credentials/{c}: the
// credential without its secret, with its subscriptions.
func (s *Service) getCredential(c *echo.Context) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	cred, err := s.dir.Credential(c.Request().Context(), cl.project, cl.user, credID)
	if errors.Is(err, directory.ErrNotFound) {
		return credentialNotFound(cl, credID)
	}
	if err != nil {
		return storeErr(err)
	}
	// With its webhook subscriptions and their status (subscriptions.go).
	return c.JSON(http.StatusOK, s.credentialView(c.Request().Context(), cred))
}

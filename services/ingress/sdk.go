package ingress

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// HeaderParagonCredential is the mirrored product's SDK's name for
// X-Switchboard-Credential (its selectedCredentialId).
const HeaderParagonCredential = "X-Paragon-Credential"

// registerBrowser mounts the routes a connected user's browser calls with a
// user token — App Events and request triggers, under the API paths and the
// paths of the mirrored product's SDK (`@useparagon/connect`: events under
// /v2, request triggers with a query string always present) — behind the
// project's CORS rule, each with an OPTIONS route for preflights.
func (s *Service) registerBrowser(e *echo.Echo) {
	cors := s.opts.Access.CORS()
	for _, path := range []string{
		"/v1/projects/:p/events",
		"/projects/:p/sdk/events/trigger",
		"/v2/projects/:p/sdk/events/trigger",
	} {
		e.POST(path, s.postEvent, cors)
		e.OPTIONS(path, httpx.Preflight(http.MethodPost), cors)
	}
	// Request triggers take every method their workflow allows; a browser
	// may use the ones CORS lets through (GET, POST, PATCH).
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	for _, path := range []string{
		"/v1/projects/:p/workflows/:w/trigger",
		"/projects/:p/sdk/triggers/:w",
	} {
		e.Match(methods, path, s.triggerRequest, cors)
		e.OPTIONS(path, httpx.Preflight(methods...), cors)
	}
}

// requestedCredential is the credential a call chose: X-Switchboard-Credential,
// or the SDK's X-Paragon-Credential.
func requestedCredential(r *http.Request) string {
	if v := r.Header.Get(HeaderCredential); v != "" {
		return v
	}
	return r.Header.Get(HeaderParagonCredential)
}

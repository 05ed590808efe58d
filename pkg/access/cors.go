package access

import (
	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// OriginAllowed reports whether a page on origin may call project p from a
// browser: the origin is in the project's allowedOrigins (or those hold
// "*"). An unknown project allows none.
func (c *Checker) OriginAllowed(p, origin string) bool {
	proj, ok := c.cat.Project(p)
	return ok && httpx.OriginIn(origin, proj.AllowedOrigins)
}

// CORS is the CORS middleware of a project's browser-facing routes (path
// parameter :p): origins come from the project, methods are the given ones
// (default GET, POST, PATCH). Every role mounts its browser routes with it,
// so the rule lives here once.
func (c *Checker) CORS(methods ...string) echo.MiddlewareFunc {
	return httpx.CORS(httpx.CORSOptions{
		Allowed: func(ec *echo.Context, origin string) bool { return c.OriginAllowed(ec.Param("p"), origin) },
		Methods: methods,
		// The headers the mirrored product's SDK sends, and Switchboard's own.
		Headers: []string{
			"Authorization", "Content-Type", "Accept",
			"X-Paragon-SDK-Version", "X-Paragon-Credential", "X-Paragon-Configuration-Id", "X-Paragon-User-Metadata",
			"X-Switchboard-Credential", "Idempotency-Key", "Prefer",
		},
		Expose: []string{"X-Switchboard-Run-Id", "Location", "Idempotent-Replayed", "Retry-After"},
	})
}

package httpx

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/metrics"
)

// UnmatchedRoute is the route label of a request no route matched (404,
// 405): its path is the caller's, and one series per path tried would
// let any caller grow the registry without bound.
const UnmatchedRoute = "unmatched"

// OtherMethod is the method label of a request whose method is not one of
// net/http's: a route mounted with echo's Any takes every method, and a
// made-up one must not make a series of its own.
const OtherMethod = "OTHER"

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	// Metrics holds the HTTP collectors (HTTPRequests, HTTPDuration);
	// required.
	Metrics *metrics.Metrics
	// Role names the role that mounted the route registered as method and
	// path (echo's RouteInfo: a route mounted with Any has the method
	// echo.RouteAny); "" when it cannot tell. Called per request; it must
	// be safe for concurrent use.
	Role func(method, path string) string
	// Skip leaves a request out (the health probes: a kubelet's every few
	// seconds, and /readyz's 503 while a process drains is no failure).
	Skip func(c *echo.Context) bool
}

// Metrics counts every answered request and observes its duration, by the
// role that mounted its route, the route as registered (never the raw
// path) and the class of the status sent. Mount it with e.Use outside the
// other middleware (right after NewEcho's Recover): it hands a handler's
// error to the echo's error handler itself, so the status it records is
// the one that error becomes on the wire, and the middleware outside it
// see the answer as written. A handler that panics is counted as a 500,
// which Recover then answers.
func Metrics(opts MetricsOptions) echo.MiddlewareFunc {
	m := opts.Metrics
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if opts.Skip != nil && opts.Skip(c) {
				return next(c)
			}
			start := time.Now()
			ri := c.RouteInfo()
			route, role := ri.Path, ""
			if ri.Method == "" {
				route = UnmatchedRoute
			} else if opts.Role != nil {
				role = opts.Role(ri.Method, ri.Path)
			}
			method := requestMethod(c.Request().Method)
			status := http.StatusInternalServerError // unless the handler returns
			defer func() {
				m.HTTPRequests.WithLabelValues(role, method, route, metrics.StatusClass(status)).Inc()
				m.HTTPDuration.WithLabelValues(role, method, route).Observe(time.Since(start).Seconds())
			}()
			if err := next(c); err != nil {
				c.Echo().HTTPErrorHandler(c, err)
			}
			_, status = echo.ResolveResponseStatus(c.Response(), nil)
			return nil
		}
	}
}

// requestMethod is the method label of method.
func requestMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return OtherMethod
}

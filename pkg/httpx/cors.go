package httpx

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
)

// CORSOptions configure the CORS middleware.
type CORSOptions struct {
	// Allowed reports whether a page on origin may call the route c
	// matched; c's path parameters are set (a project's origins depend on
	// its :p). Required.
	Allowed func(c *echo.Context, origin string) bool
	// Methods a preflight may ask for (default GET, POST, PATCH).
	Methods []string
	// Headers always allowed on top of the ones a preflight asks for.
	Headers []string
	// Expose lists response headers a page may read.
	Expose []string
	// MaxAge is how long a browser may cache a preflight (default 10 min).
	MaxAge time.Duration
}

// CORS answers browsers calling a route from a page on another origin: a
// preflight (OPTIONS with Access-Control-Request-Method) from an allowed
// origin gets 204 with the methods and headers it may use; other requests
// from an allowed origin get Access-Control-Allow-Origin and go on. A
// request from an origin that is not allowed is refused with 403
// origin_not_allowed before any handler runs, so a page can neither read an
// answer nor cause an effect. A request without Origin (a server, curl) is
// not a browser's cross-origin call and passes untouched.
//
// The allowed origin is echoed, never "*", and Access-Control-Allow-
// Credentials is never sent: callers authenticate with a bearer token in
// Authorization, not with cookies, so no credentialed request is needed and
// "*" can never meet credentials.
//
// Allowed request headers are the ones the preflight names (each checked to
// be a header token) plus Headers: a caller may add headers of its own to a
// request trigger, and once the origin is allowed, which headers it sends is
// no security boundary.
func CORS(opts CORSOptions) echo.MiddlewareFunc {
	methods := opts.Methods
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodPost, http.MethodPatch}
	}
	maxAge := opts.MaxAge
	if maxAge <= 0 {
		maxAge = 10 * time.Minute
	}
	allowMethods := strings.Join(methods, ", ")
	expose := strings.Join(opts.Expose, ", ")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			r := c.Request()
			h := c.Response().Header()
			// The answer depends on Origin: a cache must not hand one
			// origin's answer to another.
			h.Add("Vary", "Origin")
			origin := r.Header.Get("Origin")
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if origin == "" {
				if preflight {
					return apierr.BadRequest("missing_origin", "a CORS preflight needs an Origin header")
				}
				return next(c)
			}
			if !opts.Allowed(c, origin) {
				return apierr.New(http.StatusForbidden, "origin_not_allowed",
					"origin %q may not call this project from a browser; add it to the project's allowedOrigins", origin)
			}
			h.Set("Access-Control-Allow-Origin", origin)
			if !preflight {
				if expose != "" {
					h.Set("Access-Control-Expose-Headers", expose)
				}
				return next(c)
			}
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if m := r.Header.Get("Access-Control-Request-Method"); !slices.Contains(methods, m) {
				h.Set("Access-Control-Allow-Methods", allowMethods)
				return apierr.New(http.StatusMethodNotAllowed, "method_not_allowed", "method %s may not be used from a browser here (allowed: %s)", m, allowMethods)
			}
			headers, err := requestedHeaders(r.Header.Get("Access-Control-Request-Headers"), opts.Headers)
			if err != nil {
				return err
			}
			h.Set("Access-Control-Allow-Methods", allowMethods)
			if headers != "" {
				h.Set("Access-Control-Allow-Headers", headers)
			}
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(maxAge/time.Second)))
			return c.NoContent(http.StatusNoContent)
		}
	}
}

// Preflight is the handler of the OPTIONS routes CORS sits on: CORS answers
// preflights itself, so what reaches it is a plain OPTIONS request, which
// learns the methods the route takes.
func Preflight(methods ...string) echo.HandlerFunc {
	allow := strings.Join(append([]string{http.MethodOptions}, methods...), ", ")
	return func(c *echo.Context) error {
		c.Response().Header().Set("Allow", allow)
		return c.NoContent(http.StatusNoContent)
	}
}

// requestedHeaders merges the headers a preflight asks for with the ones
// always allowed, lowercased and without duplicates.
func requestedHeaders(requested string, always []string) (string, error) {
	var out []string
	add := func(name string) {
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, name := range always {
		add(name)
	}
	for _, name := range strings.Split(requested, ",") {
		name = strings.TrimSpace(name)
		if name != "" && !isToken(name) {
			return "", apierr.BadRequest("invalid_header", "Access-Control-Request-Headers names %q, which is not a header name", name)
		}
		add(name)
	}
	return strings.Join(out, ", "), nil
}

// isToken reports whether s is an RFC 9110 token (what a header name is).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// AnyOrigin in a list of allowed origins lets every origin in.
const AnyOrigin = "*"

// NormalizeOrigin checks an origin as configured ("https://app.example.com",
// "http://localhost:3000") and returns it the way browsers send it in the
// Origin header: lowercase scheme and host, no default port, no path. "*"
// stays as it is.
func NormalizeOrigin(s string) (string, error) {
	if s == AnyOrigin {
		return s, nil
	}
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(s), "/"))
	switch {
	case err != nil:
		return "", fmt.Errorf("origin %q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("origin %q: the scheme must be http or https", s)
	case u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("origin %q: an origin is scheme://host[:port], nothing more", s)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// OriginIn reports whether origin (an Origin header) is in allowed (a list
// of NormalizeOrigin results).
func OriginIn(origin string, allowed []string) bool {
	o, err := NormalizeOrigin(origin)
	if err != nil || o == AnyOrigin {
		// "null" (a sandboxed page, a file), or garbage: only "*" lets it in.
		return slices.Contains(allowed, AnyOrigin)
	}
	for _, a := range allowed {
		if a == AnyOrigin || a == o {
			return true
		}
	}
	return false
}

package tracing

import (
	"net/http"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// HTTPOptions configure Middleware.
type HTTPOptions struct {
	// TracerProvider makes the spans; nil makes none, and the middleware
	// passes requests straight through.
	TracerProvider trace.TracerProvider
	// Skip, when set, leaves requests it reports true for untraced
	// (health probes: one span every few seconds per pod, telling nothing).
	Skip func(c *echo.Context) bool
}

// Middleware gives every HTTP request a server span named after its route
// ("POST /v1/projects/:p/events"), the child of the caller's span when the
// request carries a W3C traceparent — so a trace continues the caller's
// trace id. The handler's request context holds the span, so what it
// publishes (pkg/trigger) is the span's child.
//
// It is echo middleware (e.Use) rather than an http.Handler wrapper because
// only the router knows the route, and a span name with raw paths (project
// ids, run ids) would make one span name per URL.
func Middleware(opts HTTPOptions) echo.MiddlewareFunc {
	if opts.TracerProvider == nil {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	tracer := Tracer(opts.TracerProvider)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if opts.Skip != nil && opts.Skip(c) {
				return next(c)
			}
			r := c.Request()
			route := c.Path()
			ctx, span := tracer.Start(ExtractHTTP(r.Context(), r.Header), r.Method+" "+route,
				trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			c.SetRequest(r.WithContext(ctx))
			if !span.IsRecording() {
				return next(c)
			}
			span.SetAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("http.route", route),
				attribute.String("url.path", r.URL.Path),
			)
			err := next(c)
			status := 0
			if err != nil {
				// The error handler writes the answer after the middleware
				// returns; the error says which status it will be.
				if status = echo.StatusCode(err); status == 0 {
					status = http.StatusInternalServerError
				}
			} else if resp, uerr := echo.UnwrapResponse(c.Response()); uerr == nil {
				status = resp.Status
			}
			if status != 0 {
				span.SetAttributes(attribute.Int("http.response.status_code", status))
			}
			// Server spans are errors for 5xx only: a 4xx is the caller's
			// mistake, answered as designed.
			if status >= 500 {
				msg := http.StatusText(status)
				if err != nil {
					msg = err.Error()
				}
				span.SetStatus(codes.Error, msg)
			}
			return err
		}
	}
}

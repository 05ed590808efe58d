package app

import (
	"context"
	"errors"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// SharedRole is the role label of the routes every process serves whatever
// its roles (/openapi.json; the health probes are not counted).
const SharedRole = "shared"

// routeRoles says which role mounted each route, keyed by method and path
// as registered. It is filled while Start mounts the routes and only read
// once the server serves, so it needs no lock.
type routeRoles map[string]string

func routeKey(method, path string) string { return method + " " + path }

// mount registers r's routes on e and records them as r's.
func (rr routeRoles) mount(e *echo.Echo, r service.Role) {
	before := map[string]bool{}
	for _, ri := range e.Router().Routes() {
		before[routeKey(ri.Method, ri.Path)] = true
	}
	r.Register(e)
	for _, ri := range e.Router().Routes() {
		if k := routeKey(ri.Method, ri.Path); !before[k] {
			rr[k] = r.Name()
		}
	}
}

func (rr routeRoles) role(method, path string) string {
	if role, ok := rr[routeKey(method, path)]; ok {
		return role
	}
	return SharedRole
}

// httpMetrics is the HTTP server's request metrics middleware; like the
// spans, the health probes are left out.
func httpMetrics(m *metrics.Metrics, rr routeRoles) echo.MiddlewareFunc {
	return httpx.Metrics(httpx.MetricsOptions{Metrics: m, Role: rr.role, Skip: func(c *echo.Context) bool {
		switch c.Request().URL.Path {
		case "/healthz", "/readyz":
			return true
		}
		return false
	}})
}

// readinessGauge exports /readyz's evaluation as switchboard_ready{check}:
// the shutdown state and every named check (nats, a role's own).
func readinessGauge(m *metrics.Metrics, h *service.Health) error {
	return m.WatchReadiness(func() map[string]bool {
		r, _ := h.Ready()
		out := make(map[string]bool, len(r.Checks))
		for name, res := range r.Checks {
			out[name] = res.Status == service.StatusOK
		}
		return out
	})
}

// countPublishFailure is the trigger Publisher's Failed hook.
func countPublishFailure(m *metrics.Metrics) func(error) {
	return func(err error) { m.PublishFailures.WithLabelValues(publishFailureReason(err)).Inc() }
}

// publishFailureReason sorts a trigger publish error into one of
// metrics.PublishFailureReasons, the same way ingress tells its callers
// what happened (services/ingress: notSent, outcome_unknown).
func publishFailureReason(err error) string {
	switch {
	case errors.Is(err, wire.ErrInvalid), errors.Is(err, trigger.ErrDedupeConflict):
		return metrics.PublishInvalid
	case errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrUnencodable):
		return metrics.PublishTooLarge
	case errors.Is(err, context.Canceled):
		return metrics.PublishCanceled
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return metrics.PublishUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return metrics.PublishTimeout
	}
	return metrics.PublishOther
}

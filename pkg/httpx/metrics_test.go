package httpx_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
)

// TestMetrics: each answer is counted once under the role that mounted its
// route, the route as registered and the class of the status the client
// got — a handler's error as the error handler answers it, a panic as the
// 500 Recover sends — and its duration observed; an unmatched path or a
// made-up method makes no series of its own, and skipped requests none.
func TestMetrics(t *testing.T) {
	m := metrics.New()
	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	e.Use(httpx.Metrics(httpx.MetricsOptions{
		Metrics: m,
		Role: func(method, path string) string {
			if strings.HasPrefix(path, "/v1/hooks/") {
				return "webhook-receiver"
			}
			return "ingress"
		},
		Skip: func(c *echo.Context) bool { return c.Request().URL.Path == "/healthz" },
	}))
	e.GET("/healthz", func(c *echo.Context) error { return c.NoContent(http.StatusOK) })
	e.GET("/v1/things/:id", func(c *echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"id": c.Param("id")}) })
	e.POST("/v1/things", func(c *echo.Context) error { return apierr.BadRequest("bad_thing", "no") })
	e.PUT("/v1/things/:id", func(c *echo.Context) error { return errors.New("the store fell over") })
	e.DELETE("/v1/things/:id", func(c *echo.Context) error { panic("a bug") })
	e.GET("/v1/quiet", func(c *echo.Context) error { return nil })
	e.Any("/v1/hooks/:p", func(c *echo.Context) error { return c.NoContent(http.StatusAccepted) })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, method, path        string
		wantStatus                int
		role, label, route, class string
	}{
		{"ok", "GET", "/v1/things/a", 200, "ingress", "GET", "/v1/things/:id", "2xx"},
		{"ok again, same series", "GET", "/v1/things/b", 200, "ingress", "GET", "/v1/things/:id", "2xx"},
		{"api error", "POST", "/v1/things", 400, "ingress", "POST", "/v1/things", "4xx"},
		{"plain error", "PUT", "/v1/things/a", 500, "ingress", "PUT", "/v1/things/:id", "5xx"},
		{"panic", "DELETE", "/v1/things/a", 500, "ingress", "DELETE", "/v1/things/:id", "5xx"},
		{"nothing written", "GET", "/v1/quiet", 200, "ingress", "GET", "/v1/quiet", "2xx"},
		{"unmatched path", "GET", "/no/such/path", 404, "", "GET", httpx.UnmatchedRoute, "4xx"},
		{"another unmatched path", "GET", "/no/other", 404, "", "GET", httpx.UnmatchedRoute, "4xx"},
		{"method not allowed", "PATCH", "/v1/things", 405, "", "PATCH", httpx.UnmatchedRoute, "4xx"},
		{"made-up method on an Any route", "BREW", "/v1/hooks/p1", 202, "webhook-receiver", httpx.OtherMethod, "/v1/hooks/:p", "2xx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.wantStatus)
			}
		})
	}
	for _, w := range []struct {
		role, method, route, class string
		n                          float64
	}{
		{"ingress", "GET", "/v1/things/:id", "2xx", 2},
		{"ingress", "POST", "/v1/things", "4xx", 1},
		{"ingress", "PUT", "/v1/things/:id", "5xx", 1},
		{"ingress", "DELETE", "/v1/things/:id", "5xx", 1},
		{"ingress", "GET", "/v1/quiet", "2xx", 1},
		{"", "GET", httpx.UnmatchedRoute, "4xx", 2},
		{"", "PATCH", httpx.UnmatchedRoute, "4xx", 1},
		{"webhook-receiver", httpx.OtherMethod, "/v1/hooks/:p", "2xx", 1},
	} {
		if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues(w.role, w.method, w.route, w.class)); got != w.n {
			t.Errorf("requests{%s %s %s %s} = %v, want %v", w.role, w.method, w.route, w.class, got, w.n)
		}
	}
	// One series per label set above, none for /healthz.
	if n := testutil.CollectAndCount(m.HTTPRequests); n != 8 {
		t.Errorf("%d request series, want 8", n)
	}
	if n := testutil.CollectAndCount(m.HTTPDuration); n != 8 {
		t.Errorf("%d duration series, want 8 (one per role, method and route)", n)
	}
}

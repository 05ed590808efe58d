package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// series reads the registry of a as "name{label=value,…} value" lines of
// the families named, labels sorted, so a test compares plain strings.
func series(t *testing.T, a *App, names ...string) map[string]float64 {
	t.Helper()
	fams, err := a.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+f.GetName()+" ") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// TestProcessMetrics: a process counts its HTTP answers by the role that
// mounted the route, exports each readiness check of /readyz as a gauge
// (shutdown 0 as soon as Stop begins), and counts the trigger publishes
// that failed, by reason, with every reason there at 0 from the start.
func TestProcessMetrics(t *testing.T) {
	var draining map[string]float64
	opts := options(t)
	var a *App
	opts.notReady = func() { draining = series(t, a, "switchboard_ready") }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.HTTPAddr()

	for _, r := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/v1/projects/p/events", http.StatusUnauthorized},
		{http.MethodPost, "/v1/projects/p/events", http.StatusUnauthorized},
		{http.MethodGet, "/v1/projects/p/runs", http.StatusUnauthorized},
		{http.MethodGet, "/openapi.json", http.StatusOK},
		{http.MethodGet, "/no/such/route", http.StatusNotFound},
		{http.MethodGet, "/readyz", http.StatusOK},
		{http.MethodGet, "/healthz", http.StatusOK},
	} {
		if got := status(t, r.method, addr, r.path); got != r.want {
			t.Fatalf("%s %s: %d, want %d", r.method, r.path, got, r.want)
		}
	}
	got := series(t, a, "switchboard_http_requests_total")
	want := map[string]float64{
		"switchboard_http_requests_total{method=POST,role=ingress,route=/v1/projects/:p/events,status=4xx}": 2,
		"switchboard_http_requests_total{method=GET,role=history,route=/v1/projects/:p/runs,status=4xx}":    1,
		"switchboard_http_requests_total{method=GET,role=shared,route=/openapi.json,status=2xx}":            1,
		"switchboard_http_requests_total{method=GET,role=,route=" + httpx.UnmatchedRoute + ",status=4xx}":   1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("request series (the probes left out):\n got %v\nwant %v", got, want)
	}
	if d := series(t, a, "switchboard_http_request_duration_seconds"); len(d) != 4 {
		t.Errorf("duration series %v, want one per role, method and route (4)", d)
	}

	ready := series(t, a, "switchboard_ready")
	if want := map[string]float64{
		"switchboard_ready{check=shutdown}": 1, "switchboard_ready{check=nats}": 1, "switchboard_ready{check=history}": 1,
	}; fmt.Sprint(ready) != fmt.Sprint(want) {
		t.Errorf("readiness gauge %v, want %v", ready, want)
	}

	// Every producer publishes through Deps.Triggers: its failures count.
	if _, err := a.Triggers.Publish(ctx, &sbv1.TriggerEvent{Project: "p"}); err == nil {
		t.Fatal("an event without id or kind was published")
	}
	failures := series(t, a, "switchboard_trigger_publish_failures_total")
	for _, reason := range metrics.PublishFailureReasons() {
		n, ok := failures["switchboard_trigger_publish_failures_total{reason="+reason+"}"]
		wantN := 0.0
		if reason == metrics.PublishInvalid {
			wantN = 1
		}
		if !ok || n != wantN {
			t.Errorf("publish failures %s = %v (exported: %t), want %v", reason, n, ok, wantN)
		}
	}

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := a.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if draining["switchboard_ready{check=shutdown}"] != 0 || draining["switchboard_ready{check=nats}"] != 1 {
		t.Errorf("readiness gauge while stopping %v, want shutdown 0 and nats 1", draining)
	}
}

func TestPublishFailureReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"invalid event", fmt.Errorf("trigger: %w: event without id", wire.ErrInvalid), metrics.PublishInvalid},
		{"dedupe key reused", fmt.Errorf("trigger: %w", trigger.ErrDedupeConflict), metrics.PublishInvalid},
		{"too large", fmt.Errorf("trigger: %w", wire.TooLarge("event", 2<<20, 1<<20)), metrics.PublishTooLarge},
		{"unencodable", wire.Unencodable(errors.New("invalid UTF-8")), metrics.PublishTooLarge},
		{"no stream leader", fmt.Errorf("trigger: publish: %w", jetstream.ErrNoStreamResponse), metrics.PublishUnavailable},
		{"no responders", fmt.Errorf("trigger: publish: %w", nats.ErrNoResponders), metrics.PublishUnavailable},
		{"connection closed", fmt.Errorf("trigger: publish: %w", nats.ErrConnectionClosed), metrics.PublishUnavailable},
		{"reconnecting", fmt.Errorf("trigger: publish: %w", nats.ErrReconnectBufExceeded), metrics.PublishUnavailable},
		{"ack timeout", fmt.Errorf("trigger: publish: %w", context.DeadlineExceeded), metrics.PublishTimeout},
		{"nats timeout", fmt.Errorf("trigger: publish: %w", nats.ErrTimeout), metrics.PublishTimeout},
		{"caller gone", fmt.Errorf("trigger: publish: %w", context.Canceled), metrics.PublishCanceled},
		{"anything else", errors.New("stream sealed"), metrics.PublishOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := publishFailureReason(tc.err); got != tc.want {
				t.Fatalf("publishFailureReason(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// Package metrics holds Switchboard's Prometheus metrics. One Metrics value
// is created per process (on its own registry, no globals) and shared by the
// services running in it.
package metrics

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the counters every service may update.
type Metrics struct {
	Registry         *prometheus.Registry
	TriggersReceived *prometheus.CounterVec   // project, kind
	TriggersRouted   *prometheus.CounterVec   // outcome: routed, dead
	RunsDispatched   *prometheus.CounterVec   // project
	RunsFinished     *prometheus.CounterVec   // status
	RunDuration      *prometheus.HistogramVec // status
	ConsumerPending  *prometheus.GaugeVec     // stream, consumer
	// HTTPRequests and HTTPDuration are every answered API request, by the
	// role whose route it matched (httpx.Metrics fills them).
	HTTPRequests *prometheus.CounterVec   // role, method, route, status (2xx…5xx)
	HTTPDuration *prometheus.HistogramVec // role, method, route
	// PublishFailures are trigger publishes that returned an error, by
	// PublishFailureReasons; every reason is created at 0 so rate() and
	// increase() see the first failure.
	PublishFailures *prometheus.CounterVec // reason
}

// The label values of HTTPRequests' status: the status class.
const (
	Status2xx = "2xx"
	Status3xx = "3xx"
	Status4xx = "4xx"
	Status5xx = "5xx"
)

// StatusClass is the status label of an HTTP status code; anything outside
// 200–599 (a 1xx, a code no server sends) counts as 5xx, since it cannot
// have been a proper answer.
func StatusClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return Status2xx
	case code >= 300 && code < 400:
		return Status3xx
	case code >= 400 && code < 500:
		return Status4xx
	default:
		return Status5xx
	}
}

// The reasons of PublishFailures. invalid and too_large are refusals of the
// event itself, answered 4xx; the others are the bus not storing a valid
// event, which the alerts watch.
const (
	PublishInvalid     = "invalid"     // no id, unknown kind, too many hops, a forbidden header
	PublishTooLarge    = "too_large"   // over the record or header budget, or unencodable
	PublishUnavailable = "unavailable" // no JetStream answer: no stream leader, no responders, JetStream off
	PublishTimeout     = "timeout"     // no ack in time: stored or not is unknown
	PublishCanceled    = "canceled"    // the caller gave up (request ended, shutdown)
	PublishOther       = "other"
)

// PublishFailureReasons lists every reason label of PublishFailures.
func PublishFailureReasons() []string {
	return []string{PublishInvalid, PublishTooLarge, PublishUnavailable, PublishTimeout, PublishCanceled, PublishOther}
}

// New registers the metrics on a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		TriggersReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_triggers_received_total", Help: "Trigger events accepted and stored in JetStream.",
		}, []string{"project", "kind"}),
		TriggersRouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_triggers_routed_total", Help: "Trigger events the router decided on, by outcome.",
		}, []string{"outcome"}),
		RunsDispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_runs_dispatched_total", Help: "Runs published to the RUNS stream.",
		}, []string{"project"}),
		RunsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_runs_finished_total", Help: "Runs that reached a final status.",
		}, []string{"status"}),
		RunDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_run_duration_seconds", Help: "Run duration from start to final status.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"status"}),
		ConsumerPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_consumer_pending", Help: "Messages not yet delivered to a consumer.",
		}, []string{"stream", "consumer"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_http_requests_total", Help: "HTTP requests answered, by role, matched route and status class.",
		}, []string{"role", "method", "route", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_http_request_duration_seconds", Help: "Time from a request's routing to its answer, by role and matched route.",
			// 1 ms to ~16 s: a synchronous trigger waits for its run.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"role", "method", "route"}),
		PublishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_trigger_publish_failures_total", Help: "Trigger events a producer failed to publish to TRIGGERS, by reason.",
		}, []string{"reason"}),
	}
	for _, reason := range PublishFailureReasons() {
		m.PublishFailures.WithLabelValues(reason)
	}
	r.MustRegister(m.TriggersReceived, m.TriggersRouted, m.RunsDispatched, m.RunsFinished, m.RunDuration, m.ConsumerPending,
		m.HTTPRequests, m.HTTPDuration, m.PublishFailures)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// WatchReadiness registers switchboard_ready{check}: 1 for each readiness
// check that passes, 0 for each that fails, evaluated at every scrape by
// calling checks (the same evaluation /readyz answers with), so the gauge
// is never staler than the scrape. checks must be cheap and not block.
func (m *Metrics) WatchReadiness(checks func() map[string]bool) error {
	if err := m.Registry.Register(readiness{checks}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

var readyDesc = prometheus.NewDesc("switchboard_ready",
	"1 while a named readiness check of /readyz passes, 0 while it fails (shutdown: the process is between its start and its stop).",
	[]string{"check"}, nil)

type readiness struct{ checks func() map[string]bool }

func (readiness) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

func (r readiness) Collect(ch chan<- prometheus.Metric) {
	for name, ok := range r.checks() {
		v := 0.0
		if ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, name)
	}
}

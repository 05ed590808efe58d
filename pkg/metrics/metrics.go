// Package metrics holds Switchboard's Prometheus metrics. One Metrics value
// is created per process (on its own registry, no globals) and shared by the
// services running in it.
package metrics

import (
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
	}
	r.MustRegister(m.TriggersReceived, m.TriggersRouted, m.RunsDispatched, m.RunsFinished, m.RunDuration, m.ConsumerPending)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

package consume

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a consumer's collectors. Every consumer of a process registers
// the same vectors on the same Registerer; the first registration wins and
// later ones reuse it (prometheus.AlreadyRegisteredError), so consumers can
// be started and stopped (a Group adds one per key) without coordination.
//
// The pending gauge deliberately has the name, help and labels of
// pkg/metrics' ConsumerPending: on a registry made by metrics.New it is the
// same series, so dashboards keep working once a service moves onto this
// package and drops its own polling.
type metrics struct {
	handled  prometheus.Counter
	acked    prometheus.Counter
	retried  prometheus.Counter
	dead     prometheus.Counter
	duration prometheus.Observer
	pending  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	counter := func(metric, help string) (*prometheus.CounterVec, error) {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_" + metric, Help: help,
		}, []string{"consumer"}))
	}
	handled, err := counter("handled_total", "Messages a consumer's handler finished with, whatever the outcome.")
	if err != nil {
		return nil, err
	}
	acked, err := counter("acked_total", "Messages acknowledged after their handler succeeded.")
	if err != nil {
		return nil, err
	}
	retried, err := counter("retried_total", "Deliveries handed back for a later redelivery after a failure.")
	if err != nil {
		return nil, err
	}
	dead, err := counter("dead_lettered_total", "Messages copied to a dead letter and terminated.")
	if err != nil {
		return nil, err
	}
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchboard_consumer_handler_duration_seconds", Help: "Time a consumer's handler took per delivery.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"consumer"}))
	if err != nil {
		return nil, err
	}
	pending, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_consumer_pending", Help: "Messages not yet delivered to a consumer.",
	}, []string{"stream", "consumer"}))
	if err != nil {
		return nil, err
	}
	return &metrics{
		handled:  handled.WithLabelValues(name),
		acked:    acked.WithLabelValues(name),
		retried:  retried.WithLabelValues(name),
		dead:     dead.WithLabelValues(name),
		duration: duration.WithLabelValues(name),
		pending:  pending,
	}, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("consume: register metrics: %w", err)
}

// The helpers below make a consumer without a Registerer free of nil checks.

func (m *metrics) incHandled() {
	if m != nil {
		m.handled.Inc()
	}
}

func (m *metrics) incAcked() {
	if m != nil {
		m.acked.Inc()
	}
}

func (m *metrics) incRetried() {
	if m != nil {
		m.retried.Inc()
	}
}

func (m *metrics) incDead() {
	if m != nil {
		m.dead.Inc()
	}
}

func (m *metrics) observe(seconds float64) {
	if m != nil {
		m.duration.Observe(seconds)
	}
}

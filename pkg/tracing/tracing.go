// Package tracing is Switchboard's one place for OpenTelemetry plumbing
// shared by the roles: a W3C trace-context carrier over NATS headers, the
// HTTP intake middleware, and small helpers to start and end spans.
//
// It holds no provider of its own and never touches otel's global one: every
// role gets its trace.TracerProvider through its Options (the composition
// root builds it from the OTEL_* environment), and a nil provider means
// "not traced": the roles then skip their tracing work altogether, so a
// process without tracing pays nothing for it on the hot paths, and an
// incoming traceparent is still copied into the envelope and the trigger's
// header as before.
//
// Only W3C trace context is propagated (traceparent, tracestate), not
// baggage: the envelope has a field for the traceparent only, and baggage
// from an app's caller has no business in every run's headers.
package tracing

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of every Switchboard span.
const ScopeName = "github.com/switchboard-hq/switchboard"

// Attribute keys of Switchboard's own span attributes.
const (
	AttrProject  = attribute.Key("switchboard.project")
	AttrEventID  = attribute.Key("switchboard.event.id")
	AttrKind     = attribute.Key("switchboard.event.kind")
	AttrRunID    = attribute.Key("switchboard.run.id")
	AttrWorkflow = attribute.Key("switchboard.workflow")
	AttrStepID   = attribute.Key("switchboard.step.id")
	AttrStepType = attribute.Key("switchboard.step.type")
	AttrAttempt  = attribute.Key("switchboard.step.attempt")
	AttrStatus   = attribute.Key("switchboard.status")
)

// Tracer returns Switchboard's tracer from tp; a nil tp gives a no-op
// tracer, so a role built without a provider needs no checks.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

// propagator is stateless; a value per call keeps the package free of
// package-level state.
func propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// HeaderCarrier is a propagation.TextMapCarrier over NATS message headers.
// NATS header names are case-sensitive; the W3C names are lower case
// (wire.HeaderTraceparent), and that is what Set writes and Get reads.
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set replaces the values of key with value.
func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Inject writes ctx's span context into h (traceparent, tracestate). A
// context without a valid span context writes nothing. h must not be nil
// (nats.NewMsg makes one).
func Inject(ctx context.Context, h nats.Header) {
	propagator().Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx with the remote span context h carries, if any.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return propagator().Extract(ctx, HeaderCarrier(h))
}

// InjectHTTP writes ctx's span context into outgoing HTTP headers.
func InjectHTTP(ctx context.Context, h http.Header) {
	propagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// ExtractHTTP returns ctx with the remote span context of incoming HTTP
// headers, if any (a malformed traceparent is ignored).
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	return propagator().Extract(ctx, propagation.HeaderCarrier(h))
}

// Traceparent returns the W3C traceparent of ctx's span, or "" when ctx has
// no valid span context.
func Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagator().Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceparent returns ctx with the remote span context of a W3C
// traceparent (an envelope's Trace); a malformed or empty one leaves ctx
// as it is.
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator().Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// SpanContextOf returns the span context a W3C traceparent stands for
// (invalid when it is malformed).
func SpanContextOf(traceparent string) trace.SpanContext {
	return trace.SpanContextFromContext(WithTraceparent(context.Background(), traceparent))
}

// End ends span, recording err (if any) as its error status. A context
// cancellation is recorded too: it is why the work stopped.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Fail marks span as failed with msg without ending it: a run or step that
// failed is a result, not a Go error.
func Fail(span trace.Span, msg string) {
	span.SetStatus(codes.Error, msg)
}

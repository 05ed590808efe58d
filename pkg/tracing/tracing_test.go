package tracing_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-hq/switchboard/pkg/tracing"
)

// A span's context survives a trip through NATS headers, and a malformed
// traceparent is ignored rather than trusted.
func TestHeaderCarrierRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tracing.Tracer(tp).Start(context.Background(), "x")
	defer span.End()

	h := nats.Header{}
	tracing.Inject(ctx, h)
	if got, want := h.Get("traceparent"), tracing.Traceparent(ctx); got == "" || got != want {
		t.Fatalf("traceparent header %q, want %q", got, want)
	}
	got := trace.SpanContextFromContext(tracing.Extract(context.Background(), h))
	if !got.IsRemote() || got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("extracted %v, want the span's context %v as remote", got, span.SpanContext())
	}
	h.Set("traceparent", "00-not-a-trace-01")
	if sc := trace.SpanContextFromContext(tracing.Extract(context.Background(), h)); sc.IsValid() {
		t.Fatalf("malformed traceparent extracted as %v", sc)
	}
}

// Without a provider nothing is recorded, but a parent's context is passed
// on: an incoming traceparent still reaches the envelope and the headers.
func TestNoProviderPassesTheParentOn(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx, span := tracing.Tracer(nil).Start(tracing.WithTraceparent(context.Background(), tp), "x")
	defer span.End()
	if span.IsRecording() {
		t.Fatal("a nil provider recorded a span")
	}
	if got := tracing.Traceparent(ctx); got != tp {
		t.Fatalf("traceparent %q, want the parent's %q", got, tp)
	}
}

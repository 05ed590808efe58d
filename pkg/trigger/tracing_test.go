package trigger_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/tracing"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// With a TracerProvider, Publish's producer span is the child of ctx's span
// or, without one, of the traceparent the event carries; the stored
// envelope and its traceparent header both name the producer span, which
// is what the router's span becomes the child of. An event carrying another
// trace (a replay) published under a span keeps a link to it.
func TestPublishSpan(t *testing.T) {
	srv := brokertest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	pub, err := trigger.New(context.Background(), trigger.Options{JS: srv.JS, Budgets: wire.FromConn(srv.NC), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	carried := tracing.SpanContextOf(traceparent)
	reqCtx, reqSpan := tracing.Tracer(tp).Start(context.Background(), "request")
	reqSpan.End()

	for _, tc := range []struct {
		name      string
		ctx       context.Context
		trace     string
		parent    trace.SpanContext
		linkedTo  trace.SpanContext
		wantTrace trace.TraceID
	}{
		{name: "the envelope's traceparent", ctx: context.Background(), trace: traceparent, parent: carried, wantTrace: carried.TraceID()},
		{name: "ctx's span", ctx: reqCtx, parent: reqSpan.SpanContext(), wantTrace: reqSpan.SpanContext().TraceID()},
		{name: "ctx's span, another trace carried", ctx: reqCtx, trace: traceparent, parent: reqSpan.SpanContext(),
			linkedTo: carried, wantTrace: reqSpan.SpanContext().TraceID()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp.Reset()
			ev := appEvent("u1")
			ev.Trace = tc.trace
			ctx, cancel := context.WithTimeout(tc.ctx, 20*time.Second)
			defer cancel()
			res, err := pub.Publish(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 || spans[0].Name != "publish "+subjects.StreamTriggers || spans[0].SpanKind != trace.SpanKindProducer {
				t.Fatalf("spans %v, want one producer span", spans)
			}
			s := spans[0]
			if s.Parent.SpanID() != tc.parent.SpanID() || s.SpanContext.TraceID() != tc.wantTrace {
				t.Fatalf("span %s/%s with parent %s, want trace %s and parent %s",
					s.SpanContext.TraceID(), s.SpanContext.SpanID(), s.Parent.SpanID(), tc.wantTrace, tc.parent.SpanID())
			}
			if tc.linkedTo.IsValid() != (len(s.Links) == 1) || (tc.linkedTo.IsValid() && s.Links[0].SpanContext.SpanID() != tc.linkedTo.SpanID()) {
				t.Fatalf("links %v, want one to %v: %v", s.Links, tc.linkedTo.IsValid(), tc.linkedTo.SpanID())
			}
			msgs := stored(t, srv.JS, res.Subject)
			m := msgs[len(msgs)-1]
			got, err := envelope.Decode(m.Data, m.Header.Get(envelope.HeaderContentType))
			if err != nil {
				t.Fatal(err)
			}
			sc := tracing.SpanContextOf(got.Trace)
			if sc.TraceID() != tc.wantTrace || sc.SpanID() != s.SpanContext.SpanID() || m.Header.Get(wire.HeaderTraceparent) != got.Trace {
				t.Fatalf("stored trace %q, header %q; want the producer span %s", got.Trace, m.Header.Get(wire.HeaderTraceparent), s.SpanContext.SpanID())
			}
		})
	}
}

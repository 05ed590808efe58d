package trigger

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/tracing"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// startSpan starts Publish's producer span and makes ev.Trace its
// traceparent, which Publish then writes to the message's traceparent
// header too: the envelope is the durable record (a replay or a run message
// carries it on), the header is what a consumer reads without decoding.
//
// The parent is ctx's span (the HTTP request's, the step that emits) when
// it has one, else the traceparent ev.Trace already holds (a producer
// without a span of its own, like a replay from a background job). A
// replayed event published under a new request keeps a link to the trace
// it was first produced in.
//
// Without a TracerProvider it does nothing: ev.Trace stays the traceparent
// it was given, as it was before tracing, at no cost on the hot path.
func (p *Publisher) startSpan(ctx context.Context, ev *sbv1.TriggerEvent, subject string) (context.Context, trace.Span) {
	if p.tracer == nil {
		return ctx, noop.Span{}
	}
	var carried trace.SpanContext
	if wire.ValidTraceparent(ev.Trace) {
		carried = tracing.SpanContextOf(ev.Trace)
	}
	parent := ctx
	var opts []trace.SpanStartOption
	switch own := trace.SpanContextFromContext(ctx); {
	case !own.IsValid() && carried.IsValid():
		parent = trace.ContextWithRemoteSpanContext(ctx, carried)
	case own.IsValid() && carried.IsValid() && own.TraceID() != carried.TraceID():
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: carried}))
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindProducer))
	ctx, span := p.tracer.Start(parent, "publish "+subjects.StreamTriggers, opts...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("messaging.message.id", ev.Id),
			tracing.AttrProject.String(ev.Project),
			tracing.AttrKind.String(ev.Kind.String()),
		)
	}
	if tp := tracing.Traceparent(ctx); tp != "" {
		ev.Trace = tp
	}
	return ctx, span
}

// endSpan records what JetStream did with the event.
func endSpan(span trace.Span, res Result, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if err == nil {
		span.SetAttributes(tracing.AttrEventID.String(res.EventID), attribute.Bool("switchboard.duplicate", res.Duplicate))
	}
	tracing.End(span, err)
}

package router

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/tracing"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// The router's spans, one trace per trigger:
//
//	publish TRIGGERS (the producer's, pkg/trigger)
//	└─ decide          consumer: routing one trigger message
//	   ├─ publish RUNS producer: one per run message
//	   │  └─ run       consumer: one delivery of the run, on an executor
//	   │     └─ step <type>, one per step attempt
//	   └─ run          a request's run, executed in place
//
// The context travels in the messages' traceparent header (the trigger's is
// also its envelope's Trace, set by pkg/trigger).

// Without a TracerProvider the router does no tracing work at all (no
// header parsed or written, no span, no attribute): a schedule tick's
// fan-out publishes as many run messages as before, as small.

// traced reports whether the router makes spans.
func (s *Service) traced() bool { return s.opts.TracerProvider != nil }

// tracer is the router's tracer.
func (s *Service) tracer() trace.Tracer { return tracing.Tracer(s.opts.TracerProvider) }

// traceDecide is the router consumer's middleware: a consumer span per
// delivery of a trigger message, the child of its producer's span.
func (s *Service) traceDecide(next consume.Handler) consume.Handler {
	if !s.traced() {
		return next
	}
	return func(ctx context.Context, m jetstream.Msg) error {
		ctx, span := s.tracer().Start(tracing.Extract(ctx, m.Headers()), "decide", trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			span.SetAttributes(messageAttrs(m)...)
		}
		err := next(ctx, m)
		tracing.End(span, err)
		return err
	}
}

func messageAttrs(m jetstream.Msg) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", m.Subject()),
	}
	if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
		attrs = append(attrs, attribute.String("messaging.message.id", id))
	}
	if md, err := m.Metadata(); err == nil {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", md.Consumer),
			attribute.Int64("messaging.nats.delivery", int64(md.NumDelivered)))
	}
	return attrs
}

// tracePublishRun gives run message rm a producer span, the child of the
// decide span in ctx, and writes its context into rm's headers. The publish
// is asynchronous (its ack is awaited with the decision's), so the span
// ends when the message is handed to the connection.
func (s *Service) tracePublishRun(ctx context.Context, rm *nats.Msg, c runs.Candidate) {
	if !s.traced() {
		return
	}
	ctx, span := s.tracer().Start(ctx, "publish "+subjects.StreamRuns, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", rm.Subject),
			attribute.String("messaging.message.id", c.RunID),
			tracing.AttrRunID.String(c.RunID), tracing.AttrWorkflow.String(c.Workflow),
		)
	}
	// A span not sampled is propagated too: its flags tell the executor not
	// to sample the run either.
	tracing.Inject(ctx, rm.Header)
	span.End()
}

// startRun starts the span of one delivery of a run: the child of ctx's
// span for a request's run executed in place (the decide span), else of
// the run message's producer span (its traceparent header), else of the
// trigger's (its envelope).
func (s *Service) startRun(ctx context.Context, m jetstream.Msg, ref runRef, ev *sbv1.TriggerEvent) (context.Context, trace.Span) {
	if !s.traced() {
		return ctx, noop.Span{}
	}
	kind := trace.SpanKindInternal
	if !trace.SpanContextFromContext(ctx).IsValid() {
		kind = trace.SpanKindConsumer
		if ctx = tracing.Extract(ctx, m.Headers()); !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = tracing.WithTraceparent(ctx, ev.Trace)
		}
	}
	ctx, span := s.tracer().Start(ctx, "run", trace.WithSpanKind(kind))
	if span.IsRecording() {
		span.SetAttributes(append(messageAttrs(m), tracing.AttrRunID.String(ref.id), tracing.AttrWorkflow.String(ref.workflow),
			tracing.AttrProject.String(ev.Project), tracing.AttrEventID.String(ev.Id))...)
	}
	return ctx, span
}

// endRun ends a run's span with what the delivery came to: the run's
// status, or the error that hands the message back. A step waiting for its
// next attempt is not an error of the run.
func endRun(span trace.Span, x *execution, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if x != nil && x.run != nil {
		span.SetAttributes(tracing.AttrStatus.String(string(x.run.Status)))
		if x.run.Status == runs.StatusFailed {
			tracing.Fail(span, x.run.Error)
		}
	}
	var later retryLater
	if errors.As(err, &later) || errors.Is(err, errNotDue) {
		span.SetAttributes(attribute.String("switchboard.retry_in", later.after.String()))
		err = nil
	}
	tracing.End(span, err)
}

// tracedStep runs one attempt of st in a span of its own, so the http step's
// request (which carries the span's traceparent), an emit step's publish and
// a function call are its children.
func (x *execution) tracedStep(ctx context.Context, st *workflow.Step) (runs.Step, time.Duration) {
	if !x.s.traced() {
		return x.runStep(ctx, st)
	}
	ctx, span := x.s.tracer().Start(ctx, "step "+st.Type)
	if !span.IsRecording() {
		defer span.End()
		return x.runStep(ctx, st)
	}
	span.SetAttributes(tracing.AttrStepID.String(st.ID), tracing.AttrStepType.String(st.Type), tracing.AttrRunID.String(x.run.ID))
	rec, retryIn := x.runStep(ctx, st)
	span.SetAttributes(tracing.AttrStatus.String(string(rec.Status)), tracing.AttrAttempt.Int(rec.Attempts))
	if rec.Status == runs.StepFailed {
		tracing.Fail(span, rec.Error)
	}
	span.End()
	return rec, retryIn
}

// Package trigger is the one producer contract: every producer of trigger
// events — ingress, the emit step, replay, the webhook receiver, the
// scheduler, connection lifecycle — publishes through a Publisher, so every
// trigger on TRIGGERS has the same subject scheme, headers, size check, dedupe
// id and hop count, and a publish error means the same thing everywhere.
//
// What Publish guarantees for a returned nil error: JetStream stored the event
// (or already had it, Result.Duplicate), on Subject(ev), with
//
//   - Nats-Msg-Id = ev.Id, so a republish inside the stream's duplicate
//     window is absorbed;
//   - Content-Type: application/protobuf and the envelope as protobuf;
//   - traceparent from ev.Trace when it is a well-formed W3C traceparent
//     (a malformed one is dropped, not an error), tracestate by option;
//     with a TracerProvider, ev.Trace is first set to Publish's producer
//     span (a child of ctx's span, else of the ev.Trace given), so the
//     router's span is its child (see startSpan);
//   - Sb-Hops = ev.Hops when it is not 0 (ChildOf sets it);
//   - any header added by option (WithCatalogRevision, WithHeader).
//
// An event that cannot fit — its encoding over Budgets.Record, its headers
// over Budgets.Headers — is refused before anything is published, with an
// error that wire.Permanent reports as permanent and that names the size and
// the limit. So is an invalid one (no id, no known kind, a bad project).
//
// Long-lived dedupe keys (WithDedupe), and the order of operations that keeps
// them crash-safe, are described at Dedupe.
package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/tracing"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Options configure a Publisher.
type Options struct {
	// JS publishes; required.
	JS jetstream.JetStream
	// Budgets bound what is published; the zero value means the stock 1 MB
	// server's (wire.BudgetsFor(0)). Pass wire.FromConn(nc).
	Budgets wire.Budgets
	// Logger receives what Publish cannot return: a dedupe claim left
	// pending after a stored event. Nil discards.
	Logger *slog.Logger
	// Dedupe is the sb_dedupe KV bucket (subjects.BucketDedupe, made by
	// broker.Provision). Nil refuses the WithDedupe option.
	Dedupe jetstream.KeyValue
	// DuplicateWindow is the TRIGGERS stream's duplicate window, which the
	// dedupe claims are timed against. Zero means: read it from the stream
	// in New (only when Dedupe is set).
	DuplicateWindow time.Duration
	// TracerProvider makes each Publish's producer span; nil traces
	// nothing (ev.Trace is passed on as it is).
	TracerProvider trace.TracerProvider
	// Failed, when set, is called with every error Publish returns, so the
	// composition root counts failed publishes for every producer in one
	// place (switchboard_trigger_publish_failures_total).
	Failed func(err error)
}

// Publisher publishes trigger events. It is safe for concurrent use.
type Publisher struct {
	js      jetstream.JetStream
	budgets wire.Budgets
	log     *slog.Logger
	kv      jetstream.KeyValue
	window  time.Duration
	tracer  trace.Tracer // nil: not traced
	failed  func(error)  // nil: not told

	// legacySince: since when InSubject claims are written here; before
	// it, claims lived in sb_dedupe only (zero: never, see legacySince).
	legacySince time.Time
}

// New returns a Publisher. With opts.Dedupe set and no DuplicateWindow it
// reads the TRIGGERS stream's configuration, so the stream must exist.
func New(ctx context.Context, opts Options) (*Publisher, error) {
	if opts.JS == nil {
		return nil, errors.New("trigger: Options.JS is required")
	}
	if opts.Budgets.Record <= 0 {
		opts.Budgets = wire.BudgetsFor(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{js: opts.JS, budgets: opts.Budgets, log: opts.Logger, kv: opts.Dedupe, window: opts.DuplicateWindow, failed: opts.Failed}
	if opts.TracerProvider != nil {
		p.tracer = tracing.Tracer(opts.TracerProvider)
	}
	if p.kv != nil {
		var err error
		if p.legacySince, err = legacySince(ctx, p.kv); err != nil {
			return nil, err
		}
	}
	if p.kv != nil && p.window <= 0 {
		s, err := opts.JS.Stream(ctx, subjects.StreamTriggers)
		if err != nil {
			return nil, fmt.Errorf("trigger: read the duplicate window of %s: %w", subjects.StreamTriggers, err)
		}
		if p.window = s.CachedInfo().Config.Duplicates; p.window <= 0 {
			p.window = defaultServerWindow
		}
	}
	return p, nil
}

// defaultServerWindow is nats-server's duplicate window when a stream sets none.
const defaultServerWindow = 2 * time.Minute

// Result says what JetStream did with a published event.
type Result struct {
	// EventID is the id the event is stored under: ev.Id, or with
	// WithDedupe the id first claimed for the key.
	EventID string
	// Subject the event is stored on.
	Subject string
	// Stream and Sequence locate the stored event. Sequence is 0 for a
	// deduped event whose position the claim does not know.
	Stream   string
	Sequence uint64
	// Duplicate: the event was already stored (same Nats-Msg-Id inside the
	// stream's window, or a dedupe claim for the key); this call stored
	// nothing new. Answer the caller as for a first delivery.
	Duplicate bool
}

// PublishOption adds to one Publish.
type PublishOption func(*publishOpts)

type publishOpts struct {
	headers []header
	parent  *sbv1.TriggerEvent
	dedupe  *Dedupe
	err     error
}

type header struct{ name, value string }

// WithHeader adds a header. Headers Publish sets itself (Content-Type,
// Nats-*, Sb-Hops, traceparent, tracestate) cannot be set this way: they come
// from the envelope and the other options, and Publish fails (wire.ErrInvalid)
// if one is given.
func WithHeader(name, value string) PublishOption {
	return func(o *publishOpts) {
		switch {
		case name == wire.HeaderContentType, name == wire.HeaderHops, name == wire.HeaderTraceparent,
			strings.HasPrefix(name, "Nats-"):
			o.err = errors.Join(o.err, fmt.Errorf("%w: header %s is set by Publish", wire.ErrInvalid, name))
		default:
			o.headers = append(o.headers, header{name, value})
		}
	}
}

// HeaderReplayOf marks a replayed trigger event with the id of the stored
// event it replays (a single-event replay, an integration's time-range
// replay). A range replay skips such events, so a range that reaches into
// its own output does not replay it again.
const HeaderReplayOf = "Sb-Replay-Of"

// WithCatalogRevision sets Sb-Catalog-Rev: the catalog revision the producer
// had seen, so the router waits until its copy is at least as new.
func WithCatalogRevision(rev uint64) PublishOption {
	return func(o *publishOpts) {
		o.headers = append(o.headers, header{wire.HeaderCatalogRevision, strconv.FormatUint(rev, 10)})
	}
}

// WithTraceState sets the W3C tracestate that goes with ev.Trace; it is left
// out when ev.Trace is not a valid traceparent, as the spec requires.
func WithTraceState(state string) PublishOption {
	return func(o *publishOpts) { o.headers = append(o.headers, header{wire.HeaderTracestate, state}) }
}

// ChildOf makes the event a child of parent, the trigger of the run that
// emits it: ev.Hops becomes parent.Hops+1 (so the router can stop an emit
// chain at its depth limit), and an event without a trace inherits the
// parent's. A parent already at wire.MaxHops makes Publish fail with
// wire.ErrInvalid.
func ChildOf(parent *sbv1.TriggerEvent) PublishOption {
	return func(o *publishOpts) { o.parent = parent }
}

// NewID returns a fresh event id (a ULID).
func NewID() string { return envelope.NewID() }

// DerivedID returns the event id for an event that must get the same id
// every time it is produced again (an emit step re-run after a crash):
// a ULID with time t and entropy hashed from parts.
func DerivedID(t time.Time, parts ...string) string { return envelope.DerivedID(t, parts...) }

// Publish publishes ev and returns once JetStream acknowledged it. See the
// package documentation for the contract. Publish sets ev.Hops (ChildOf),
// ev.Trace (traced) and, with WithDedupe, ev.Id; ev must not be used
// concurrently meanwhile.
func (p *Publisher) Publish(ctx context.Context, ev *sbv1.TriggerEvent, opts ...PublishOption) (res Result, err error) {
	if p.failed != nil {
		defer func() {
			if err != nil {
				p.failed(err)
			}
		}()
	}
	var o publishOpts
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return Result{}, fmt.Errorf("trigger: %w", o.err)
	}
	if ev == nil {
		return Result{}, fmt.Errorf("trigger: %w: nil trigger event", wire.ErrInvalid)
	}
	if o.parent != nil {
		if o.parent.GetHops() >= wire.MaxHops {
			return Result{}, fmt.Errorf("trigger: %w: the parent of event %s is already %d hops deep", wire.ErrInvalid, ev.Id, o.parent.GetHops())
		}
		ev.Hops = o.parent.GetHops() + 1
		if ev.Trace == "" {
			ev.Trace = o.parent.GetTrace()
		}
	}
	if ev.Hops > wire.MaxHops {
		return Result{}, fmt.Errorf("trigger: %w: event %s is %d hops deep, over %d", wire.ErrInvalid, ev.Id, ev.Hops, wire.MaxHops)
	}
	subject, err := Subject(ev)
	if err != nil {
		return Result{}, fmt.Errorf("trigger: %w", err)
	}
	ctx, span := p.startSpan(ctx, ev, subject)
	defer func() { endSpan(span, res, err) }()
	if o.dedupe != nil {
		return p.publishDeduped(ctx, ev, subject, &o)
	}
	if ev.Id == "" {
		return Result{}, fmt.Errorf("trigger: %w: event without id (use trigger.NewID, DerivedID or WithDedupe)", wire.ErrInvalid)
	}
	m, err := p.message(ev, subject, &o)
	if err != nil {
		return Result{}, err
	}
	return p.send(ctx, m, ev.Id)
}

// message encodes ev for subject and checks it against the budgets.
func (p *Publisher) message(ev *sbv1.TriggerEvent, subject string, o *publishOpts) (*nats.Msg, error) {
	if len(ev.Id) > wire.MaxIDLen {
		return nil, fmt.Errorf("trigger: %w: event id is %d bytes, over %d", wire.ErrInvalid, len(ev.Id), wire.MaxIDLen)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("trigger: event %s: %w", ev.Id, wire.Unencodable(err))
	}
	if len(data) > p.budgets.Record {
		return nil, fmt.Errorf("trigger: %w", wire.TooLarge(fmt.Sprintf("trigger event %s on %s", ev.Id, subject), len(data), p.budgets.Record))
	}
	m := nats.NewMsg(subject)
	m.Header.Set(wire.HeaderContentType, wire.ContentTypeProto)
	m.Header.Set(wire.HeaderMsgID, ev.Id)
	traced := wire.ValidTraceparent(ev.Trace)
	if traced {
		m.Header.Set(wire.HeaderTraceparent, ev.Trace)
	}
	if ev.Hops > 0 {
		m.Header.Set(wire.HeaderHops, wire.FormatHops(int(ev.Hops)))
	}
	for _, h := range o.headers {
		if h.name == wire.HeaderTracestate && !traced {
			continue
		}
		m.Header.Set(h.name, h.value)
	}
	if n := headerSize(m.Header); n > p.budgets.Headers {
		return nil, fmt.Errorf("trigger: %w", wire.TooLarge(fmt.Sprintf("headers of trigger event %s", ev.Id), n, p.budgets.Headers))
	}
	m.Data = data
	return m, nil
}

// headerSize is the encoded size of h as nats.go writes it.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// send publishes m and waits for JetStream's ack.
func (p *Publisher) send(ctx context.Context, m *nats.Msg, id string) (Result, error) {
	ack, err := p.js.PublishMsg(ctx, m)
	if err != nil {
		return Result{}, fmt.Errorf("trigger: publish event %s on %s: %w", id, m.Subject, err)
	}
	return Result{EventID: id, Subject: m.Subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

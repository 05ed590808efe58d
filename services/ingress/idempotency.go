package ingress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/idempotency"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// HeaderIdempotencyKey and HeaderReplayed are the idempotency headers.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
)

// Dedupe sources of Idempotency-Key requests: App Events share one key
// space per project (both event routes), request triggers have one per
// workflow. The acting user is part of the key, so two users' keys never
// collide.
const (
	sourceEvents   = "idempotency.evt"
	sourceRequests = "idempotency.req."
)

// idemKey is a request's Idempotency-Key as given and as the producer's
// dedupe.
type idemKey struct {
	header string
	dedupe trigger.Dedupe
}

// idempotencyKey turns the request's Idempotency-Key, if it has one, into
// the producer's long-lived dedupe (trigger.Dedupe), nil without one.
//
// Why the producer's dedupe and not a record of our own: the event id is
// derived from the key's claim and every retry of the key republishes that
// same id, so a call that timed out — the claim or the publish lost in an
// outage, or stored and its ack lost — is settled by the caller's retry: it
// finds the event stored (a duplicate, answered with the original ids and
// Idempotent-Replayed: true) or stores it now, under the same id. A claim
// is answered as "replayed" only once its event is known to be stored;
// nothing is released on failure, so no late publish can run beside the
// retry's event. parts are what must match for a repeat to be the same
// request: the claim keeps their fingerprint, and a different request with
// the key is 422 idempotency_key_reused.
func (s *Service) idempotencyKey(c *echo.Context, source, user string, parts ...[]byte) (*idemKey, error) {
	key := c.Request().Header.Get(HeaderIdempotencyKey)
	if key == "" {
		return nil, nil
	}
	if len(key) > idempotency.MaxKeyLen {
		return nil, apierr.BadRequest("invalid_field", "Idempotency-Key is longer than %d characters", idempotency.MaxKeyLen).WithField(HeaderIdempotencyKey)
	}
	return &idemKey{header: key, dedupe: trigger.Dedupe{
		Source: source,
		// Length-prefixed, so no (user, key) pair reads as another.
		Key:         strconv.Itoa(len(user)) + ":" + user + key,
		TTL:         s.opts.IdempotencyTTL,
		Fingerprint: idempotency.Fingerprint(parts...),
	}}, nil
}

// replayed marks the answer to a repeated Idempotency-Key.
func replayed(c *echo.Context) { c.Response().Header().Set(HeaderReplayed, "true") }

// forgetKey frees the Idempotency-Key of a request whose event was stored
// and settled as "nothing runs" (the router refused it and stored that
// decision), so that the caller may fix the cause and retry with the same
// key. It is never called after a failed publish: then only a retry of the
// key can tell whether the event was stored.
func (s *Service) forgetKey(ev *sbv1.TriggerEvent, k *idemKey) {
	if k == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.opts.Triggers.Forget(ctx, ev.Project, k.dedupe, ev.Id); err != nil {
		s.log.Warn("idempotency key of a refused request not freed; a retry with it is answered as replayed until it expires", "event", ev.Id, "err", err)
	}
}

// publish stores ev in TRIGGERS through the producer contract, deduped by
// k when the request has an Idempotency-Key, and returns once JetStream
// acknowledged it. With k, ev.Id becomes the id claimed for the key.
//
// Errors are the caller's answer, and each says what the caller may
// assume: a trigger too big for the bus is 413 and a key reused for
// another request 422 — nothing stored. A failure of the bus is 503 with
// a message that tells what is known:
//   - with an Idempotency-Key: retry with the same key; the retry returns
//     the event if it was stored and stores it if not;
//   - without one, when the publish was never sent (the connection was
//     down; it has no reconnect buffer, see pkg/broker): not stored;
//   - without one, otherwise (a timeout waiting for the ack): the outcome
//     is unknown — the event may be stored and run. The answer
//     (outcome_unknown) carries its id, to look up before sending it again.
func (s *Service) publish(ctx context.Context, ev *sbv1.TriggerEvent, k *idemKey) (trigger.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	opts := []trigger.PublishOption{trigger.WithCatalogRevision(s.opts.Catalog.Revision())}
	if k != nil {
		opts = append(opts, trigger.WithDedupe(k.dedupe))
	}
	res, err := s.opts.Triggers.Publish(ctx, ev, opts...)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, trigger.ErrDedupeConflict):
		return res, apierr.New(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"Idempotency-Key %q was already used with a different request", k.header).WithField(HeaderIdempotencyKey)
	case errors.Is(err, wire.ErrTooLarge):
		return res, apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large", "the event is too large to store: %v", err)
	case wire.Permanent(err):
		return res, apierr.Internal(err)
	case k != nil:
		return res, unavailable("the event store did not confirm the event; retry with the same Idempotency-Key: "+
			"the retry returns the event if it was stored and stores it if it was not", err)
	case notSent(err):
		return res, unavailable("the event store is not reachable; the event was not stored, retry later", err)
	default:
		e := apierr.New(http.StatusServiceUnavailable, "outcome_unknown",
			"the event store did not confirm event %s in time: it may still be stored and run. Look it up with "+
				"GET /v1/projects/%s/events/%s before sending it again, or send events with an Idempotency-Key, whose retries are safe",
			ev.Id, ev.Project, ev.Id).Wrap(fmt.Errorf("publish trigger: %w", err))
		e.Details = map[string]string{"eventId": ev.Id}
		return res, e
	}
}

// unavailable is a 503 whose message says what the caller may assume.
func unavailable(msg string, err error) *apierr.Error {
	e := apierr.Unavailable(fmt.Errorf("publish trigger: %w", err))
	e.Message = msg
	return e
}

// notSent reports a publish that never left this process or that no
// JetStream server received: the connection was down (no reconnect buffer,
// so the message was refused, not kept), or the server answered that
// nothing listens on the subject. Anything else — a timeout above all —
// may have been stored.
func notSent(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

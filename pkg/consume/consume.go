// Package consume is the one place JetStream consumer plumbing lives: it
// creates a durable pull consumer, hands each message to a Handler, and
// settles the message from what the handler returned, so every consumer in
// Switchboard (router, executor, webhook receiver, scheduler, lifecycle)
// shares one ack / retry / dead-letter policy instead of writing its own.
//
// The model is Watermill's message router: a handler does the work and
// returns an error; the plumbing acks, retries or dead-letters; cross-cutting
// concerns (panic recovery, keep-alive, timeouts) are Middleware.
//
// Settlement contract, applied exactly once per delivery:
//
//   - nil: Ack.
//   - an error matching ErrSettled: nothing; the handler settled the message
//     itself (for example it acked before slow follow-up work).
//   - Permanent(err): dead-letter, then Term.
//   - any other error on the MaxDeliver-th delivery or later: dead-letter,
//     then Term. The plumbing does this itself instead of letting JetStream
//     silently stop redelivering.
//   - Retry(err, d): NakWithDelay(d).
//   - any other error: NakWithDelay(Backoff.Delay(NumDelivered)).
//   - a failure while the consumer is stopping (its handler context was
//     cancelled by Stop): Nak without delay, so another instance takes it
//     over at once; it is never dead-lettered for that.
//
// If dead-lettering fails the message is not terminated: it is Nak'ed with
// the backoff delay and dead-lettering is tried again on the next delivery,
// so nothing JetStream acknowledged to its publisher is ever dropped here.
//
// Classification survives wrapping: a handler may return
// fmt.Errorf("load: %w", consume.Permanent(err)).
package consume

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler handles one delivery of one message. ctx is cancelled when the
// consumer is stopped and gives up waiting for in-flight handlers; a handler
// must return soon after that. The returned error decides how the message is
// settled (see the package documentation); a handler must not settle the
// message itself unless it then returns an error matching ErrSettled.
// Handlers run concurrently, up to the consumer's Concurrency.
type Handler func(ctx context.Context, m jetstream.Msg) error

// Middleware wraps a Handler with a cross-cutting concern. Middleware listed
// first in Options.Middleware is outermost.
type Middleware func(Handler) Handler

// Chain applies mws to h, the first one outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// ErrSettled is returned (possibly wrapped) by a handler that acked, nak'ed
// or terminated the message itself; the plumbing then leaves it alone.
var ErrSettled = errors.New("consume: message settled by the handler")

// Permanent marks err as one that no redelivery can fix (a malformed message,
// a validation failure): the message is dead-lettered at once. Permanent wins
// over Retry when an error chain holds both.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &permanentError{err: err}
}

// Retry asks for a redelivery after delay instead of the backoff schedule,
// for a handler that knows when trying again makes sense (a rate limit's
// Retry-After, a dependency that is still starting). It still counts as a
// delivery: on the MaxDeliver-th one the message is dead-lettered.
func Retry(err error, delay time.Duration) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &retryError{err: err, delay: max(delay, 0)}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

type retryError struct {
	err   error
	delay time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}

// Backoff is the redelivery delay after a failed delivery: Initial after
// the first, doubling per delivery up to Max, each value lowered by a random
// share of up to Jitter so that messages that failed together (a dependency
// outage) do not all come back in the same instant. The zero value means
// Initial 1s, Max 5m, Jitter 0.2.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Jitter is a fraction in [0, 1); a negative value disables jitter.
	Jitter float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Minute
	}
	b.Max = max(b.Max, b.Initial)
	switch {
	case b.Jitter == 0:
		b.Jitter = 0.2
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter >= 1:
		b.Jitter = 0.99
	}
	return b
}

// base is the delay after the numDelivered-th delivery, before jitter.
func (b Backoff) base(numDelivered uint64) time.Duration {
	b = b.withDefaults()
	d := b.Initial
	for i := uint64(1); i < numDelivered && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Delay is the redelivery delay after the numDelivered-th delivery failed
// (numDelivered starts at 1). It is never above Max.
func (b Backoff) Delay(numDelivered uint64) time.Duration {
	b = b.withDefaults()
	d := b.base(numDelivered)
	if spread := int64(float64(d) * b.Jitter); spread > 0 {
		d -= time.Duration(rand.Int64N(spread + 1))
	}
	return d
}

// PanicError is the error a recovered handler panic becomes (wrapped in
// Permanent, so the message is dead-lettered with this text as its reason).
type PanicError struct {
	Value any
	// Stack is a short, single-line stack of the panic site.
	Stack string
}

func (e *PanicError) Error() string {
	if e.Stack == "" {
		return fmt.Sprintf("panic: %v", e.Value)
	}
	return fmt.Sprintf("panic: %v [%s]", e.Value, e.Stack)
}

// Unwrap lets errors.Is/As see a panic value that is itself an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

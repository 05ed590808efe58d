package consume

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// stackFrames bounds the stack a recovered panic carries: its text ends up
// in a NATS header, which counts against max_payload.
const stackFrames = 6

// Recover turns a handler panic into Permanent(*PanicError) carrying the
// panic value and a short stack, so the message is dead-lettered with the
// reason and the consumer goes on with the next message. Start always wraps
// the whole chain in Recover; list it yourself only to recover closer to the
// handler, or when using a Handler outside a Consumer.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m jetstream.Msg) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = Permanent(&PanicError{Value: r, Stack: shortStack()})
				}
			}()
			return next(ctx, m)
		}
	}
}

// shortStack is called from the deferred recover, so the stack still holds
// the panicking frames; runtime frames (gopanic, the deferred call) are
// noise for whoever reads a dead letter.
func shortStack() string {
	var pcs [32]uintptr
	// Skip runtime.Callers, shortStack and the deferred func itself.
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	var out []string
	for len(out) < stackFrames {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			out = append(out, fmt.Sprintf("%s (%s:%d)", trimPkgPath(f.Function), trimDir(f.File), f.Line))
		}
		if !more {
			break
		}
	}
	return strings.Join(out, " < ")
}

func trimPkgPath(fn string) string {
	if i := strings.LastIndex(fn, "/"); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

func trimDir(file string) string {
	if i := strings.LastIndex(file, "/"); i >= 0 {
		return file[i+1:]
	}
	return file
}

// KeepAlive tells JetStream the message is still being worked on
// (InProgress) every interval while the handler runs, so a handler that
// takes longer than AckWait keeps its message instead of having it
// redelivered to someone else meanwhile. An interval <= 0 means a third of
// the AckWait of the consumer running the handler. Pair it with Timeout:
// a hung handler under KeepAlive alone would hold its message forever.
func KeepAlive(interval time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m jetstream.Msg) error {
			iv := interval
			if iv <= 0 {
				iv = ackWaitFrom(ctx) / 3
			}
			if iv <= 0 {
				return next(ctx, m)
			}
			stop := startKeepAlive(m, iv)
			defer stop()
			return next(ctx, m)
		}
	}
}

// startKeepAlive sends InProgress for m every interval until the returned
// func is called; that func returns only once the ticker goroutine is gone,
// so no InProgress can follow the message's settlement.
func startKeepAlive(m jetstream.Msg, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				// Once the handler settled the message itself there is
				// nothing left to keep alive.
				if err := m.InProgress(); errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// Timeout gives each message a deadline of d. What happens after it depends
// on what the handler returns: typically a context error, which is retried
// with backoff like any other.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m jetstream.Msg) error {
			if d <= 0 {
				return next(ctx, m)
			}
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, m)
		}
	}
}

type ackWaitKey struct{}

func withAckWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, ackWaitKey{}, d)
}

func ackWaitFrom(ctx context.Context) time.Duration {
	d, _ := ctx.Value(ackWaitKey{}).(time.Duration)
	return d
}

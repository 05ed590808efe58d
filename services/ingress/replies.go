package ingress

import (
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// replyMux is one wildcard inbox subscription per ingress instance, shared
// by every synchronous caller (not one subscription per request): each
// waiting request owns one token below the instance's prefix.
type replyMux struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	waiters map[string]chan *nats.Msg
}

func newReplyMux(nc *nats.Conn) (*replyMux, error) {
	r := &replyMux{prefix: subjects.ReplyPrefix(nuid.Next()), waiters: map[string]chan *nats.Msg{}}
	sub, err := nc.Subscribe(r.prefix+".*", r.deliver)
	if err != nil {
		return nil, fmt.Errorf("ingress: reply subscription: %w", err)
	}
	r.sub = sub
	return r, nil
}

func (r *replyMux) deliver(m *nats.Msg) {
	token := m.Subject[len(r.prefix)+1:]
	r.mu.Lock()
	ch := r.waiters[token]
	r.mu.Unlock()
	if ch == nil {
		return // the caller gave up; the run goes on regardless
	}
	select {
	case ch <- m:
	default:
	}
}

// register returns the reply subject for one request, the channel its
// answer arrives on, and a function to call when the caller stops waiting.
func (r *replyMux) register() (string, <-chan *nats.Msg, func()) {
	token := nuid.Next()
	// Room for the decision and the response; a further copy (a run
	// redelivered after answering) has no reader and is dropped.
	ch := make(chan *nats.Msg, 2)
	r.mu.Lock()
	r.waiters[token] = ch
	r.mu.Unlock()
	return r.prefix + "." + token, ch, func() {
		r.mu.Lock()
		delete(r.waiters, token)
		r.mu.Unlock()
	}
}

func (r *replyMux) close() error { return r.sub.Unsubscribe() }

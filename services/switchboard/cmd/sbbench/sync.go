package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// The sync request trigger scenario (issue 3, item 8).
const (
	syncWorkflow = "bench-sync"
	// syncP99Target is the p99 a sync request trigger must stay under at
	// 50 connections; syncRatioTarget the share of the bare round trip's
	// req/s it must reach.
	syncP99Target   = 15 * time.Millisecond
	syncRatioTarget = 0.60

	bareSyncStream   = "BARE_SYNC"
	bareSyncSubject  = "bare_sync.requests"
	bareSyncConsumer = "bare-sync"
	// bareReplyHeader carries the per-request reply subject on the stored
	// message, as Switchboard's trigger envelope carries its reply inbox.
	bareReplyHeader = "Reply-To"
	bareSyncTimeout = 10 * time.Second
)

// syncDocs is the Switchboard side: a request-triggered workflow (no
// integration, so enabled for every user) whose only step answers the
// caller with a field of the body.
const syncDocs = `kind: Workflow
id: ` + syncWorkflow + `
trigger: {type: request}
steps:
  - id: reply
    type: response
    json: {echo: "{{ trigger.request.body.i }}"}
`

// syncBody is what every sync caller posts: {"i":N}.
func syncBody(i int64) []byte {
	b := make([]byte, 0, 32)
	b = append(b, `{"i":`...)
	b = strconv.AppendInt(b, i, 10)
	return append(b, '}')
}

// errEchoMismatch is counted as an error when an answer does not carry the
// value its request sent.
var errEchoMismatch = errors.New("echo mismatch")

// checkField accepts a 200 answer whose JSON field key holds request i's
// value, as a number or as a string (a template made of one expression may
// keep the number's type or render it). Switchboard's response step answers
// {"echo": N}; the bare round trip returns the body itself, {"i": N}.
func checkField(key string) func(i int64, status int, body []byte) error {
	return func(i int64, status int, body []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("HTTP %d (want 200)", status)
		}
		var ans map[string]json.RawMessage
		if err := json.Unmarshal(body, &ans); err != nil {
			return errEchoMismatch
		}
		if string(bytes.Trim(ans[key], `"`)) != strconv.FormatInt(i, 10) {
			return errEchoMismatch
		}
		return nil
	}
}

// bareSync is the baseline's minimal durable round trip: the handler
// publishes the body to a JetStream stream (synchronously, with its reply
// subject in a header) and waits; a pull consumer core-publishes each
// message's body to that reply subject and acks it; the handler answers 200
// with what came back. Replies arrive on one wildcard subscription per
// handler instance, one token per waiting request — as services/ingress
// does it.
type bareSync struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	prefix  string
	sub     *nats.Subscription
	consume jetstream.ConsumeContext

	mu      sync.Mutex
	waiters map[string]chan *nats.Msg
}

// addSync creates the baseline's round-trip stream, consumer, reply
// subscription and route; it must run before serve.
func (b *bare) addSync(ctx context.Context) error {
	lim := broker.DefaultLimits()
	if _, err := b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: bareSyncStream, Subjects: []string{"bare_sync.>"},
		Retention: jetstream.LimitsPolicy, MaxAge: lim.TriggersMaxAge, Duplicates: lim.DuplicateWindow,
		Storage: jetstream.FileStorage, Replicas: 1, AllowDirect: true,
	}); err != nil {
		return err
	}
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, bareSyncStream, jetstream.ConsumerConfig{
		Durable: bareSyncConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return err
	}
	s := &bareSync{js: b.JS, nc: b.NC, prefix: nats.NewInbox(), waiters: map[string]chan *nats.Msg{}}
	if s.sub, err = b.NC.Subscribe(s.prefix+".*", s.deliver); err != nil {
		return err
	}
	if s.consume, err = cons.Consume(s.answer); err != nil {
		return err
	}
	b.sync = s
	b.Echo.POST("/bare/sync", s.handle)
	return nil
}

// answer is the worker side: echo the body to the caller's reply subject
// on core NATS, then ack.
func (s *bareSync) answer(m jetstream.Msg) {
	if reply := m.Headers().Get(bareReplyHeader); reply != "" {
		_ = s.nc.Publish(reply, m.Data())
	}
	_ = m.Ack()
}

func (s *bareSync) deliver(m *nats.Msg) {
	token := m.Subject[len(s.prefix)+1:]
	s.mu.Lock()
	ch := s.waiters[token]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m:
	default:
	}
}

func (s *bareSync) register() (string, <-chan *nats.Msg, func()) {
	inbox := nats.NewInbox() // "_INBOX." + a nuid, like the ingress's token
	token := inbox[len("_INBOX."):]
	ch := make(chan *nats.Msg, 1)
	s.mu.Lock()
	s.waiters[token] = ch
	s.mu.Unlock()
	return s.prefix + "." + token, ch, func() {
		s.mu.Lock()
		delete(s.waiters, token)
		s.mu.Unlock()
	}
}

func (s *bareSync) handle(c *echo.Context) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, httpx.DefaultMaxBody))
	if err != nil {
		return c.NoContent(http.StatusBadRequest)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), bareSyncTimeout)
	defer cancel()
	reply, answers, done := s.register()
	defer done()
	m := nats.NewMsg(bareSyncSubject)
	m.Header.Set(bareReplyHeader, reply)
	m.Data = body
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return c.NoContent(http.StatusServiceUnavailable)
	}
	select {
	case a := <-answers:
		return c.Blob(http.StatusOK, "application/json", a.Data)
	case <-ctx.Done():
		return c.NoContent(http.StatusGatewayTimeout)
	}
}

func (s *bareSync) stop() {
	if s.consume != nil {
		s.consume.Stop()
	}
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
}

// runSync compares a synchronous request trigger (workflow bench-sync: one
// response step echoing body.i) with the bare round trip, at 1 and at
// -conns (50) connections, alternating rounds as the ingest comparison.
func runSync(ctx context.Context, b *bench) error {
	if err := b.apply(ctx, syncDocs); err != nil {
		return err
	}
	hdr := http.Header{"Authorization": {"Bearer " + b.token}}
	bareT := target{name: "bare", url: b.bare.Base + "/bare/sync", header: hdr, body: syncBody, check: checkField("i")}
	sbT := target{name: "switchboard", url: b.base + "/v1/projects/dev/workflows/" + syncWorkflow + "/trigger",
		header: hdr, body: syncBody, check: checkField("echo")}
	// Prove both sides answer correctly before measuring anything.
	for _, t := range []target{bareT, sbT} {
		if r := closedLoop(ctx, t, 1, limit{n: 3}); r.ok != 3 {
			return fmt.Errorf("%s %s: probe failed: %s", t.name, t.url, r)
		}
	}
	// Start from a quiet system: earlier scenarios' and the probe's runs
	// are finished and in the read model.
	if _, err := b.drainRuns(ctx); err != nil {
		return err
	}
	levels := []int{1}
	if b.cfg.conns != 1 {
		levels = append(levels, b.cfg.conns)
	}
	for _, conns := range levels {
		name := fmt.Sprintf("sync %dc", conns)
		bareRs, sbRs, err := compare(ctx, b, comparison{name: name, profile: fmt.Sprintf("sync.%dc", conns), conns: conns},
			bareT, sbT, b.drainRuns)
		if err != nil {
			return err
		}
		sm := report(b, name, bareRs, sbRs, syncRatioTarget)
		if conns == levels[len(levels)-1] {
			p99 := sm.pct(99)
			verdict := "meets"
			if p99 > syncP99Target {
				verdict = "BELOW"
			}
			note := ""
			if conns != 50 {
				note = " (the target is stated for 50 conns)"
			}
			b.printf("  switchboard p99 at %d conns: %s; target ≤ %s: %s%s\n", conns, ms(p99), ms(syncP99Target), verdict, note)
			b.summary = append(b.summary, fmt.Sprintf("%-28s %8s at %d conns (target ≤ %s: %s)%s",
				"sync switchboard p99", ms(p99), conns, ms(syncP99Target), verdict, note))
		}
	}
	return nil
}

// drainRuns waits until the router has routed every trigger, the executor
// has run every queued step and the read model has applied every record:
// a sync run goes on after it answered the caller, and that work must not
// run during the next (bare) round.
func (b *bench) drainRuns(ctx context.Context) (string, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var backlog []string
	for _, sc := range []struct{ stream, consumer string }{
		{subjects.StreamTriggers, router.RouterDurable(dev.Project)},
		{subjects.StreamRuns, router.ExecutorDurable(dev.Project)},
	} {
		cons, err := b.sys.JS.Consumer(ctx, sc.stream, sc.consumer)
		if err != nil {
			return "", err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return "", err
		}
		backlog = append(backlog, fmt.Sprintf("%s %d", sc.consumer, info.NumPending+uint64(info.NumAckPending)))
		for info.NumPending > 0 || info.NumAckPending > 0 {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("%s backlog not drained: %d pending, %d unacked", sc.consumer, info.NumPending, info.NumAckPending)
			case <-time.After(20 * time.Millisecond):
			}
			if info, err = cons.Info(ctx); err != nil {
				return "", err
			}
		}
	}
	drained := time.Since(start)
	if err := b.waitHistory(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("backlog at round end: %s; drained in %s; read model caught up after %s",
		strings.Join(backlog, ", "), drained.Round(time.Millisecond), time.Since(start).Round(time.Millisecond)), nil
}

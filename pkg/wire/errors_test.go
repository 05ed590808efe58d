package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func addStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	cfg.Storage = jetstream.MemoryStorage
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// TestPermanentOnRealServer produces each error with a real nats-server
// (stock 1 MB max_payload) and checks its classification.
func TestPermanentOnRealServer(t *testing.T) {
	srv := brokertest.Start(t)
	if got := srv.NC.MaxPayload(); got != 1<<20 {
		t.Fatalf("embedded server max_payload = %d, want the stock 1 MB", got)
	}
	js := srv.JS
	addStream(t, js, jetstream.StreamConfig{Name: "WIRE_SMALL", Subjects: []string{"wire.small.>"}, MaxMsgSize: 1024})
	addStream(t, js, jetstream.StreamConfig{Name: "WIRE_TTL", Subjects: []string{"wire.ttl.>"}, AllowMsgTTL: true})
	addStream(t, js, jetstream.StreamConfig{Name: "WIRE_ANY", Subjects: []string{"wire.any.>"}})
	// A core subscriber that never answers: a JetStream-style request to it
	// can only time out.
	sub, err := srv.NC.Subscribe("wire.silent.>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	big := bytes.Repeat([]byte("x"), 1200<<10)

	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return c
	}
	cases := []struct {
		name      string
		publish   func() error
		permanent bool
		is        error // when set, the error must match it
	}{
		{name: "1.2 MB body over max_payload, JetStream publish", permanent: true, is: nats.ErrMaxPayload,
			publish: func() error { _, err := js.Publish(ctx(), "wire.any.big", big); return err }},
		{name: "1.2 MB body over max_payload, core publish", permanent: true, is: nats.ErrMaxPayload,
			publish: func() error { return srv.NC.Publish("wire.any.big", big) }},
		{name: "body over the stream's MaxMsgSize (10054)", permanent: true, is: jetstream.ErrStreamMessageExceedsMaximum,
			publish: func() error { _, err := js.Publish(ctx(), "wire.small.x", make([]byte, 2048)); return err }},
		{name: "header over 64 KiB (10097)", permanent: true,
			publish: func() error {
				m := nats.NewMsg("wire.any.hdr")
				m.Header.Set("X-Big", strings.Repeat("h", 70<<10))
				m.Data = []byte("{}")
				_, err := js.PublishMsg(ctx(), m)
				return err
			}},
		{name: "invalid header name", permanent: true, is: nats.ErrBadHeaderMsg,
			publish: func() error {
				m := nats.NewMsg("wire.any.x")
				m.Header["bad key:"] = []string{"v"}
				_, err := js.PublishMsg(ctx(), m)
				return err
			}},
		{name: "subject with a space", permanent: true, is: nats.ErrBadSubject,
			publish: func() error { _, err := js.Publish(ctx(), "wire.any.a b", []byte("x")); return err }},
		{name: "per-message TTL on a stream without it (10166)", permanent: true,
			publish: func() error {
				_, err := js.Publish(ctx(), "wire.any.x", []byte("x"), jetstream.WithMsgTTL(time.Minute))
				return err
			}},
		{name: "per-message TTL under a second (10165)", permanent: true,
			publish: func() error {
				_, err := js.Publish(ctx(), "wire.ttl.x", []byte("x"), jetstream.WithMsgTTL(500*time.Millisecond))
				return err
			}},
		{name: "wrong expected stream (10060)", permanent: true,
			publish: func() error {
				_, err := js.Publish(ctx(), "wire.any.x", []byte("x"), jetstream.WithExpectStream("OTHER"))
				return err
			}},
		{name: "wrong expected last sequence (10071)", permanent: true,
			publish: func() error {
				_, err := js.Publish(ctx(), "wire.any.x", []byte("x"), jetstream.WithExpectLastSequence(999))
				return err
			}},
		{name: "no stream bound to the subject", permanent: false, is: jetstream.ErrNoStreamResponse,
			publish: func() error {
				_, err := js.Publish(ctx(), "wire.nostream.x", []byte("x"), jetstream.WithRetryAttempts(1), jetstream.WithRetryWait(10*time.Millisecond))
				return err
			}},
		{name: "no responders, core request", permanent: false, is: nats.ErrNoResponders,
			publish: func() error { _, err := srv.NC.Request("wire.nobody", nil, time.Second); return err }},
		{name: "timeout, core request", permanent: false, is: nats.ErrTimeout,
			publish: func() error { _, err := srv.NC.Request("wire.silent.x", nil, 50*time.Millisecond); return err }},
		{name: "timeout, JetStream publish with a deadline", permanent: false, is: context.DeadlineExceeded,
			publish: func() error {
				c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				_, err := js.Publish(c, "wire.silent.x", []byte("x"))
				return err
			}},
		{name: "connection closed", permanent: false, is: nats.ErrConnectionClosed,
			publish: func() error {
				nc, err := srv.Embedded.Connect("closed")
				if err != nil {
					return err
				}
				cjs, err := broker.JetStream(nc)
				if err != nil {
					return err
				}
				nc.Close()
				_, err = cjs.Publish(ctx(), "wire.any.x", []byte("x"))
				return err
			}},
		{name: "a too-large error wrapped twice", permanent: true, is: wire.ErrTooLarge,
			publish: func() error {
				return fmt.Errorf("emit: %w", fmt.Errorf("publish: %w", wire.TooLarge("record", 2, 1)))
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.publish()
			if err == nil {
				t.Fatal("publish succeeded, want an error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v (%T) does not match %v", err, err, c.is)
			}
			if got := wire.Permanent(err); got != c.permanent {
				t.Errorf("Permanent(%v) = %v, want %v", err, got, c.permanent)
			}
		})
	}
	t.Run("the header over 64 KiB is JetStream's 10097", func(t *testing.T) {
		m := nats.NewMsg("wire.any.hdr")
		m.Header.Set("X-Big", strings.Repeat("h", 70<<10))
		_, err := js.PublishMsg(ctx(), m)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10097 {
			t.Fatalf("error %v, want API error 10097", err)
		}
	})
}

// TestPermanentWhileReconnecting cuts a listening server's client off and
// publishes while it reconnects: with the reconnect buffer off the publish
// fails at once, with it on the request times out. Both are transient.
func TestPermanentWhileReconnecting(t *testing.T) {
	dir := t.TempDir()
	srv := brokertest.StartWith(t, broker.EmbeddedOptions{DataDir: dir, ListenAddr: "127.0.0.1:0"})
	url := srv.Embedded.ClientURL()
	for _, c := range []struct {
		name string
		opts []nats.Option
		is   error
	}{
		{"reconnect buffer off", []nats.Option{nats.ReconnectBufSize(-1)}, nats.ErrReconnectBufExceeded},
		{"reconnect buffer on", nil, context.DeadlineExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, err := nats.Connect(url, append(c.opts, nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := broker.JetStream(nc)
			if err != nil {
				t.Fatal(err)
			}
			// Closing the server side of this client's connection makes it
			// reconnect, and ReconnectWait keeps it reconnecting.
			cid, err := nc.GetClientID()
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Embedded.Server.DisconnectClientByID(cid); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the client to reconnect", nc.IsReconnecting)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err = js.Publish(ctx, "sb.trigger.p.app_event.u", []byte("x"))
			if !errors.Is(err, c.is) {
				t.Fatalf("error %v, want %v", err, c.is)
			}
			if wire.Permanent(err) {
				t.Errorf("Permanent(%v) = true, want transient", err)
			}
		})
	}
}

// TestPermanentCodes covers the errors a single node cannot produce: cluster
// leader changes, a stream offline, a full store, and client states reached
// only in races. Each is built as nats.go returns it.
func TestPermanentCodes(t *testing.T) {
	api := func(code int, status int, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: status, ErrorCode: jetstream.ErrorCode(code), Description: desc})
	}
	cases := []struct {
		name      string
		err       error
		permanent bool
	}{
		{"nil", nil, false},
		{"JetStream temporarily unavailable (10008)", api(10008, 503, "JetStream system temporarily unavailable"), false},
		{"cluster cannot handle request: leader change (10009)", api(10009, 500, "JetStream cluster can not handle request"), false},
		{"stream offline (10118)", api(10118, 500, "stream is offline"), false},
		{"insufficient resources (10023)", api(10023, 503, "insufficient resources"), false},
		{"too many requests (10167)", api(10167, 429, "too many requests"), false},
		{"duplicate in process (10158)", api(10158, 409, "duplicate message id is in process"), false},
		{"store failed: disk (10077)", api(10077, 503, "no space left on device"), false},
		{"store failed: message too large (10077)", api(10077, 503, "message too large"), true},
		{"stream max msg size (10054)", api(10054, 400, "message size exceeds maximum allowed"), true},
		{"sealed stream (10109)", api(10109, 400, "invalid operation on sealed stream"), true},
		{"atomic publish batch too large (10199)", api(10199, 400, "atomic publish batch is too large: 2000"), true},
		{"legacy API error, message too large", fmt.Errorf("x: %w", &nats.APIError{ErrorCode: 10054, Code: 400}), true},
		{"legacy API error, cluster unavailable", &nats.APIError{ErrorCode: 10008, Code: 503}, false},
		{"connection reconnecting", nats.ErrConnectionReconnecting, false},
		{"connection draining", nats.ErrConnectionDraining, false},
		{"JetStream connection closed", jetstream.ErrConnectionClosed, false},
		{"async publish ack timeout", jetstream.ErrAsyncPublishTimeout, false},
		{"server shutdown", jetstream.ErrServerShutdown, false},
		{"no stream response", jetstream.ErrNoStreamResponse, false},
		{"canceled", context.Canceled, false},
		{"unknown", errors.New("something odd"), false},
		{"unencodable", wire.Unencodable(errors.New("string field contains invalid UTF-8")), true},
		{"too large", wire.TooLarge("x", 2, 1), true},
		{"invalid", fmt.Errorf("trigger: %w: event without id", wire.ErrInvalid), true},
		{"bad header", fmt.Errorf("router: %w", func() error { _, err := wire.ParseHops("x"); return err }()), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := wire.Permanent(c.err); got != c.permanent {
				t.Errorf("Permanent(%v) = %v, want %v", c.err, got, c.permanent)
			}
		})
	}
}

func TestTooLargeError(t *testing.T) {
	err := fmt.Errorf("publish: %w", wire.TooLarge("trigger event e1", 1_200_000, 1_032_192))
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatal("does not match ErrTooLarge")
	}
	var tl *wire.TooLargeError
	if !errors.As(err, &tl) || tl.Size != 1_200_000 || tl.Limit != 1_032_192 {
		t.Fatalf("As: %+v", tl)
	}
	for _, want := range []string{"trigger event e1", "1200000", "1032192"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if wire.Unencodable(nil) != nil {
		t.Error("Unencodable(nil) != nil")
	}
}

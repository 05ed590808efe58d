package trigger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

type fixture struct {
	srv *brokertest.Server
	pub *trigger.Publisher
	kv  jetstream.KeyValue
}

// start runs a stock (1 MB) server and a Publisher with the dedupe bucket.
func start(t *testing.T) *fixture {
	t.Helper()
	srv := brokertest.Start(t)
	if srv.NC.MaxPayload() != 1<<20 {
		t.Fatalf("max_payload %d, want the stock 1 MB", srv.NC.MaxPayload())
	}
	kv, err := srv.JS.KeyValue(context.Background(), subjects.BucketDedupe)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trigger.New(context.Background(), trigger.Options{JS: srv.JS, Budgets: wire.FromConn(srv.NC), Dedupe: kv})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, pub: pub, kv: kv}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func appEvent(user string) *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{Id: trigger.NewID(), Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created",
		User: user, Payload: []byte(`{"email":"a@b.c"}`), ReceivedAt: timestamppb.Now()}
}

// stored returns the messages of subject in TRIGGERS.
func stored(t *testing.T, js jetstream.JetStream, subject string) []jetstream.RawStreamMsg {
	t.Helper()
	ctx := ctxT(t)
	s, err := js.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject {
			out = append(out, *m)
		}
	}
	if uint64(len(out)) != info.State.Subjects[subject] {
		t.Fatalf("read %d messages on %s, the stream counts %d", len(out), subject, info.State.Subjects[subject])
	}
	return out
}

func TestSubjectPerKind(t *testing.T) {
	f := start(t)
	cases := []struct {
		name    string
		ev      *sbv1.TriggerEvent
		subject string
	}{
		{"app event: user", &sbv1.TriggerEvent{Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1"}, "sb.trigger.acme.app_event.u1"},
		{"app event: user escaped", &sbv1.TriggerEvent{Kind: sbv1.Kind_APP_EVENT, Name: "x", User: "a.b"}, "sb.trigger.acme.app_event.=YS5i"},
		{"request: workflow", &sbv1.TriggerEvent{Kind: sbv1.Kind_REQUEST, User: "u1", Workflow: "wf1",
			Detail: &sbv1.TriggerEvent_Request{Request: &sbv1.Request{Method: "POST"}}}, "sb.trigger.acme.request.wf1"},
		{"integration: integration", &sbv1.TriggerEvent{Kind: sbv1.Kind_INTEGRATION, Integration: "hubspot", Name: "contact.creation"}, "sb.trigger.acme.integration.hubspot"},
		{"integration enabled: user", &sbv1.TriggerEvent{Kind: sbv1.Kind_INTEGRATION_ENABLED, User: "u1", Integration: "hubspot"}, "sb.trigger.acme.integration_enabled.u1"},
		{"schedule: workflow", &sbv1.TriggerEvent{Kind: sbv1.Kind_SCHEDULE, Name: "s1", Workflow: "nightly"}, "sb.trigger.acme.schedule.nightly"},
		{"schedule: the tick's workflow", &sbv1.TriggerEvent{Kind: sbv1.Kind_SCHEDULE, Name: "s1",
			Detail: &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{Workflow: "hourly", Zone: "UTC"}}}, "sb.trigger.acme.schedule.hourly"},
		{"api resource: integration", &sbv1.TriggerEvent{Kind: sbv1.Kind_API_RESOURCE, Integration: "own-api"}, "sb.trigger.acme.api_resource.own-api"},
		{"lifecycle: user", &sbv1.TriggerEvent{Kind: sbv1.Kind_LIFECYCLE, User: "u2", Integration: "slack"}, "sb.trigger.acme.lifecycle.u2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.ev.Id, c.ev.Project = trigger.NewID(), "acme"
			if got, err := trigger.Subject(c.ev); err != nil || got != c.subject {
				t.Fatalf("Subject = %q, %v; want %q", got, err, c.subject)
			}
			res, err := f.pub.Publish(ctxT(t), c.ev)
			if err != nil {
				t.Fatal(err)
			}
			if res.Subject != c.subject || res.EventID != c.ev.Id || res.Stream != subjects.StreamTriggers || res.Sequence == 0 || res.Duplicate {
				t.Fatalf("result %+v", res)
			}
			msgs := stored(t, f.srv.JS, c.subject)
			if len(msgs) != 1 {
				t.Fatalf("%d messages on %s, want 1", len(msgs), c.subject)
			}
			got, err := envelope.Decode(msgs[0].Data, msgs[0].Header.Get(wire.HeaderContentType))
			if err != nil || !proto.Equal(got, c.ev) {
				t.Fatalf("stored %v (%v), want %v", got, err, c.ev)
			}
		})
	}
	// Every kind of the enum has a token, and the tokens are distinct.
	seen := map[string]bool{}
	for k := range sbv1.Kind_name {
		tok, ok := trigger.KindToken(sbv1.Kind(k))
		if sbv1.Kind(k) == sbv1.Kind_KIND_UNSPECIFIED {
			if ok {
				t.Error("KIND_UNSPECIFIED has a token")
			}
			continue
		}
		if !ok || seen[tok] {
			t.Errorf("kind %v: token %q, ok %v (duplicate: %v)", sbv1.Kind(k), tok, ok, seen[tok])
		}
		seen[tok] = true
	}
	if len(seen) != len(subjects.KindTokens()) {
		t.Errorf("%d kinds with tokens, subjects lists %d", len(seen), len(subjects.KindTokens()))
	}
}

func TestHeaders(t *testing.T) {
	f := start(t)
	cases := []struct {
		name string
		ev   func() *sbv1.TriggerEvent
		opts []trigger.PublishOption
		want map[string]string // "" means absent
	}{
		{"plain", func() *sbv1.TriggerEvent { return appEvent("h1") }, nil,
			map[string]string{wire.HeaderContentType: wire.ContentTypeProto, wire.HeaderTraceparent: "", wire.HeaderHops: "", wire.HeaderCatalogRevision: ""}},
		{"trace, trace state, catalog revision, custom header", func() *sbv1.TriggerEvent {
			ev := appEvent("h2")
			ev.Trace = traceparent
			return ev
		}, []trigger.PublishOption{trigger.WithTraceState("vendor=x"), trigger.WithCatalogRevision(42), trigger.WithHeader("X-Source", "test")},
			map[string]string{wire.HeaderTraceparent: traceparent, wire.HeaderTracestate: "vendor=x", wire.HeaderCatalogRevision: "42", "X-Source": "test"}},
		{"malformed trace dropped with its state", func() *sbv1.TriggerEvent {
			ev := appEvent("h3")
			ev.Trace = "00-abc"
			return ev
		}, []trigger.PublishOption{trigger.WithTraceState("vendor=x")},
			map[string]string{wire.HeaderTraceparent: "", wire.HeaderTracestate: ""}},
		{"child of a parent two hops deep", func() *sbv1.TriggerEvent { return appEvent("h4") },
			[]trigger.PublishOption{trigger.ChildOf(&sbv1.TriggerEvent{Hops: 2, Trace: traceparent})},
			map[string]string{wire.HeaderHops: "3", wire.HeaderTraceparent: traceparent}},
		{"child of an outside trigger", func() *sbv1.TriggerEvent { return appEvent("h5") },
			[]trigger.PublishOption{trigger.ChildOf(&sbv1.TriggerEvent{})},
			map[string]string{wire.HeaderHops: "1", wire.HeaderTraceparent: ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := c.ev()
			res, err := f.pub.Publish(ctxT(t), ev, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			msgs := stored(t, f.srv.JS, res.Subject)
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			h := msgs[0].Header
			if h.Get(wire.HeaderMsgID) != ev.Id {
				t.Errorf("Nats-Msg-Id %q, want %q", h.Get(wire.HeaderMsgID), ev.Id)
			}
			for k, want := range c.want {
				if got := h.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			got, err := envelope.Decode(msgs[0].Data, h.Get(wire.HeaderContentType))
			if err != nil {
				t.Fatal(err)
			}
			if hops, _ := wire.HopsOf(h); got.Hops != uint32(hops) {
				t.Errorf("envelope hops %d, header %d", got.Hops, hops)
			}
		})
	}
}

func TestDuplicateMsgID(t *testing.T) {
	f := start(t)
	ev := appEvent("d1")
	first, err := f.pub.Publish(ctxT(t), ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.pub.Publish(ctxT(t), proto.Clone(ev).(*sbv1.TriggerEvent))
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !again.Duplicate || again.Sequence != first.Sequence || again.EventID != ev.Id {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	if n := len(stored(t, f.srv.JS, first.Subject)); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

// TestTooLarge runs on a stock 1 MB server: an event over Budgets.Record is
// refused before publishing, permanently, with its size and the limit; one
// of exactly Record bytes is stored.
func TestTooLarge(t *testing.T) {
	f := start(t)
	b := wire.FromConn(f.srv.NC)
	withSize := func(user string, size int) *sbv1.TriggerEvent {
		ev := appEvent(user)
		ev.Payload = nil
		base := proto.Size(ev)
		// A bytes field of n bytes costs n plus its tag and length varint.
		for n := size - base - 4; n < size; n++ {
			ev.Payload = bytes.Repeat([]byte("x"), n)
			if proto.Size(ev) == size {
				return ev
			}
		}
		t.Fatalf("no payload gives an envelope of %d bytes", size)
		return nil
	}
	cases := []struct {
		name string
		ev   *sbv1.TriggerEvent
		opts []trigger.PublishOption
		ok   bool
	}{
		{"exactly Record bytes", withSize("t1", b.Record), nil, true},
		{"one byte over Record", withSize("t2", b.Record+1), nil, false},
		{"1.2 MB", withSize("t3", 1200<<10), nil, false},
		{"1.2 MB with dedupe", withSize("t4", 1200<<10), []trigger.PublishOption{trigger.WithDedupe(trigger.Dedupe{Source: "s", Key: "k"})}, false},
		{"headers over Headers", withSize("t5", 100), []trigger.PublishOption{trigger.WithHeader("X-Big", strings.Repeat("h", b.Headers))}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			subject, _ := trigger.Subject(c.ev)
			res, err := f.pub.Publish(ctxT(t), c.ev, c.opts...)
			if c.ok {
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				if n := len(stored(t, f.srv.JS, res.Subject)); n != 1 {
					t.Fatalf("%d stored, want 1", n)
				}
				return
			}
			if err == nil {
				t.Fatalf("Publish succeeded: %+v", res)
			}
			var tl *wire.TooLargeError
			if !wire.Permanent(err) || !errors.Is(err, wire.ErrTooLarge) || !errors.As(err, &tl) {
				t.Fatalf("error %v: permanent %v, want a permanent TooLargeError", err, wire.Permanent(err))
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tl.Size)) || !strings.Contains(err.Error(), fmt.Sprint(tl.Limit)) {
				t.Errorf("message %q does not name size %d and limit %d", err, tl.Size, tl.Limit)
			}
			if n := len(stored(t, f.srv.JS, subject)); n != 0 {
				t.Errorf("%d stored, want 0", n)
			}
			if _, err := f.kv.Get(ctxT(t), trigger.DedupeKey("acme", "s", "k")); !errors.Is(err, jetstream.ErrKeyNotFound) {
				t.Errorf("a refused event left a dedupe claim (%v)", err)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	f := start(t)
	cases := []struct {
		name string
		ev   *sbv1.TriggerEvent
		opts []trigger.PublishOption
	}{
		{"nil", nil, nil},
		{"no id", &sbv1.TriggerEvent{Project: "acme", Kind: sbv1.Kind_APP_EVENT, User: "u"}, nil},
		{"no kind", &sbv1.TriggerEvent{Id: "x", Project: "acme", User: "u"}, nil},
		{"unknown kind", &sbv1.TriggerEvent{Id: "x", Project: "acme", Kind: 99, User: "u"}, nil},
		{"no project", &sbv1.TriggerEvent{Id: "x", Kind: sbv1.Kind_APP_EVENT, User: "u"}, nil},
		{"project with a dot", &sbv1.TriggerEvent{Id: "x", Project: "a.b", Kind: sbv1.Kind_APP_EVENT, User: "u"}, nil},
		{"user over MaxIDLen", &sbv1.TriggerEvent{Id: "x", Project: "acme", Kind: sbv1.Kind_APP_EVENT, User: strings.Repeat("u", wire.MaxIDLen+1)}, nil},
		{"id over MaxIDLen", &sbv1.TriggerEvent{Id: strings.Repeat("i", wire.MaxIDLen+1), Project: "acme", Kind: sbv1.Kind_APP_EVENT, User: "u"}, nil},
		{"invalid UTF-8 (unencodable)", &sbv1.TriggerEvent{Id: "x", Project: "acme", Kind: sbv1.Kind_APP_EVENT, User: "u", Name: "\xff"}, nil},
		{"too many hops", &sbv1.TriggerEvent{Id: "x", Project: "acme", Kind: sbv1.Kind_APP_EVENT, User: "u", Hops: wire.MaxHops + 1}, nil},
		{"parent at MaxHops", appEvent("u"), []trigger.PublishOption{trigger.ChildOf(&sbv1.TriggerEvent{Hops: wire.MaxHops})}},
		{"reserved header", appEvent("u"), []trigger.PublishOption{trigger.WithHeader("Nats-Expected-Stream", "X")}},
		{"reserved header Sb-Hops", appEvent("u"), []trigger.PublishOption{trigger.WithHeader(wire.HeaderHops, "0")}},
		{"dedupe without source", appEvent("u"), []trigger.PublishOption{trigger.WithDedupe(trigger.Dedupe{Key: "k"})}},
		{"dedupe without key", appEvent("u"), []trigger.PublishOption{trigger.WithDedupe(trigger.Dedupe{Source: "s"})}},
		{"dedupe with negative TTL", appEvent("u"), []trigger.PublishOption{trigger.WithDedupe(trigger.Dedupe{Source: "s", Key: "k", TTL: -time.Second})}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.pub.Publish(ctxT(t), c.ev, c.opts...)
			if err == nil || !wire.Permanent(err) {
				t.Fatalf("error %v, want a permanent one", err)
			}
		})
	}
	info, err := f.srv.JS.Stream(ctxT(t), subjects.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("%d messages stored by invalid publishes", n)
	}
}

func TestDedupe(t *testing.T) {
	f := start(t)
	d := trigger.Dedupe{Source: "hubspot.webhook", Key: "evt-123", TTL: time.Hour}
	ev := appEvent("u1")
	first, err := f.pub.Publish(ctxT(t), ev, trigger.WithDedupe(d))
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || first.EventID != ev.Id || first.Sequence == 0 {
		t.Fatalf("first %+v (ev.Id %s)", first, ev.Id)
	}
	t.Run("same key: duplicate with the first id", func(t *testing.T) {
		res, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Duplicate || res.EventID != first.EventID || res.Sequence != first.Sequence {
			t.Fatalf("result %+v, want a duplicate of %+v", res, first)
		}
	})
	t.Run("another key: a new event", func(t *testing.T) {
		res, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(trigger.Dedupe{Source: d.Source, Key: "evt-124"}))
		if err != nil || res.Duplicate || res.EventID == first.EventID {
			t.Fatalf("result %+v, %v", res, err)
		}
	})
	t.Run("same key of another source: a new event", func(t *testing.T) {
		res, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(trigger.Dedupe{Source: "stripe.webhook", Key: d.Key}))
		if err != nil || res.Duplicate || res.EventID == first.EventID {
			t.Fatalf("result %+v, %v", res, err)
		}
	})
	if n := len(stored(t, f.srv.JS, first.Subject)); n != 3 {
		t.Errorf("%d events stored, want 3", n)
	}
	t.Run("a Publisher without the bucket refuses WithDedupe", func(t *testing.T) {
		p, err := trigger.New(ctxT(t), trigger.Options{JS: f.srv.JS})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d)); err == nil {
			t.Fatal("Publish succeeded")
		}
	})
}

// TestDedupeExpires stands for "days later": with a one-second TTL the
// claim expires, and the same key then publishes a new event with a new id.
func TestDedupeExpires(t *testing.T) {
	f := start(t)
	d := trigger.Dedupe{Source: "stripe.webhook", Key: "evt_1", TTL: time.Second}
	first, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d)); err != nil || !res.Duplicate {
		t.Fatalf("a repeat inside the TTL: %+v, %v", res, err)
	}
	key := trigger.DedupeKey("acme", d.Source, d.Key)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := f.kv.Get(ctxT(t), key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the claim did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	again, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d))
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicate || again.EventID == first.EventID {
		t.Fatalf("after the TTL: %+v, want a new event (first %s)", again, first.EventID)
	}
	if n := len(stored(t, f.srv.JS, first.Subject)); n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}
}

// TestDedupeConcurrent publishes one key from 20 goroutines at once, with
// the claim in sb_dedupe and in the subject: one event is stored, every
// caller gets its id, exactly one is not a duplicate.
func TestDedupeConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     trigger.Dedupe
		event func() *sbv1.TriggerEvent
	}{
		{"claim in sb_dedupe", trigger.Dedupe{Source: "hubspot.webhook", Key: "burst", TTL: time.Hour}, func() *sbv1.TriggerEvent { return appEvent("u1") }},
		{"claim in the subject", trigger.Dedupe{Source: "webhook.stripe", Key: "burst", TTL: time.Hour, InSubject: true}, webhookEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t)
			const n = 20
			results := make([]trigger.Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			ready := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-ready
					results[i], errs[i] = f.pub.Publish(context.Background(), tc.event(), trigger.WithDedupe(tc.d))
				})
			}
			close(ready)
			wg.Wait()
			fresh := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("publisher %d: %v", i, errs[i])
				}
				if results[i].EventID != results[0].EventID {
					t.Errorf("publisher %d got event %s, publisher 0 %s", i, results[i].EventID, results[0].EventID)
				}
				if !results[i].Duplicate {
					fresh++
				}
			}
			if fresh != 1 {
				t.Errorf("%d results are not duplicates, want 1", fresh)
			}
			msgs := stored(t, f.srv.JS, results[0].Subject)
			if len(msgs) != 1 || msgs[0].Header.Get(wire.HeaderMsgID) != results[0].EventID {
				t.Fatalf("%d events stored, want 1 with id %s", len(msgs), results[0].EventID)
			}
		})
	}
}

// TestDedupeFingerprint: the fingerprint kept in the claim tells a retry of
// the same request (a duplicate) from a different request reusing the key
// (ErrDedupeConflict, nothing published). Forget lets a settled key be used
// again, and only for the event it names.
func TestDedupeFingerprint(t *testing.T) {
	f := start(t)
	d := trigger.Dedupe{Source: "idempotency.evt", Key: "u1/order-1", TTL: time.Hour, Fingerprint: "fp-a"}
	first, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d))
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v, %v", first, err)
	}
	same, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d))
	if err != nil || !same.Duplicate || same.EventID != first.EventID {
		t.Fatalf("same request: %+v, %v; want a duplicate of %s", same, err, first.EventID)
	}
	for _, fp := range []string{"fp-b", ""} {
		other := d
		other.Fingerprint = fp
		res, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(other))
		if !errors.Is(err, trigger.ErrDedupeConflict) || res.EventID != first.EventID {
			t.Errorf("fingerprint %q: %+v, %v; want ErrDedupeConflict naming %s", fp, res, err, first.EventID)
		}
	}
	long := d
	long.Fingerprint = strings.Repeat("f", wire.MaxIDLen+1)
	if _, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(long)); !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("an over-long fingerprint: %v, want wire.ErrInvalid", err)
	}
	if n := len(stored(t, f.srv.JS, first.Subject)); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}

	// Forget with another event's id leaves the claim alone.
	if err := f.pub.Forget(ctxT(t), "acme", d, "not-"+first.EventID); err != nil {
		t.Fatal(err)
	}
	if res, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d)); err != nil || !res.Duplicate {
		t.Fatalf("after forgetting another id: %+v, %v; want still a duplicate", res, err)
	}
	if err := f.pub.Forget(ctxT(t), "acme", d, first.EventID); err != nil {
		t.Fatal(err)
	}
	// Forgotten: the key is free, for this request or another one.
	d.Fingerprint = "fp-b"
	again, err := f.pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d))
	if err != nil || again.Duplicate || again.EventID == first.EventID {
		t.Fatalf("after Forget: %+v, %v; want a new event", again, err)
	}
	if err := f.pub.Forget(ctxT(t), "acme", trigger.Dedupe{Source: d.Source, Key: "never-claimed"}, first.EventID); err != nil {
		t.Errorf("forgetting a key never claimed: %v", err)
	}
}

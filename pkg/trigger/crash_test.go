package trigger

// The crash windows of the dedupe order of operations, simulated by doing
// the first steps of a Publish by hand and then "crashing" (not doing the
// rest), before a retry publishes the same key.

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// window is the TRIGGERS duplicate window in these tests, short so that a
// retry "after the window" comes within the test's time.
const window = time.Second

type crashFixture struct {
	srv *brokertest.Server
	pub *Publisher
}

func startCrash(t *testing.T) *crashFixture {
	t.Helper()
	srv := brokertest.Start(t)
	ctx := context.Background()
	s, err := srv.JS.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = window
	if _, err := srv.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, subjects.BucketDedupe)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := New(ctx, Options{JS: srv.JS, Budgets: wire.FromConn(srv.NC), Dedupe: kv})
	if err != nil {
		t.Fatal(err)
	}
	if pub.window != window {
		t.Fatalf("publisher window %v, want the stream's %v", pub.window, window)
	}
	return &crashFixture{srv: srv, pub: pub}
}

func testEvent() *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{Project: "acme", Kind: sbv1.Kind_INTEGRATION, Integration: "hubspot", Name: "contact.creation",
		Payload: []byte(`{"id":1}`), ReceivedAt: timestamppb.Now()}
}

var testDedupe = Dedupe{Source: "hubspot.webhook", Key: "delivery-1", TTL: time.Hour}

// claimOnly does step 2 of a Publish (the claim) and returns the claimed
// event and the message step 3 would publish.
func (f *crashFixture) claimOnly(t *testing.T) (*sbv1.TriggerEvent, *nats.Msg) {
	t.Helper()
	ev := testEvent()
	subject, err := Subject(ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.Id = DedupeID(time.Now(), ev.Project, testDedupe.Source, testDedupe.Key)
	m, err := f.pub.message(ev, subject, &publishOpts{})
	if err != nil {
		t.Fatal(err)
	}
	c := claim{State: statePending, EventID: ev.Id, Subject: subject}
	if _, err := f.pub.kv.Create(context.Background(), f.key(), mustJSON(c), jetstream.KeyTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return ev, m
}

func (f *crashFixture) key() string { return DedupeKey("acme", testDedupe.Source, testDedupe.Key) }

func (f *crashFixture) claim(t *testing.T) claim {
	t.Helper()
	e, err := f.pub.kv.Get(context.Background(), f.key())
	if err != nil {
		t.Fatal(err)
	}
	var c claim
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitStored polls until the claim is promoted (Publish does not wait for
// the promote) and returns it.
func (f *crashFixture) waitStored(t *testing.T) claim {
	t.Helper()
	return f.waitStoredKey(t, f.key())
}

// waitStoredKey is waitStored for the claim of key.
func (f *crashFixture) waitStoredKey(t *testing.T, key string) claim {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, err := f.pub.kv.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		var c claim
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			t.Fatal(err)
		}
		if c.State == stateStored {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %+v never promoted", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stored counts the events with id on subject.
func (f *crashFixture) stored(t *testing.T, subject, id string) int {
	t.Helper()
	ctx := context.Background()
	cons, err := f.srv.JS.OrderedConsumer(ctx, subjects.StreamTriggers, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if errors.Is(err, nats.ErrTimeout) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Headers().Get(wire.HeaderMsgID) == id {
			n++
		}
	}
}

// waitForgotten publishes a probe right away and polls until the stream no
// longer takes a copy of it for a duplicate: then the window has also passed
// for every id stored before the probe.
func (f *crashFixture) waitForgotten(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	probe := func() bool {
		ack, err := f.srv.JS.Publish(ctx, "sb.trigger.acme.app_event.probe", []byte("p"), jetstream.WithMsgID("probe-"+t.Name()))
		if err != nil {
			t.Fatal(err)
		}
		return !ack.Duplicate
	}
	probe()
	deadline := time.Now().Add(10 * window)
	for !probe() {
		if time.Now().After(deadline) {
			t.Fatal("the stream kept remembering the probe")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCrashWindows(t *testing.T) {
	cases := []struct {
		name string
		// published: the crash came after the publish was stored (before
		// the promote); otherwise right after the claim.
		published bool
		// late: the retry comes after the stream's duplicate window.
		late bool
	}{
		{name: "claimed, crashed before publishing, retried within the window"},
		{name: "claimed, crashed before publishing, retried after the window", late: true},
		{name: "published, crashed before promoting, retried within the window", published: true},
		{name: "published, crashed before promoting, retried after the window", published: true, late: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startCrash(t)
			ev, m := f.claimOnly(t)
			if c.published {
				if _, err := f.srv.JS.PublishMsg(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			if c.late {
				f.waitForgotten(t)
			}
			res, err := f.pub.Publish(context.Background(), testEvent(), WithDedupe(testDedupe))
			if err != nil {
				t.Fatal(err)
			}
			if res.EventID != ev.Id || res.Duplicate != c.published || res.Sequence == 0 {
				t.Fatalf("result %+v, want event %s with duplicate=%v", res, ev.Id, c.published)
			}
			if n := f.stored(t, m.Subject, ev.Id); n != 1 {
				t.Fatalf("%d copies of the event stored, want exactly 1", n)
			}
			if cl := f.waitStored(t); cl.EventID != ev.Id || cl.Seq != res.Sequence {
				t.Errorf("claim %+v after the retry, want stored at %d", cl, res.Sequence)
			}
			// And the key is deduped from here on.
			again, err := f.pub.Publish(context.Background(), testEvent(), WithDedupe(testDedupe))
			if err != nil || !again.Duplicate || again.EventID != ev.Id {
				t.Errorf("a further repeat: %+v, %v", again, err)
			}
		})
	}
}

// TestCrashConcurrentLateRetries: a claim left pending before publishing,
// then ten retries at once after the window. One event is stored.
func TestCrashConcurrentLateRetries(t *testing.T) {
	f := startCrash(t)
	ev, m := f.claimOnly(t)
	f.waitForgotten(t)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	ids := make([]string, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.pub.Publish(context.Background(), testEvent(), WithDedupe(testDedupe))
			ids[i], errs[i] = res.EventID, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
		if ids[i] != ev.Id {
			t.Errorf("retry %d got event %s, want %s", i, ids[i], ev.Id)
		}
	}
	if n := f.stored(t, m.Subject, ev.Id); n != 1 {
		t.Fatalf("%d copies stored, want 1", n)
	}
}

// TestPermanentRefusalReleasesTheClaim: a publish JetStream refuses for good
// stored nothing, so its claim must not swallow the corrected retry.
func TestPermanentRefusalReleasesTheClaim(t *testing.T) {
	f := startCrash(t)
	ctx := context.Background()
	setMaxMsgSize := func(n int32) {
		s, err := f.srv.JS.Stream(ctx, subjects.StreamTriggers)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxMsgSize = n
		if _, err := f.srv.JS.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	setMaxMsgSize(64)
	_, err := f.pub.Publish(ctx, testEvent(), WithDedupe(testDedupe))
	if !wire.Permanent(err) {
		t.Fatalf("error %v, want a permanent refusal (stream max msg size)", err)
	}
	if _, err := f.pub.kv.Get(ctx, f.key()); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the refused event's claim is still there (%v)", err)
	}
	setMaxMsgSize(-1)
	res, err := f.pub.Publish(ctx, testEvent(), WithDedupe(testDedupe))
	if err != nil || res.Duplicate {
		t.Fatalf("the retry: %+v, %v; want a new event", res, err)
	}
	if n := f.stored(t, res.Subject, res.EventID); n != 1 {
		t.Fatalf("%d copies stored, want 1", n)
	}
}

// TestFingerprintConflictWithPendingClaim: a claim left pending (its
// publish may or may not have landed) is retried with another request
// behind the key. The retry is refused with ErrDedupeConflict and publishes
// nothing — not even under the claimed id — while the same request resolves
// the claim as usual.
func TestFingerprintConflictWithPendingClaim(t *testing.T) {
	f := startCrash(t)
	ctx := context.Background()
	ev, m := f.claimOnly(t) // claimed with no fingerprint
	other := testDedupe
	other.Fingerprint = "another-request"
	res, err := f.pub.Publish(ctx, testEvent(), WithDedupe(other))
	if !errors.Is(err, ErrDedupeConflict) || res.EventID != ev.Id {
		t.Fatalf("retry with another fingerprint: %+v, %v; want ErrDedupeConflict naming %s", res, err, ev.Id)
	}
	if wire.Permanent(err) {
		t.Errorf("ErrDedupeConflict is classified as a bus refusal: %v", err)
	}
	if n := f.stored(t, m.Subject, ev.Id); n != 0 {
		t.Fatalf("%d copies stored by the refused retry, want 0", n)
	}
	if cl := f.claim(t); cl.State != statePending || cl.EventID != ev.Id {
		t.Fatalf("claim %+v after the refusal, want it pending as it was", cl)
	}
	res, err = f.pub.Publish(ctx, testEvent(), WithDedupe(testDedupe))
	if err != nil || res.EventID != ev.Id || res.Duplicate {
		t.Fatalf("retry of the same request: %+v, %v; want event %s stored now", res, err, ev.Id)
	}
	if n := f.stored(t, m.Subject, ev.Id); n != 1 {
		t.Fatalf("%d copies stored, want 1", n)
	}
}

// TestPromoteAfterReturn: Publish returns once the event is stored and
// promotes the claim without waiting. The claim turns stored, naming the
// event's sequence; a repeat sent at once — whether or not the promote has
// landed yet — is the same event, stored once; and a promote that loses
// its compare-and-set (the claim was promoted by that repeat first) changes
// nothing.
func TestPromoteAfterReturn(t *testing.T) {
	f := startCrash(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		repeats int // publishes of the key right after the first returns
	}{
		{name: "promoted, then repeated", repeats: 0},
		{name: "repeated at once, before or after the promote", repeats: 1},
		{name: "repeated at once by many", repeats: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDedupe
			d.Key = "promote-" + strconv.Itoa(tc.repeats)
			first, err := f.pub.Publish(ctx, testEvent(), WithDedupe(d))
			if err != nil || first.Duplicate {
				t.Fatalf("first publish: %+v, %v", first, err)
			}
			var wg sync.WaitGroup
			res := make([]Result, tc.repeats)
			errs := make([]error, tc.repeats)
			for i := range tc.repeats {
				wg.Go(func() { res[i], errs[i] = f.pub.Publish(ctx, testEvent(), WithDedupe(d)) })
			}
			wg.Wait()
			for i := range tc.repeats {
				if errs[i] != nil || !res[i].Duplicate || res[i].EventID != first.EventID {
					t.Errorf("repeat %d: %+v, %v; want a duplicate of %s", i, res[i], errs[i], first.EventID)
				}
			}
			c := f.waitStoredKey(t, DedupeKey("acme", d.Source, d.Key))
			if c.EventID != first.EventID || c.Seq != first.Sequence || c.Stream != subjects.StreamTriggers {
				t.Fatalf("promoted claim %+v, want event %s at %d", c, first.EventID, first.Sequence)
			}
			again, err := f.pub.Publish(ctx, testEvent(), WithDedupe(d))
			if err != nil || !again.Duplicate || again.EventID != first.EventID || again.Sequence != first.Sequence {
				t.Fatalf("repeat after the promote: %+v, %v", again, err)
			}
			if n := f.stored(t, first.Subject, first.EventID); n != 1 {
				t.Fatalf("%d copies stored, want 1", n)
			}
		})
	}
}

// TestForgetRightAfterPublish: Forget called as soon as Publish returns,
// while the promote Publish did not wait for may still land between
// Forget's read and its purge, still removes the claim.
func TestForgetRightAfterPublish(t *testing.T) {
	f := startCrash(t)
	ctx := context.Background()
	for i := range 20 {
		d := testDedupe
		d.Key = "forget-" + strconv.Itoa(i)
		first, err := f.pub.Publish(ctx, testEvent(), WithDedupe(d))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.pub.Forget(ctx, "acme", d, first.EventID); err != nil {
			t.Fatalf("key %s: %v", d.Key, err)
		}
		if e, err := f.pub.kv.Get(ctx, DedupeKey("acme", d.Source, d.Key)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("key %s after Forget: %v (claim %v)", d.Key, err, e)
		}
	}
}

package trigger_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// webhookEvent is an INTEGRATION event: its subject is the integration's,
// the same for every event of the source, as Dedupe.InSubject requires.
func webhookEvent() *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{Id: trigger.NewID(), Project: "acme", Kind: sbv1.Kind_INTEGRATION, Name: "invoice.paid",
		Integration: "stripe", Payload: []byte(`{"id":"evt_1"}`)}
}

// TestInSubject: with Dedupe.InSubject the event is stored on a subject of
// its key's own, and is the claim: a repeat is a duplicate of it, another
// key or source is a new event, a reused key with another fingerprint is a
// conflict — and no sb_dedupe bucket is needed.
func TestInSubject(t *testing.T) {
	f := start(t)
	pub, err := trigger.New(ctxT(t), trigger.Options{JS: f.srv.JS}) // no Dedupe bucket
	if err != nil {
		t.Fatal(err)
	}
	d := trigger.Dedupe{Source: "webhook.stripe", Key: "evt_1", TTL: time.Hour, InSubject: true, Fingerprint: "fp-a"}
	ev := webhookEvent()
	first, err := pub.Publish(ctxT(t), ev, trigger.WithDedupe(d))
	if err != nil {
		t.Fatal(err)
	}
	want := "sb.trigger.acme.integration.stripe." + trigger.SubjectToken(d.Source, d.Key)
	if first.Duplicate || first.EventID != ev.Id || first.Subject != want || first.Sequence == 0 {
		t.Fatalf("first %+v (ev.Id %s), want it stored on %s", first, ev.Id, want)
	}
	cases := []struct {
		name string
		d    trigger.Dedupe
		opts []trigger.PublishOption
		dup  bool  // a duplicate of first
		err  error // else a new event, unless err
	}{
		{name: "same key: duplicate", d: d, dup: true},
		{name: "same key, a forged fingerprint header: duplicate", d: d, opts: []trigger.PublishOption{trigger.WithHeader(trigger.HeaderDedupeFingerprint, "fp-b")}, dup: true},
		{name: "same key, another fingerprint: conflict", d: func() trigger.Dedupe { o := d; o.Fingerprint = "fp-b"; return o }(), err: trigger.ErrDedupeConflict},
		{name: "same key, no fingerprint: conflict", d: func() trigger.Dedupe { o := d; o.Fingerprint = ""; return o }(), err: trigger.ErrDedupeConflict},
		{name: "another key: new", d: func() trigger.Dedupe { o := d; o.Key = "evt_2"; return o }()},
		{name: "same key of another source: new", d: func() trigger.Dedupe { o := d; o.Source = "webhook.other"; return o }()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := pub.Publish(ctxT(t), webhookEvent(), append(c.opts, trigger.WithDedupe(c.d))...)
			switch {
			case c.err != nil:
				if !errors.Is(err, c.err) || res.EventID != first.EventID {
					t.Fatalf("%+v, %v; want %v naming %s", res, err, c.err, first.EventID)
				}
			case err != nil:
				t.Fatal(err)
			case c.dup:
				if !res.Duplicate || res.EventID != first.EventID || res.Sequence != first.Sequence || res.Subject != first.Subject {
					t.Fatalf("%+v, want a duplicate of %+v", res, first)
				}
			default:
				if res.Duplicate || res.EventID == first.EventID || res.Subject == first.Subject {
					t.Fatalf("%+v, want a new event on a subject of its own", res)
				}
			}
		})
	}
	msgs := stored(t, f.srv.JS, first.Subject)
	if len(msgs) != 1 || msgs[0].Header.Get(wire.HeaderMsgID) != first.EventID || msgs[0].Header.Get(trigger.HeaderDedupeFingerprint) != "fp-a" {
		t.Fatalf("%d events on %s, want 1: %s with fingerprint fp-a", len(msgs), first.Subject, first.EventID)
	}
	t.Run("an event whose subject varies (the user in it) is refused", func(t *testing.T) {
		if _, err := pub.Publish(ctxT(t), appEvent("u1"), trigger.WithDedupe(d)); !errors.Is(err, wire.ErrInvalid) {
			t.Fatalf("an APP_EVENT with InSubject: %v, want wire.ErrInvalid", err)
		}
	})
	t.Run("Forget is refused", func(t *testing.T) {
		if err := pub.Forget(ctxT(t), "acme", d, first.EventID); err == nil {
			t.Fatal("Forget of an InSubject key succeeded")
		}
	})
}

// TestInSubjectExpires stands for "days later": with a one-second TTL the
// stored event stops counting as the key's claim, and the same key then
// stores a new event (a compare-and-set over the old one).
func TestInSubjectExpires(t *testing.T) {
	f := start(t)
	d := trigger.Dedupe{Source: "webhook.stripe", Key: "evt_1", TTL: time.Second, InSubject: true}
	first, err := f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(d))
	if err != nil {
		t.Fatal(err)
	}
	var again trigger.Result
	for deadline := time.Now().Add(15 * time.Second); ; {
		again, err = f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(d))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate {
			break
		}
		if again.EventID != first.EventID {
			t.Fatalf("a repeat inside the TTL: %+v, want a duplicate of %s", again, first.EventID)
		}
		if time.Now().After(deadline) {
			t.Fatal("the key was never forgotten")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if again.EventID == first.EventID || again.Subject != first.Subject {
		t.Fatalf("after the TTL: %+v, want a new event on %s", again, first.Subject)
	}
	if n := len(stored(t, f.srv.JS, first.Subject)); n != 2 {
		t.Errorf("%d events stored, want the first and the new one", n)
	}
}

// TestInSubjectCrash: the two ways a publish outlives its caller's view of
// it. A publish whose acknowledgement was lost (the caller saw a timeout)
// is found by the retry and returned as the duplicate; a copy sent long
// after the key was stored again (flushed from a reconnect buffer) is
// refused by the same check, so no second event is stored.
func TestInSubjectCrash(t *testing.T) {
	f := start(t)
	d := trigger.Dedupe{Source: "webhook.stripe", TTL: time.Hour, InSubject: true}
	// raw is the message Publish sends for key at time at, sent by hand.
	raw := func(t *testing.T, key string, at time.Time) (*nats.Msg, string) {
		ev := webhookEvent()
		ev.Id = trigger.DedupeID(at, ev.Project, d.Source, key)
		subject, err := trigger.Subject(ev)
		if err != nil {
			t.Fatal(err)
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(subject + "." + trigger.SubjectToken(d.Source, key))
		m.Header.Set(wire.HeaderContentType, wire.ContentTypeProto)
		m.Header.Set(wire.HeaderMsgID, ev.Id)
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.Itoa(0))
		m.Data = data
		return m, ev.Id
	}
	t.Run("stored, acknowledgement lost: the retry returns it", func(t *testing.T) {
		m, id := raw(t, "evt_lost_ack", time.Now())
		if _, err := f.srv.JS.PublishMsg(ctxT(t), m); err != nil {
			t.Fatal(err)
		}
		k := d
		k.Key = "evt_lost_ack"
		res, err := f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(k))
		if err != nil || !res.Duplicate || res.EventID != id {
			t.Fatalf("retry: %+v, %v; want a duplicate of %s", res, err, id)
		}
		if n := len(stored(t, f.srv.JS, m.Subject)); n != 1 {
			t.Fatalf("%d events stored, want 1", n)
		}
	})
	t.Run("a late copy of an earlier attempt: refused", func(t *testing.T) {
		k := d
		k.Key = "evt_late_copy"
		m, _ := raw(t, k.Key, time.Now().Add(-time.Hour)) // the attempt the caller was told had failed
		res, err := f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(k))
		if err != nil || res.Duplicate {
			t.Fatalf("retry: %+v, %v", res, err)
		}
		_, err = f.srv.JS.PublishMsg(ctxT(t), m)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			t.Fatalf("the late copy: %v, want refused (wrong last sequence)", err)
		}
		if msgs := stored(t, f.srv.JS, res.Subject); len(msgs) != 1 || msgs[0].Header.Get(wire.HeaderMsgID) != res.EventID {
			t.Fatalf("%d events stored, want only %s", len(msgs), res.EventID)
		}
	})
}

// TestInSubjectUpgrade: a deployment whose sb_dedupe already holds claims
// (written before InSubject existed) honours them for a TTL: a provider's
// retry of a delivery accepted before the upgrade is still its duplicate,
// while a new key is stored in its own subject. A fresh deployment never
// looks in the bucket.
func TestInSubjectUpgrade(t *testing.T) {
	f := start(t)
	d := trigger.Dedupe{Source: "webhook.stripe", Key: "evt_before", TTL: time.Hour}
	old, err := f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(d)) // as the earlier version did
	if err != nil {
		t.Fatal(err)
	}
	d.InSubject = true
	t.Run("fresh deployment: the bucket is not consulted", func(t *testing.T) {
		res, err := f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(d))
		if err != nil || res.Duplicate || res.Subject == old.Subject {
			t.Fatalf("%+v, %v; want a new event in its own subject", res, err)
		}
	})
	// An earlier version wrote no marker: remove it, as if the claim above
	// came from one; the next Publisher sees claims and records the upgrade.
	if err := f.kv.Purge(ctxT(t), "_insubject.since"); err != nil {
		t.Fatal(err)
	}
	pub, err := trigger.New(ctxT(t), trigger.Options{JS: f.srv.JS, Dedupe: f.kv})
	if err != nil {
		t.Fatal(err)
	}
	legacy := trigger.Dedupe{Source: d.Source, Key: "evt_before_2", TTL: time.Hour}
	before, err := f.pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(legacy))
	if err != nil {
		t.Fatal(err)
	}
	legacy.InSubject = true
	cases := []struct {
		name string
		d    trigger.Dedupe
		want trigger.Result // zero: a new event in its own subject
	}{
		{"a claim from before the upgrade: its duplicate", legacy, before},
		{"a new key: its own subject", trigger.Dedupe{Source: d.Source, Key: "evt_after", TTL: time.Hour, InSubject: true}, trigger.Result{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := pub.Publish(ctxT(t), webhookEvent(), trigger.WithDedupe(c.d))
			if err != nil {
				t.Fatal(err)
			}
			if c.want.EventID != "" {
				if !res.Duplicate || res.EventID != c.want.EventID || res.Subject != c.want.Subject {
					t.Fatalf("%+v, want a duplicate of %+v", res, c.want)
				}
				return
			}
			if res.Duplicate || res.Subject != old.Subject+"."+trigger.SubjectToken(c.d.Source, c.d.Key) {
				t.Fatalf("%+v, want a new event in its own subject", res)
			}
		})
	}
	if n := len(stored(t, f.srv.JS, old.Subject)); n != 2 {
		t.Errorf("%d events on %s, want the two stored before the upgrade", n, old.Subject)
	}
}

package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// DefaultDedupeTTL is how long a dedupe key is remembered when Dedupe.TTL
// is 0: the longest common provider retry schedule (Stripe retries for three
// days).
const DefaultDedupeTTL = 72 * time.Hour

// MaxDedupeKeyLen bounds Dedupe.Key. The key is hashed before it is stored,
// so the bound only keeps a hostile provider from making us hash megabytes.
const MaxDedupeKeyLen = 4 << 10

// Dedupe makes a publish idempotent per (project, Source, Key) for TTL —
// far longer than the TRIGGERS stream's duplicate window (minutes), because
// providers retry a webhook for days. Source names the producer's id space
// ("hubspot.webhook", "scheduler"); Key is the id in it (the provider's
// event id).
//
// The first Publish for a key claims it in the sb_dedupe bucket and
// publishes; any later one inside TTL returns Result{Duplicate: true,
// EventID: <the first event's id>} and publishes nothing new. After TTL the
// key is forgotten and the same key publishes a new event.
//
// The guarantee is: never lose an accepted event (one whose Publish
// returned nil), never store one twice. The order of operations keeps it
// across a crash between any two steps:
//
//  1. Check the event against the budgets. Nothing is written yet, so a
//     too-large event never leaves a claim behind.
//  2. Claim: KV Create of the key with {pending, event id, subject} and the
//     key's TTL. The event id is DedupeID(now, project, source, key):
//     derived, not random, and kept in the claim — every later attempt for
//     the key republishes this id, never a new one. It carries the claim's
//     time because a key claimed again after its TTL is a new event and
//     must get a new id: run ids hash the event id, so a reused one would
//     make the new event's runs look already finished.
//  3. Publish the event with Nats-Msg-Id = that id, with a deadline of half
//     the stream's duplicate window after the claim, so every copy of the
//     event lands inside one window from the claim.
//  4. Promote the claim to {stored, stream, sequence} (a compare-and-set
//     on the revision step 2 wrote, renewing the TTL; kv.Update would drop
//     the TTL). It is sent only after step 3's acknowledgement, so a claim
//     says stored only of a stored event, and Publish returns without
//     waiting for its own acknowledgement (an asynchronous publish): the
//     event is stored, which is all the caller needs to know. A promote
//     that never lands — lost with the connection, refused by the
//     compare-and-set because a concurrent retry promoted or re-armed the
//     claim first, or never sent because the process stopped — leaves the
//     claim as a crash between steps 3 and 4 does: pending, with the event
//     stored, which a later Publish of the key resolves (below). Its
//     failure is logged, never returned.
//
// Steps 2 and 3 are not sent together, although that would save a round
// trip: the claim is what makes the publish safe. Published beside a
// Create that then finds the key taken (a provider's retry, hours later),
// the event would already be stored under a new id — a second copy — and
// nothing can take it back. The claim and the event are in two streams,
// so no atomic batch covers both.
//
// A later Publish of the key finds the claim and:
//   - stored: returns it as a duplicate;
//   - pending and younger than half the window (a crash after 2 or 3, a
//     concurrent publisher still in step 3, or a promote still in flight):
//     republishes the same id — if
//     the first copy was stored, JetStream's window absorbs this one — and
//     promotes;
//   - pending and older: the window cannot absorb a copy any more, so it
//     looks for the id in TRIGGERS on the claim's subject, around the claim's
//     time. Found: it promotes and returns a duplicate. Not found (the crash
//     came before the publish landed): it re-arms the claim with a fresh
//     time (compare-and-set, so one of several concurrent retries wins) and
//     publishes, as in step 3.
//
// A publish that JetStream refuses permanently stored nothing: the claim is
// purged, so a corrected retry is not answered with an id that never
// existed. A transient failure leaves the claim pending on purpose — the
// message may still be stored (nats.go flushes buffered publishes on
// reconnect), and the next attempt resolves it as above.
//
// So a failed Publish (a timeout, a lost connection) is never final: the
// event may or may not be stored, and retrying Publish with the same key is
// how its outcome is learnt — the retry returns the stored event as a
// duplicate, or stores it under the claimed id. Nothing a retry does can
// make a second event.
//
// Fingerprint, when set, says what makes two publishes of a key the same
// request (ingress hashes the HTTP request behind an Idempotency-Key). It
// is kept in the claim, and a later Publish of the key with another
// fingerprint fails with ErrDedupeConflict, publishing nothing — whether
// the first event was stored or is still pending.
//
// # Claims in the subject
//
// With Dedupe.InSubject the claim and the event are one message, so they
// are written in one round trip and cannot come apart. The event is
// published on Subject(ev) + "." + SubjectToken(source, key) — a last token
// naming the key, so the subject holds the key's events and nothing else —
// with Nats-Expected-Last-Subject-Sequence: 0. JetStream checks and stores
// it in one step: the first publish of the key is stored, every later one
// is refused (wrong last sequence) and reads the subject's last message
// instead (a direct get), which is the stored event:
//
//   - stored less than TTL ago: returned as the duplicate (its
//     Nats-Msg-Id is the event id; HeaderDedupeFingerprint, when the first
//     publish had a Fingerprint, is compared first: ErrDedupeConflict);
//   - stored TTL or more ago: the key is forgotten, and the publish is sent
//     again expecting that message's sequence (a compare-and-set, so one
//     of several concurrent publishes wins and the others find it);
//   - gone (aged out of the stream meanwhile): sent again expecting 0.
//
// There is nothing to resolve after a crash: no pending claim, no promote,
// no look-up around a claim's time. A Publish that failed (a timeout, a
// lost connection) either stored the event — the retry finds it — or did
// not — the retry stores it; and a late copy flushed from a reconnect
// buffer is refused by the same check, so the gap named below does not
// exist on this path. The costs: every event of the key's source gets a
// subject of its own, so TRIGGERS' per-subject index holds one entry per
// such event for MaxAge (sb_dedupe held one per key for TTL); the key is
// remembered for min(TTL, the stream's MaxAge); a consumer that filters a
// source's subject exactly must add its ".>" (see subjects.Trigger); and the
// key is recognized only on that one subject, so a Source whose events'
// Subject varies (the user in it) must not use it.
//
// An upgrade: claims in sb_dedupe written before a deployment's first
// InSubject publish stay valid for their TTL. The first Publisher with the
// bucket that starts on a bucket holding claims records the time in it
// (legacyMarker); for a TTL after that, an InSubject publish first looks the
// key up in the bucket (a second round trip) and, if a claim is there,
// resolves it as above instead. A fresh bucket records "none" and is never
// read. What the look-up cannot cover: during a rolling upgrade, an instance
// of the earlier version does not see the claims in the subject.
//
// Why not keep the claim a message of its own, beside the event in
// TRIGGERS, and store both as one JetStream atomic batch
// (AllowAtomicPublish)? Measured on nats-server 2.15.2 with a
// one-replica file stream, 32 publishers on one embedded server
// (TestWriteCosts, SB_TRIGGER_WRITE_COSTS=1; runs on a shared 2-core
// machine, load average 3–11): 7–229 two-message batches per second, against 1,537–9,777
// claim-then-publish pairs, 8,192–18,393 InSubject publishes and
// 14,675–34,990 single publishes. The server stages each atomic batch of a
// file stream in a file store of its own, created and deleted per batch,
// and at most 50 batches may be open on a stream at once. Pipelining a separate claim message with a publish conditional
// on it cannot be made safe: a publish checked against a claim that its
// own claim then writes passes for two concurrent publishers alike, and
// one checked after its claim can no longer tell its claim from another's.
//
// What is left: a copy flushed from a client's reconnect buffer more than
// the window after its claim, by a process that was told its publish failed
// and then stayed disconnected that long, is not found by the look-up and
// may be stored beside the republished one. Connections made by pkg/broker
// have no reconnect buffer (a publish while disconnected fails at once and
// is never sent later), so for them this cannot happen; a Publisher on a
// connection with nats.go's default 8 MB buffer keeps that gap. Clocks are
// assumed to agree within a quarter of the duplicate window.
type Dedupe struct {
	Source string
	Key    string
	// TTL is how long the key is remembered (0: DefaultDedupeTTL). It is
	// rounded up to whole seconds, the server's unit, and counts from the
	// claim's last write.
	TTL time.Duration
	// Fingerprint identifies the request behind the key (see Dedupe); ""
	// matches only a claim without one. At most MaxIDLen bytes: pass a hash.
	Fingerprint string
	// InSubject makes the stored event its own claim: one conditional
	// publish instead of a claim in sb_dedupe and then the publish (see
	// "Claims in the subject" at Dedupe). Only for a Source whose events all
	// have one Subject — one integration's webhooks — because the key is
	// recognized on that subject alone: Publish refuses it (wire.ErrInvalid)
	// for kinds other than INTEGRATION and API_RESOURCE, whose subject key
	// is the integration. Forget does not apply to such keys.
	InSubject bool
}

// ErrDedupeConflict is a dedupe key published again with another
// Fingerprint than its claim's: the producer's caller reused the key for a
// different request. Nothing was published; Result.EventID is the claim's.
var ErrDedupeConflict = errors.New("dedupe key already claimed by a different request")

// WithDedupe publishes with long-lived dedupe (see Dedupe). The Publisher
// needs Options.Dedupe. Publish replaces ev.Id with the claimed id.
func WithDedupe(d Dedupe) PublishOption {
	return func(o *publishOpts) { o.dedupe = &d }
}

// DedupeID is the event id claimed for (project, source, key) at time t.
func DedupeID(t time.Time, project, source, key string) string {
	return envelope.DerivedID(t, "dedupe", project, source, key)
}

// DedupeKey is the sb_dedupe key of (project, source, key): the key is
// hashed so any provider id fits the KV key alphabet and length.
func DedupeKey(project, source, key string) string {
	sum := sha256.Sum256([]byte(key))
	return project + "." + subjects.Token(source) + "." + hex.EncodeToString(sum[:])
}

// Claim states.
const (
	statePending = "pending"
	stateStored  = "stored"
)

// claim is the value of a dedupe key.
type claim struct {
	State   string `json:"state"`
	EventID string `json:"eventId"`
	Subject string `json:"subject"`
	Stream  string `json:"stream,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	// Fingerprint is Dedupe.Fingerprint of the publish that claimed it.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// maxClaimAttempts bounds the loop over a key that keeps changing under us
// (expiring, being re-armed by a concurrent retry).
const maxClaimAttempts = 5

func (p *Publisher) publishDeduped(ctx context.Context, ev *sbv1.TriggerEvent, subject string, o *publishOpts) (Result, error) {
	d := *o.dedupe
	if p.kv == nil && !d.InSubject {
		return Result{}, errors.New("trigger: WithDedupe needs Options.Dedupe (the sb_dedupe bucket)")
	}
	switch {
	case d.Source == "" || len(d.Source) > wire.MaxIDLen:
		return Result{}, fmt.Errorf("trigger: %w: dedupe source must be 1 to %d bytes", wire.ErrInvalid, wire.MaxIDLen)
	case d.Key == "" || len(d.Key) > MaxDedupeKeyLen:
		return Result{}, fmt.Errorf("trigger: %w: dedupe key must be 1 to %d bytes", wire.ErrInvalid, MaxDedupeKeyLen)
	case d.TTL < 0:
		return Result{}, fmt.Errorf("trigger: %w: negative dedupe TTL", wire.ErrInvalid)
	case len(d.Fingerprint) > wire.MaxIDLen:
		return Result{}, fmt.Errorf("trigger: %w: dedupe fingerprint is %d bytes, over %d", wire.ErrInvalid, len(d.Fingerprint), wire.MaxIDLen)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = DefaultDedupeTTL
	}
	ttl = (ttl + time.Second - 1).Truncate(time.Second)
	key := DedupeKey(ev.Project, d.Source, d.Key)
	if d.InSubject {
		switch ev.GetKind() {
		case sbv1.Kind_INTEGRATION, sbv1.Kind_API_RESOURCE:
			// Their subject key is the integration (SubjectKey), the same
			// for every event of a source, whoever the event is for.
		default:
			return Result{}, fmt.Errorf("trigger: %w: Dedupe.InSubject needs an INTEGRATION or API_RESOURCE event, whose subject does not vary per event; %v events keep the claim in sb_dedupe", wire.ErrInvalid, ev.GetKind())
		}
		legacy, err := p.legacyClaim(ctx, key, ttl)
		if err != nil {
			return Result{}, err
		}
		if !legacy {
			return p.publishInSubject(ctx, ev, subject, o, d, ttl)
		}
		// A claim written before InSubject was: resolved here as it was
		// then, so a provider's retry across the upgrade stays one event.
	}

	for range maxClaimAttempts {
		now := time.Now()
		ev.Id = DedupeID(now, ev.Project, d.Source, d.Key)
		m, err := p.message(ev, subject, o)
		if err != nil {
			return Result{}, err
		}
		c := claim{State: statePending, EventID: ev.Id, Subject: subject, Fingerprint: d.Fingerprint}
		rev, err := p.kv.Create(ctx, key, mustJSON(c), jetstream.KeyTTL(ttl))
		if err == nil {
			return p.publishClaimed(ctx, m, key, rev, c, now, ttl, true)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Result{}, fmt.Errorf("trigger: dedupe claim %s: %w", key, err)
		}
		e, err := p.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or purged since the Create
		}
		if err != nil {
			return Result{}, fmt.Errorf("trigger: read dedupe claim %s: %w", key, err)
		}
		var prev claim
		if err := json.Unmarshal(e.Value(), &prev); err != nil || prev.EventID == "" || prev.Subject == "" {
			return Result{}, fmt.Errorf("trigger: dedupe claim %s is not a claim: %q", key, wire.Prefix(string(e.Value()), 128))
		}
		if prev.Fingerprint != d.Fingerprint {
			// Checked before anything is republished: another request's
			// content must never be stored under this claim's id.
			return Result{EventID: prev.EventID, Subject: prev.Subject}, fmt.Errorf("trigger: key %s of %s: %w", key, d.Source, ErrDedupeConflict)
		}
		if prev.State == stateStored {
			return Result{EventID: prev.EventID, Subject: prev.Subject, Stream: prev.Stream, Sequence: prev.Seq, Duplicate: true}, nil
		}
		// Pending: republish under the claimed id, on the claimed subject,
		// so that every copy is one JetStream can recognize.
		ev.Id = prev.EventID
		if m, err = p.message(ev, prev.Subject, o); err != nil {
			return Result{}, err
		}
		at := e.Created()
		if time.Since(at) < p.window/2 {
			return p.publishClaimed(ctx, m, key, e.Revision(), prev, at, ttl, false)
		}
		seq, found, err := p.findStored(ctx, prev, at)
		if err != nil {
			return Result{}, err
		}
		if found {
			prev.State, prev.Stream, prev.Seq = stateStored, subjects.StreamTriggers, seq
			if _, err := p.writeClaim(ctx, key, prev, e.Revision(), ttl); err != nil {
				p.log.Warn("dedupe claim not promoted; the next duplicate looks the event up again", "key", key, "event", prev.EventID, "err", err)
			}
			return Result{EventID: prev.EventID, Subject: prev.Subject, Stream: prev.Stream, Sequence: seq, Duplicate: true}, nil
		}
		rev, err = p.writeClaim(ctx, key, prev, e.Revision(), ttl)
		if casConflict(err) {
			continue // another retry re-armed or promoted it first
		}
		if err != nil {
			return Result{}, fmt.Errorf("trigger: re-arm dedupe claim %s: %w", key, err)
		}
		return p.publishClaimed(ctx, m, key, rev, prev, time.Now(), ttl, true)
	}
	return Result{}, fmt.Errorf("trigger: dedupe claim %s kept changing over %d attempts", key, maxClaimAttempts)
}

// Forget removes the claim of (project, d.Source, d.Key) if it still names
// eventID, so that the next Publish of the key is a new event with a new
// id. It is for an event whose fate is settled and is "nothing happens": a
// request the router refused (the decision is stored, nothing runs), whose
// caller may fix the cause and retry with the same key. Never call it
// after a failed Publish — the event may still be stored, and only a retry
// of the key can tell (see Dedupe). A key already gone or claimed again for
// another event is left alone.
func (p *Publisher) Forget(ctx context.Context, project string, d Dedupe, eventID string) error {
	if d.InSubject {
		// The claim is the stored event itself, which must stay (replay,
		// audit); forgetting would need a marker of its own that the
		// publish path reads. No producer that forgets uses InSubject.
		return errors.New("trigger: Forget: not implemented for a key with Dedupe.InSubject (its claim is the stored event)")
	}
	if p.kv == nil {
		return errors.New("trigger: Forget needs Options.Dedupe (the sb_dedupe bucket)")
	}
	key := DedupeKey(project, d.Source, d.Key)
	for range maxClaimAttempts {
		e, err := p.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("trigger: read dedupe claim %s: %w", key, err)
		}
		var c claim
		if err := json.Unmarshal(e.Value(), &c); err != nil || c.EventID != eventID {
			return nil
		}
		err = p.kv.Purge(ctx, key, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(time.Minute))
		if casConflict(err) {
			// Changed since we read it: the promote of this very event
			// (not waited for by Publish) may have landed in between, so
			// read it again rather than leave the claim behind.
			continue
		}
		if err != nil {
			return fmt.Errorf("trigger: forget dedupe claim %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("trigger: dedupe claim %s kept changing over %d attempts", key, maxClaimAttempts)
}

// publishClaimed publishes m under claim c (revision rev, written at at) and
// promotes the claim. own says this call wrote the claim's current revision,
// so it may purge it when JetStream refuses the message for good.
func (p *Publisher) publishClaimed(ctx context.Context, m *nats.Msg, key string, rev uint64, c claim, at time.Time, ttl time.Duration, own bool) (Result, error) {
	pctx, cancel := context.WithDeadline(ctx, at.Add(p.window/2))
	defer cancel()
	ack, err := p.js.PublishMsg(pctx, m)
	if err != nil {
		if own && wire.Permanent(err) {
			if perr := p.kv.Purge(context.WithoutCancel(ctx), key, jetstream.LastRevision(rev), jetstream.PurgeTTL(time.Minute)); perr != nil {
				p.log.Warn("dedupe claim of a refused event not purged; retries of the key fail until it expires", "key", key, "err", perr)
			}
		}
		return Result{}, fmt.Errorf("trigger: publish event %s on %s: %w", c.EventID, m.Subject, err)
	}
	c.State, c.Stream, c.Seq = stateStored, ack.Stream, ack.Sequence
	p.promote(key, c, rev, ttl)
	return Result{EventID: c.EventID, Subject: m.Subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// promote writes the stored claim c over revision rev of key without
// waiting for JetStream's acknowledgement (step 4 of Dedupe): a promote
// that does not land leaves a pending claim, which the next Publish of the
// key resolves, so it is not worth a round trip on the caller's path. The
// outcome is only logged, by a goroutine that waits at most one duplicate
// window (nats.go never resolves a future whose connection was closed).
func (p *Publisher) promote(key string, c claim, rev uint64, ttl time.Duration) {
	f, err := p.js.PublishMsgAsync(p.claimMsg(key, c), jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if err != nil {
		p.log.Warn("dedupe claim not promoted; a duplicate is still recognized", "key", key, "event", c.EventID, "err", err)
		return
	}
	go func() {
		t := time.NewTimer(p.window)
		defer t.Stop()
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if !casConflict(err) { // a concurrent retry got there first: nothing lost
				p.log.Warn("dedupe claim not promoted; a duplicate is still recognized", "key", key, "event", c.EventID, "err", err)
			}
		case <-t.C:
			p.log.Warn("dedupe claim promotion not acknowledged; a duplicate is still recognized", "key", key, "event", c.EventID)
		}
	}()
}

// writeClaim replaces revision rev of key with c, setting the TTL again.
// It publishes to the bucket's subject itself because kv.Update cannot set a
// TTL: an updated claim would never expire.
func (p *Publisher) writeClaim(ctx context.Context, key string, c claim, rev uint64, ttl time.Duration) (uint64, error) {
	ack, err := p.js.PublishMsg(ctx, p.claimMsg(key, c), jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// claimMsg is the message that writes c as the value of key.
func (p *Publisher) claimMsg(key string, c claim) *nats.Msg {
	m := nats.NewMsg("$KV." + p.kv.Bucket() + "." + key)
	m.Data = mustJSON(c)
	return m
}

// casConflict reports a compare-and-set that lost: the key changed since
// the revision we read (10071; 10164 on replicated streams).
func casConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// HeaderDedupeFingerprint carries Dedupe.Fingerprint on an event stored
// with Dedupe.InSubject, where the event is its own claim.
const HeaderDedupeFingerprint = "Sb-Dedupe-Fingerprint"

// SubjectToken is the last subject token of an event stored with
// Dedupe.InSubject: 128 bits of SHA-256 over the source and the key, in hex,
// so any provider id fits the subject alphabet in 32 bytes.
func SubjectToken(source, key string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// publishInSubject is WithDedupe with Dedupe.InSubject: the event, on a
// subject of the key's own, is its claim (see "Claims in the subject").
func (p *Publisher) publishInSubject(ctx context.Context, ev *sbv1.TriggerEvent, subject string, o *publishOpts, d Dedupe, ttl time.Duration) (Result, error) {
	subject += "." + SubjectToken(d.Source, d.Key)
	// The fingerprint header is Dedupe.Fingerprint's alone: one given with
	// WithHeader is dropped, so no caller can forge or clear another's.
	oo := *o
	oo.headers = make([]header, 0, len(o.headers)+1)
	for _, h := range o.headers {
		if h.name != HeaderDedupeFingerprint {
			oo.headers = append(oo.headers, h)
		}
	}
	if d.Fingerprint != "" {
		oo.headers = append(oo.headers, header{HeaderDedupeFingerprint, d.Fingerprint})
	}
	o = &oo
	var last uint64 // the subject's last sequence the publish expects: 0, none
	for range maxClaimAttempts {
		// Derived like DedupeID, under a tag of its own: a publish of the
		// key through sb_dedupe in the same millisecond (an upgrade's
		// legacy claim) must not share its Nats-Msg-Id.
		ev.Id = envelope.DerivedID(time.Now(), "dedupe-subject", ev.Project, d.Source, d.Key)
		m, err := p.message(ev, subject, o)
		if err != nil {
			return Result{}, err
		}
		ack, err := p.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
		if err == nil {
			return Result{EventID: ev.Id, Subject: subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		if !casConflict(err) {
			// Permanent or not, nothing else was written: a retry finds the
			// event if this one was stored after all, else stores it.
			return Result{}, fmt.Errorf("trigger: publish event %s on %s: %w", ev.Id, subject, err)
		}
		prev, err := p.lastStored(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			last = 0 // aged out since the refusal
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("trigger: read the stored event of key %s of %s: %w", subject, d.Source, err)
		}
		id := prev.Header.Get(wire.HeaderMsgID)
		if time.Since(prev.Time) >= ttl || id == "" {
			// Older than the key's TTL: forgotten, so a new event replaces
			// it as the subject's last (one id-less message, which no
			// Publish writes, counts as forgotten too rather than blocking
			// the key until MaxAge).
			last = prev.Sequence
			continue
		}
		if prev.Header.Get(HeaderDedupeFingerprint) != d.Fingerprint {
			return Result{EventID: id, Subject: subject}, fmt.Errorf("trigger: key %s of %s: %w", subject, d.Source, ErrDedupeConflict)
		}
		return Result{EventID: id, Subject: subject, Stream: subjects.StreamTriggers, Sequence: prev.Sequence, Duplicate: true}, nil
	}
	return Result{}, fmt.Errorf("trigger: dedupe subject %s kept changing over %d attempts", subject, maxClaimAttempts)
}

// legacyMarker is the sb_dedupe key that records when this deployment's
// Publishers started writing InSubject claims (Dedupe.InSubject): an RFC 3339
// time, or "" when the bucket held no claim then, so there is none to honour.
const legacyMarker = "_insubject.since"

// legacySince reads legacyMarker, writing it on the first start: now if the
// bucket holds claims (written by an earlier version, which knew only
// sb_dedupe claims), else "" (a fresh deployment).
func legacySince(ctx context.Context, kv jetstream.KeyValue) (time.Time, error) {
	for range maxClaimAttempts {
		e, err := kv.Get(ctx, legacyMarker)
		if err == nil {
			if len(e.Value()) == 0 {
				return time.Time{}, nil
			}
			t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
			if err != nil {
				return time.Time{}, fmt.Errorf("trigger: %s in %s is not a time: %q", legacyMarker, kv.Bucket(), wire.Prefix(string(e.Value()), 64))
			}
			return t, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return time.Time{}, fmt.Errorf("trigger: read %s: %w", legacyMarker, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("trigger: read the state of %s: %w", kv.Bucket(), err)
		}
		v := ""
		if st.Values() > 0 {
			v = time.Now().UTC().Format(time.RFC3339Nano)
		}
		if _, err := kv.Create(ctx, legacyMarker, []byte(v)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return time.Time{}, fmt.Errorf("trigger: write %s: %w", legacyMarker, err)
		}
		// Written, or another Publisher wrote it first: read what stands.
	}
	return time.Time{}, fmt.Errorf("trigger: %s kept changing", legacyMarker)
}

// legacyClaim reports whether key has a claim in sb_dedupe that an InSubject
// publish must honour: only for a TTL after the upgrade (legacySince), the
// longest such a claim can live; after it, no look-up is made.
func (p *Publisher) legacyClaim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if p.kv == nil || p.legacySince.IsZero() || time.Since(p.legacySince) >= ttl {
		return false, nil
	}
	_, err := p.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("trigger: read dedupe claim %s: %w", key, err)
	}
	return true, nil
}

// lastStored reads subject's last message in TRIGGERS (a direct get: the
// stream allows them).
func (p *Publisher) lastStored(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	s, err := p.js.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(ctx, subject)
}

// scanBatch is how many headers findStored reads per request.
const scanBatch = 256

// findStored looks for c's event in TRIGGERS: on c's subject, from a window
// before the claim's time at to two windows after it, reading headers only.
// Every copy published under the claim landed in that span (publishes are
// cut off half a window after the claim), with a window of slack for clocks.
func (p *Publisher) findStored(ctx context.Context, c claim, at time.Time) (uint64, bool, error) {
	start, end := at.Add(-p.window), at.Add(2*p.window)
	cons, err := p.js.CreateConsumer(ctx, subjects.StreamTriggers, jetstream.ConsumerConfig{
		FilterSubject: c.Subject, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		AckPolicy: jetstream.AckNonePolicy, HeadersOnly: true, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, false, fmt.Errorf("trigger: look up event %s: %w", c.EventID, err)
	}
	defer func() {
		_ = p.js.DeleteConsumer(context.WithoutCancel(ctx), subjects.StreamTriggers, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	for seen := uint64(0); seen < pending; {
		batch, err := cons.FetchNoWait(scanBatch)
		if err != nil {
			return 0, false, fmt.Errorf("trigger: look up event %s: %w", c.EventID, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return 0, false, fmt.Errorf("trigger: look up event %s: %w", c.EventID, err)
			}
			if m.Headers().Get(wire.HeaderMsgID) == c.EventID {
				return md.Sequence.Stream, true, nil
			}
			if md.Timestamp.After(end) {
				return 0, false, nil
			}
		}
		if err := batch.Error(); err != nil {
			return 0, false, fmt.Errorf("trigger: look up event %s: %w", c.EventID, err)
		}
		if n == 0 {
			// Messages counted as pending were removed (aged out) meanwhile.
			break
		}
		seen += uint64(n)
	}
	return 0, false, nil
}

// mustJSON encodes a claim; a struct of strings and a number cannot fail.
func mustJSON(c claim) []byte {
	b, _ := json.Marshal(c)
	return b
}

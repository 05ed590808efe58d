package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Webhook subscriptions (manifest `subscription:`). For an integration
// whose webhooks are created per user through the provider's API, a
// credential needs one subscription per trigger event (or one for all, per
// the manifest) while at least one workflow on that trigger is enabled for
// it; the subscription is deleted when the last one is disabled or the
// credential removed.
//
// Like the lifecycle events, the work is derived from the stored change,
// never from an HTTP handler: a durable consumer on the directory's change
// stream ("lifecycle-subscribe", shared by every replica) compares each
// user record revision with the user's subscription state (sb_lifecycle
// "s.<p>.<U>") and records what is wanted — compare-and-set, so of two
// replicas deriving two revisions one wins and the other starts over from
// it. A user with work left gets a marker "sq.<p>.<U>"; each replica's
// reconciler reads the markers (only users with work pending, never every
// user) and does the provider calls under the user's lock "sl.<p>.<U>"
// (KV Create with a TTL, as refresh.go's), so one replica at a time calls
// the provider for a credential: two replicas never create the same
// subscription twice. A replica that dies mid-way leaves the state and its
// marker behind for the next pass; one that dies between a provider's
// create answer and storing its id can leave that one subscription behind
// at the provider (a create is not idempotent at Asana or Stripe).
//
// Failures are retried with exponential backoff and shown on the
// credential (`subscriptions: [{trigger, status, error}]`). A removed
// credential is deleted at once; its teardown continues from the state,
// with a sealed copy of the access token kept for it, and is given up
// after SubscriptionOptions.TeardownAttempts, recorded in the state and the
// log.

// SubscriptionOptions tune subscriptions.
type SubscriptionOptions struct {
	// HookBaseURL is the base URL providers reach the webhook receiver at:
	// callbacks are HookBaseURL + /v1/hooks/… (default Options.PublicURL).
	// Without either no subscription is created (its status says so).
	HookBaseURL string
	// Secrets seals the copy of the access token kept for teardown (the
	// project's SWITCHBOARD_SECRET_KEY box); nil keeps it plain, as the
	// directory does without a key.
	Secrets *secrets.Box
	// Backoff is the first retry delay (default DefaultSubscriptionBackoff),
	// doubled per failure up to MaxBackoff (default
	// DefaultSubscriptionMaxBackoff).
	Backoff, MaxBackoff time.Duration
	// TeardownAttempts bounds the deletes tried for a subscription no
	// longer wanted (default DefaultTeardownAttempts).
	TeardownAttempts int
	// Interval is how often a replica looks for pending work besides the
	// nudge of its own consumer (default DefaultSubscriptionInterval).
	Interval time.Duration
	// CatalogInterval is how often a replica looks for catalog changes
	// that change what credentials need (subscriptions_catalog.go;
	// default DefaultSubscriptionCatalogInterval).
	CatalogInterval time.Duration
	// LockTTL is how long a dead replica's hold of a user's lock blocks
	// the others (default one minute; at least maxCallsPerLock calls of
	// subCallTimeout).
	LockTTL time.Duration
}

// Subscription defaults.
const (
	DefaultSubscriptionBackoff    = 5 * time.Second
	DefaultSubscriptionMaxBackoff = 10 * time.Minute
	DefaultTeardownAttempts       = 10
	DefaultSubscriptionInterval   = 2 * time.Second

	subscriberName  = "lifecycle-subscribe"
	subStatePrefix  = "s."
	subMarkerPrefix = "sq."
	subLockPrefix   = "sl."
	subLockTTL      = time.Minute
	subCallTimeout  = 20 * time.Second
	// maxCallsPerLock bounds the provider calls made under one hold of a
	// user's lock, so that they end (each within subCallTimeout) before
	// the lock's TTL lets another replica in.
	maxCallsPerLock    = 2
	subConcurrency     = 8
	perCredentialKey   = "*"
	subSecretIDPrefix  = "subscription:"
	hookSecretID       = "hook-secret" // the webhook receiver's id for a handshake's secret (Asana)
	webhookSecretsKey  = "webhookSecrets"
	maxSubErrorMessage = 300
)

// Subscription statuses shown on a credential.
const (
	SubPending   = "pending"   // wanted, not created yet
	SubActive    = "active"    // created at the provider
	SubFailed    = "failed"    // create failed; retried with backoff
	SubDeleting  = "deleting"  // no longer wanted; delete pending or retried
	SubAbandoned = "abandoned" // the delete was given up
)

// SubscriptionStatus is one subscription as a credential shows it.
type SubscriptionStatus struct {
	// Trigger is the trigger event, "*" for a per-credential subscription.
	Trigger       string     `json:"trigger"`
	Status        string     `json:"status"`
	Error         string     `json:"error,omitempty"`
	Attempts      int        `json:"attempts,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	// ProviderID is the provider's subscription id.
	ProviderID string `json:"providerId,omitempty"`
}

// subUser is the subscription state of one user's credentials.
type subUser struct {
	Rev     uint64              `json:"rev"`
	Project string              `json:"project"`
	User    string              `json:"user"`
	Creds   map[string]*subCred `json:"creds,omitempty"`
}

type subCred struct {
	Integration       string         `json:"integration"`
	Gone              bool           `json:"gone,omitempty"` // removed from the directory
	ProviderAccountID string         `json:"providerAccountId,omitempty"`
	Settings          map[string]any `json:"settings,omitempty"`
	SecretVersion     string         `json:"secretVersion,omitempty"`
	// Token is the sealed access token a teardown uses once the
	// credential is gone, of secret version TokenVersion.
	Token        json.RawMessage `json:"token,omitempty"`
	TokenVersion string          `json:"tokenVersion,omitempty"`
	Subs         map[string]*sub `json:"subs,omitempty"`
}

type sub struct {
	EventType string    `json:"eventType,omitempty"`
	Want      bool      `json:"want"`
	ID        string    `json:"id,omitempty"`
	HasSecret bool      `json:"hasSecret,omitempty"`
	Abandoned bool      `json:"abandoned,omitempty"`
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	NextAt    time.Time `json:"nextAt,omitzero"`
}

// pending reports whether s needs a provider call.
func (s *sub) pending() bool {
	return (s.Want && s.ID == "") || (!s.Want && s.ID != "" && !s.Abandoned)
}

func (s *sub) status() string {
	switch {
	case s.Abandoned:
		return SubAbandoned
	case !s.Want:
		return SubDeleting
	case s.ID != "":
		return SubActive
	case s.Attempts > 0:
		return SubFailed
	}
	return SubPending
}

// wantChanged resets the retry state of s, whose Want just changed.
func (s *sub) wantChanged(want bool) {
	s.Want, s.Attempts, s.NextAt, s.Error, s.Abandoned = want, 0, time.Time{}, "", false
}

// tidy drops subscriptions neither wanted nor existing, then credentials
// left without any.
func (st *subUser) tidy() {
	for id, c := range st.Creds {
		for k, s := range c.Subs {
			if !s.Want && s.ID == "" {
				delete(c.Subs, k)
			}
		}
		if len(c.Subs) == 0 {
			delete(st.Creds, id)
		}
	}
}

// nextDue is the earliest time a pending call is due, and whether any is.
func (st *subUser) nextDue() (time.Time, bool) {
	var at time.Time
	any := false
	for _, c := range st.Creds {
		for _, s := range c.Subs {
			if !s.pending() {
				continue
			}
			if !any || s.NextAt.Before(at) {
				at, any = s.NextAt, true
			}
		}
	}
	return at, any
}

// subMarker is a pending-work marker's value.
type subMarker struct {
	At time.Time `json:"at"`
}

// subscriber is one replica's consumer and reconciler.
type subscriber struct {
	s       *Service
	kv      jetstream.KeyValue
	cons    *consume.Consumer
	log     *slog.Logger
	opts    SubscriptionOptions
	nudge   chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	catDone chan struct{}
}

func (s *Service) startSubscriber(ctx context.Context) error {
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	o := s.opts.Subscriptions
	if o.HookBaseURL == "" {
		o.HookBaseURL = s.opts.PublicURL
	}
	o.HookBaseURL = strings.TrimRight(o.HookBaseURL, "/")
	if o.Backoff <= 0 {
		o.Backoff = DefaultSubscriptionBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultSubscriptionMaxBackoff
	}
	if o.TeardownAttempts <= 0 {
		o.TeardownAttempts = DefaultTeardownAttempts
	}
	if o.Interval <= 0 {
		o.Interval = DefaultSubscriptionInterval
	}
	if o.LockTTL <= 0 {
		o.LockTTL = subLockTTL
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sb := &subscriber{s: s, kv: kv, log: s.logger.With("component", "lifecycle-subscribe"), opts: o,
		nudge: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}), catDone: make(chan struct{})}
	ackWait := s.opts.DeriveAckWait
	if ackWait <= 0 {
		ackWait = DefaultDeriveAckWait
	}
	sb.cons, err = consume.Start(ctx, s.opts.JS, consume.Options{
		Name: subscriberName, Stream: directory.StreamName, FilterSubjects: []string{directory.UserRecordSubjects},
		AckWait: ackWait, Concurrency: 4, MaxAckPending: 256, Handler: sb.handle, Logger: sb.log,
		DeadLetter: consume.DeadLetterTo(s.opts.JS, func(m jetstream.Msg) string {
			return subjects.DeadTrigger(recordProject(m.Subject()))
		}),
	})
	if err != nil {
		cancel()
		return fmt.Errorf("lifecycle: start the subscription consumer: %w", err)
	}
	go sb.loop(rctx)
	go sb.catalogLoop(rctx, sb.catDone)
	s.subscriber = sb
	return nil
}

func (sb *subscriber) stop(ctx context.Context) error {
	sb.cancel()
	<-sb.done
	<-sb.catDone
	return sb.cons.Stop(ctx)
}

// handle records what a user record revision wants.
func (sb *subscriber) handle(ctx context.Context, m jetstream.Msg) error {
	ch, ok, err := directory.DecodeChange(m)
	if !ok {
		return nil
	}
	if err != nil {
		return consume.Permanent(fmt.Errorf("lifecycle: %w", err))
	}
	key, rev, next := ch.Key, ch.Rev, ch.Next
	ukey := strings.TrimPrefix(key, "u.")
	for range 20 {
		st, srev, err := sb.load(ctx, ukey)
		if err != nil {
			return err
		}
		if st != nil && st.Rev >= rev {
			// Derived already; the marker may not have been written.
			if _, due := st.nextDue(); due {
				return sb.mark(ctx, ukey, time.Now())
			}
			return nil
		}
		nst := sb.want(st, next, rev)
		if nst == nil {
			return nil // no subscriptions, none wanted: no state to keep
		}
		if _, err := sb.store(ctx, ukey, nst, srev); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return err
		}
		if err := sb.fault(stageSubAfterState); err != nil {
			return err
		}
		if _, due := nst.nextDue(); due {
			return sb.mark(ctx, ukey, time.Now())
		}
		return nil
	}
	return fmt.Errorf("lifecycle: subscriptions of %s@%d: %w too often", key, rev, errConflict)
}

// want is st after record next at revision rev (nil when there is nothing
// to keep): every credential's wanted subscriptions, from the catalog's
// workflows on its integration's triggers that are enabled for it.
func (sb *subscriber) want(prev *subUser, next *directory.StoredUser, rev uint64) *subUser {
	st := &subUser{Creds: map[string]*subCred{}}
	if prev != nil {
		cp, _ := json.Marshal(prev)
		_ = json.Unmarshal(cp, st)
		if st.Creds == nil {
			st.Creds = map[string]*subCred{}
		}
	}
	st.Rev = rev
	if next != nil {
		st.Project, st.User = next.User.Project, next.User.ID
	}
	seen := map[string]bool{}
	if next != nil {
		for id, cr := range next.Credentials {
			seen[id] = true
			desired := sb.desired(st.Project, cr.Credential)
			sc := st.Creds[id]
			if sc != nil && sc.Integration != cr.Integration {
				// The id now names another integration's account: the
				// old subscriptions go; the new ones wait until they are
				// gone (the next change or pass).
				goneCred(sc)
				continue
			}
			if cr.Status != directory.CredentialValid {
				// Its token is refused (INVALID): nothing is created or
				// deleted with it until it is VALID again (reconnected).
				if sc != nil {
					sc.Gone = false
				}
				continue
			}
			if sc == nil {
				if len(desired) == 0 {
					continue
				}
				sc = &subCred{Integration: cr.Integration, Subs: map[string]*sub{}}
				st.Creds[id] = sc
			}
			sc.Gone, sc.ProviderAccountID, sc.Settings = false, cr.ProviderAccountID, cr.Settings
			if cr.SecretVersion != "" { // "" from a catalog walk's read: unknown, kept
				sc.SecretVersion = cr.SecretVersion
			}
			for k, typ := range desired {
				s := sc.Subs[k]
				if s == nil {
					s = &sub{}
					sc.Subs[k] = s
				}
				if !s.Want {
					s.wantChanged(true)
				}
				s.EventType = typ
			}
			for k, s := range sc.Subs {
				if _, ok := desired[k]; !ok && s.Want {
					s.wantChanged(false)
				}
			}
		}
	}
	for id, sc := range st.Creds {
		if !seen[id] {
			goneCred(sc)
		}
	}
	st.tidy()
	if len(st.Creds) == 0 && prev == nil {
		return nil
	}
	return st
}

func goneCred(sc *subCred) {
	sc.Gone = true
	for _, s := range sc.Subs {
		if s.Want {
			s.wantChanged(false)
		}
	}
}

// desired maps the subscriptions credential cr needs to the provider event
// type each stands for.
func (sb *subscriber) desired(project string, cr *directory.Credential) map[string]string {
	in, ok := sb.s.cat.Integration(project, cr.Integration)
	if !ok {
		return nil
	}
	m := in.Effective()
	if m.Subscription == nil {
		return nil
	}
	out := map[string]string{}
	for _, wf := range sb.s.cat.Workflows(project) {
		t := wf.Trigger
		if t.Type != workflow.TriggerIntegration || t.Integration != cr.Integration || !cr.Enabled(wf) {
			continue
		}
		if m.Subscription.PerCredential() {
			return map[string]string{perCredentialKey: ""}
		}
		typ := t.Event
		if ev, ok := m.Trigger(t.Event); ok && ev.Type != "" {
			typ = ev.Type
		}
		out[t.Event] = typ
	}
	return out
}

func (sb *subscriber) load(ctx context.Context, ukey string) (*subUser, uint64, error) {
	e, err := sb.kv.Get(ctx, subStatePrefix+ukey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("lifecycle: read subscriptions of %s: %w", ukey, err)
	}
	var st subUser
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, consume.Permanent(fmt.Errorf("lifecycle: unreadable subscriptions of %s: %w", ukey, err))
	}
	if st.Creds == nil {
		st.Creds = map[string]*subCred{}
	}
	return &st, e.Revision(), nil
}

// store writes st with compare-and-set against rev (0: must not exist).
func (sb *subscriber) store(ctx context.Context, ukey string, st *subUser, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, consume.Permanent(fmt.Errorf("lifecycle: encode subscriptions of %s: %w", ukey, err))
	}
	var n uint64
	if rev == 0 {
		n, err = sb.kv.Create(ctx, subStatePrefix+ukey, b)
	} else {
		n, err = sb.kv.Update(ctx, subStatePrefix+ukey, b, rev)
	}
	if err == nil {
		return n, nil
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
		return 0, errConflict
	}
	return 0, fmt.Errorf("lifecycle: write subscriptions of %s: %w", ukey, err)
}

// mark records that user ukey has work due at (and wakes this replica).
func (sb *subscriber) mark(ctx context.Context, ukey string, at time.Time) error {
	b, _ := json.Marshal(subMarker{At: at.UTC()})
	if _, err := sb.kv.Put(ctx, subMarkerPrefix+ukey, b); err != nil {
		return fmt.Errorf("lifecycle: mark subscriptions of %s: %w", ukey, err)
	}
	select {
	case sb.nudge <- struct{}{}:
	default:
	}
	return nil
}

func (sb *subscriber) loop(ctx context.Context) {
	defer close(sb.done)
	t := time.NewTicker(sb.opts.Interval)
	defer t.Stop()
	for {
		if err := sb.pass(ctx); err != nil && ctx.Err() == nil {
			sb.log.Warn("subscription pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-sb.nudge:
		}
	}
}

// pass reconciles every user whose marker is due.
func (sb *subscriber) pass(ctx context.Context) error {
	keys, err := sb.kv.ListKeysFiltered(ctx, subMarkerPrefix+">")
	if err != nil {
		return fmt.Errorf("lifecycle: list pending subscriptions: %w", err)
	}
	var all []string
	for k := range keys.Keys() {
		all = append(all, k)
	}
	// Every replica reads the same markers: each walks them in its own
	// random order, so they mostly take different users instead of
	// queueing on the same locks (as refresh.go's passes do).
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var wg sync.WaitGroup
	sem := make(chan struct{}, subConcurrency)
	for _, k := range all {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := sb.reconcile(ctx, strings.TrimPrefix(k, subMarkerPrefix)); err != nil && !errors.Is(err, errLocked) && ctx.Err() == nil {
				sb.log.Warn("subscription reconcile failed", "user_key", k, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

// outcome is what one provider call changed, applied to the freshest state.
type outcome struct {
	cred, key string
	apply     func(c *subCred, s *sub)
}

// reconcile does the due provider calls of one user under its lock.
func (sb *subscriber) reconcile(ctx context.Context, ukey string) error {
	me, err := sb.kv.Get(ctx, subMarkerPrefix+ukey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var mk subMarker
	_ = json.Unmarshal(me.Value(), &mk)
	now := time.Now()
	if mk.At.After(now) {
		return nil
	}
	release, err := sb.lock(ctx, ukey)
	if err != nil {
		return err
	}
	defer release()
	if err := sb.fault(stageSubLocked); err != nil {
		return err
	}
	st, _, err := sb.load(ctx, ukey)
	if err != nil {
		return err
	}
	var outs []outcome
	more := false
	if st != nil {
	creds:
		for _, id := range sortedKeys(st.Creds) {
			c := st.Creds[id]
			for _, k := range sortedKeys(c.Subs) {
				s := c.Subs[k]
				if !s.pending() || s.NextAt.After(now) {
					continue
				}
				if len(outs) == maxCallsPerLock {
					more = true // the rest after this lock, which they could outlast
					break creds
				}
				outs = append(outs, sb.call(ctx, st, id, c, k, s))
			}
		}
	}
	// Apply the outcomes to the state as it is now: the consumer may have
	// changed what is wanted meanwhile, and an id just created must never
	// be lost (a subscription no longer wanted is then deleted next).
	for range 20 {
		cur, rev, err := sb.load(ctx, ukey)
		if err != nil {
			return err
		}
		if cur == nil {
			if len(outs) == 0 {
				// No state (nothing wanted): the marker has no work.
				_ = sb.kv.Delete(ctx, subMarkerPrefix+ukey, jetstream.LastRevision(me.Revision()))
				return nil
			}
			cur = &subUser{Project: st.Project, User: st.User, Creds: map[string]*subCred{}}
		}
		for _, o := range outs {
			c := cur.Creds[o.cred]
			if c == nil {
				// Dropped meanwhile (nothing wanted any more): back, to
				// delete what the call just created.
				cp := *st.Creds[o.cred]
				cp.Subs = map[string]*sub{}
				c = &cp
				cur.Creds[o.cred] = c
			}
			s := c.Subs[o.key]
			if s == nil {
				s = &sub{}
				c.Subs[o.key] = s
			}
			o.apply(c, s)
		}
		cur.tidy()
		if len(outs) > 0 {
			if _, err := sb.store(ctx, ukey, cur, rev); errors.Is(err, errConflict) {
				continue
			} else if err != nil {
				return err
			}
		}
		if at, due := cur.nextDue(); due {
			if at.Before(now) || more {
				at = now
			}
			b, _ := json.Marshal(subMarker{At: at.UTC()})
			_, err := sb.kv.Update(ctx, subMarkerPrefix+ukey, b, me.Revision())
			if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !isWrongLast(err) {
				return fmt.Errorf("lifecycle: reschedule subscriptions of %s: %w", ukey, err)
			}
			if more {
				select {
				case sb.nudge <- struct{}{}:
				default:
				}
			}
			return nil
		}
		// Nothing left: the marker goes, unless the consumer rewrote it
		// meanwhile (new work), which then stays for the next pass.
		_ = sb.kv.Delete(ctx, subMarkerPrefix+ukey, jetstream.LastRevision(me.Revision()))
		return nil
	}
	return fmt.Errorf("lifecycle: subscriptions of %s: %w too often", ukey, errConflict)
}

// Stages a fault can stop subscriptions at (tests, Options.fault).
const (
	stageSubAfterState = "subscribe-after-state" // the consumer stored the state, before the marker
	stageSubLocked     = "subscribe-locked"      // a reconciler holds the user's lock, before any call
)

func (sb *subscriber) fault(stage string) error {
	if sb.s.opts.fault == nil {
		return nil
	}
	return sb.s.opts.fault(stage)
}

func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func (sb *subscriber) lock(ctx context.Context, ukey string) (func(), error) {
	key := subLockPrefix + ukey
	rev, err := sb.kv.Create(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339Nano)), jetstream.KeyTTL(sb.opts.LockTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, errLocked
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle: subscription lock: %w", err)
	}
	return func() { _ = sb.kv.Delete(context.WithoutCancel(ctx), key, jetstream.LastRevision(rev)) }, nil
}

// backoff is the delay after the n-th consecutive failure.
func (sb *subscriber) backoff(n int) time.Duration {
	d := sb.opts.Backoff
	for i := 1; i < n && d < sb.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, sb.opts.MaxBackoff)
}

// call makes the one provider call sub s of credential id needs.
func (sb *subscriber) call(ctx context.Context, st *subUser, id string, c *subCred, key string, s *sub) outcome {
	ctx, cancel := context.WithTimeout(ctx, subCallTimeout)
	defer cancel()
	log := sb.log.With("project", st.Project, "user", st.User, "credential", id, "integration", c.Integration, "trigger", key)
	if s.Want {
		o, err := sb.create(ctx, st, id, c, key, s)
		if err != nil {
			n := s.Attempts + 1
			next := time.Now().Add(sb.backoff(n))
			msg := truncateMsg(err.Error())
			log.Warn("subscription create failed; retrying", "attempt", n, "next", next, "err", msg)
			return outcome{cred: id, key: key, apply: func(_ *subCred, s *sub) {
				if s.Want && s.ID == "" {
					s.Attempts, s.NextAt, s.Error = n, next, msg
				}
			}}
		}
		log.Info("subscription created", "provider_id", o.id)
		return outcome{cred: id, key: key, apply: func(c *subCred, s *sub) {
			s.ID, s.HasSecret, s.Attempts, s.NextAt, s.Error = o.id, o.secret, 0, time.Time{}, ""
			if o.token != nil {
				c.Token, c.TokenVersion = o.token, o.tokenVersion
			}
		}}
	}
	err := sb.remove(ctx, st, id, c, key, s)
	if err == nil {
		log.Info("subscription deleted", "provider_id", s.ID)
		gone := s.ID
		return outcome{cred: id, key: key, apply: func(_ *subCred, s *sub) {
			if s.ID == gone {
				s.ID, s.HasSecret, s.Attempts, s.NextAt, s.Error = "", false, 0, time.Time{}, ""
			}
		}}
	}
	n := s.Attempts + 1
	msg := truncateMsg(err.Error())
	if n >= sb.opts.TeardownAttempts {
		log.Error("subscription teardown given up", "provider_id", s.ID, "attempts", n, "err", msg)
		return outcome{cred: id, key: key, apply: func(_ *subCred, s *sub) {
			s.Attempts, s.Abandoned, s.Error = n, true, msg+fmt.Sprintf(" (given up after %d attempts)", n)
		}}
	}
	next := time.Now().Add(sb.backoff(n))
	log.Warn("subscription delete failed; retrying", "attempt", n, "next", next, "err", msg)
	return outcome{cred: id, key: key, apply: func(_ *subCred, s *sub) {
		if !s.Want {
			s.Attempts, s.NextAt, s.Error = n, next, msg
		}
	}}
}

func truncateMsg(s string) string {
	s = strings.TrimPrefix(s, "lifecycle: ")
	if len(s) > maxSubErrorMessage {
		return s[:maxSubErrorMessage] + "…"
	}
	return s
}

type created struct {
	id           string
	secret       bool
	token        json.RawMessage
	tokenVersion string
}

func (sb *subscriber) manifestOf(project, integration string) (*manifest.Subscription, error) {
	in, ok := sb.s.cat.Integration(project, integration)
	if !ok || in.Effective().Subscription == nil {
		return nil, fmt.Errorf("integration %q has no subscription section any more", integration)
	}
	return in.Effective().Subscription, nil
}

func (sb *subscriber) create(ctx context.Context, st *subUser, id string, c *subCred, key string, s *sub) (created, error) {
	var out created
	ms, err := sb.manifestOf(st.Project, c.Integration)
	if err != nil {
		return out, err
	}
	if sb.opts.HookBaseURL == "" {
		return out, errors.New("no public URL is configured (SWITCHBOARD_PUBLIC_URL): the provider would have nowhere to call")
	}
	cred, err := sb.s.dir.Credential(ctx, st.Project, st.User, id)
	if err != nil {
		return out, fmt.Errorf("read the credential: %w", err)
	}
	raw, err := sb.s.dir.Secret(ctx, st.Project, st.User, id)
	if err != nil {
		return out, fmt.Errorf("read the credential's secret: %w", err)
	}
	token := accessToken(raw)
	if token == "" {
		return out, errors.New("the credential has no access token (secret.accessToken or secret.apiKey)")
	}
	callback := sb.opts.HookBaseURL + "/v1/hooks/" + st.Project + "/" + c.Integration
	if !ms.AppCallback() {
		callback += "/" + cred.WebhookToken
	}
	event := key
	if key == perCredentialKey {
		event = ""
	}
	vars := manifest.SubscriptionVars{CredentialID: id, AccessToken: token, ProviderAccountID: cred.ProviderAccountID,
		Settings: cred.Settings, User: st.User, Event: event, EventType: s.EventType, CallbackURL: callback}
	req, err := ms.CreateRequest(ctx, vars)
	if err != nil {
		return out, err
	}
	header, ctype, body, err := sb.do(req)
	if err != nil {
		return out, fmt.Errorf("create: %w", err)
	}
	pid, secret, err := ms.Created(header, ctype, body)
	if err != nil {
		return out, fmt.Errorf("create answered without an id: %w", err)
	}
	out.id = pid
	if secret != "" {
		// The provider's signing secret verifies the deliveries at the
		// credential's URL: it joins the credential's sealed secret.
		if err := sb.setWebhookSecret(ctx, st, id, key, secret); err != nil {
			// The subscription exists: keep its id (so it is deleted in
			// time), and say why deliveries cannot be verified.
			sb.log.Warn("subscription secret not stored", "credential", id, "err", err)
		} else {
			out.secret = true
		}
	}
	if out.token, err = sb.sealToken(st.Project, st.User, id, token); err != nil {
		sb.log.Warn("subscription teardown token not kept", "credential", id, "err", err)
		out.token = nil
	}
	out.tokenVersion = c.SecretVersion
	return out, nil
}

func (sb *subscriber) remove(ctx context.Context, st *subUser, id string, c *subCred, key string, s *sub) error {
	ms, err := sb.manifestOf(st.Project, c.Integration)
	if err != nil {
		return err
	}
	// The credential's current token while it exists (a refresh rotated
	// it since the create), the kept copy once it is gone.
	token := ""
	cred, cerr := sb.s.dir.Credential(ctx, st.Project, st.User, id)
	if cerr == nil && cred.Integration == c.Integration {
		if raw, err := sb.s.dir.Secret(ctx, st.Project, st.User, id); err == nil {
			token = accessToken(raw)
		}
	} else {
		cred = nil
	}
	if token == "" && len(c.Token) > 0 {
		if token, err = sb.openToken(st.Project, st.User, id, c.Token); err != nil {
			return err
		}
	}
	if token == "" {
		return errors.New("no access token left to delete the subscription with")
	}
	event := key
	if key == perCredentialKey {
		event = ""
	}
	vars := manifest.SubscriptionVars{CredentialID: id, AccessToken: token, ProviderAccountID: c.ProviderAccountID,
		Settings: c.Settings, User: st.User, Event: event, EventType: s.EventType, SubscriptionID: s.ID}
	req, err := ms.DeleteRequest(ctx, vars)
	if err != nil {
		return err
	}
	if _, _, _, err := sb.do(req); err != nil {
		var se *statusError
		if !errors.As(err, &se) || (se.status != http.StatusNotFound && se.status != http.StatusGone) {
			return fmt.Errorf("delete: %w", err)
		}
		// Gone at the provider already (deleted there by hand): done.
	}
	if cred != nil {
		if err := sb.clearWebhookSecret(ctx, st, id, key, ms.PerCredential()); err != nil {
			sb.log.Warn("subscription secret not removed", "credential", id, "err", err)
		}
	}
	return nil
}

// statusError is a provider's non-2xx answer.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("the provider answered %d", e.status)
	}
	return fmt.Sprintf("the provider answered %d: %s", e.status, e.body)
}

func (sb *subscriber) do(req *http.Request) (http.Header, string, []byte, error) {
	resp, err := sb.s.httpClient.Do(req)
	if err != nil {
		return nil, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, manifest.MaxSubscriptionAnswer+1))
	if err != nil {
		return nil, "", nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, "", nil, &statusError{status: resp.StatusCode, body: strings.TrimSpace(string(body[:min(len(body), 200)]))}
	}
	if len(body) > manifest.MaxSubscriptionAnswer {
		return nil, "", nil, fmt.Errorf("the answer is larger than %d bytes", manifest.MaxSubscriptionAnswer)
	}
	return resp.Header, resp.Header.Get("Content-Type"), body, nil
}

// accessToken is the token a credential's secret authenticates with.
func accessToken(sec map[string]any) string {
	for _, k := range []string{"accessToken", "apiKey"} {
		if v, ok := sec[k].(string); ok && v != "" {
			return v
		}
	}
	return ""
}

// setWebhookSecret adds the subscription's signing secret to the
// credential's secret (the webhook receiver verifies with every entry).
func (sb *subscriber) setWebhookSecret(ctx context.Context, st *subUser, id, key, secret string) error {
	return sb.editSecret(ctx, st, id, func(list []any) []any {
		list = dropSecrets(list, func(sid string) bool { return sid == subSecretIDPrefix+key })
		return append(list, map[string]any{"id": subSecretIDPrefix + key, "value": secret})
	})
}

// clearWebhookSecret removes a deleted subscription's secret; for a
// per-credential subscription also the handshake's (Asana), so that the
// next subscription's handshake is accepted.
func (sb *subscriber) clearWebhookSecret(ctx context.Context, st *subUser, id, key string, perCredential bool) error {
	return sb.editSecret(ctx, st, id, func(list []any) []any {
		return dropSecrets(list, func(sid string) bool {
			return sid == subSecretIDPrefix+key || (perCredential && sid == hookSecretID)
		})
	})
}

func dropSecrets(list []any, drop func(id string) bool) []any {
	out := list[:0:0]
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			if sid, _ := m["id"].(string); drop(sid) {
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

func (sb *subscriber) editSecret(ctx context.Context, st *subUser, id string, edit func([]any) []any) error {
	raw, err := sb.s.dir.Secret(ctx, st.Project, st.User, id)
	if err != nil {
		return err
	}
	sec := make(map[string]any, len(raw)+1)
	for k, v := range raw {
		sec[k] = v
	}
	list, _ := sec[webhookSecretsKey].([]any)
	before := len(list)
	list = edit(list)
	if len(list) == before && len(list) == 0 {
		return nil
	}
	if len(list) == 0 {
		delete(sec, webhookSecretsKey)
	} else {
		sec[webhookSecretsKey] = list
	}
	rev, err := sb.s.dir.SetSecret(ctx, st.Project, st.User, id, sec)
	if err != nil {
		return err
	}
	return sb.s.dir.WaitRevision(ctx, rev)
}

// sealedToken is the stored form of a teardown token ({sealed|plain}, as
// the directory stores secrets).
type sealedToken struct {
	Sealed []byte `json:"sealed,omitempty"`
	Plain  string `json:"plain,omitempty"`
}

// tokenAD binds a kept token to its credential; the leading \x03 keeps it
// apart from the directory's associated data.
func tokenAD(p, u, c string) []byte {
	return []byte("\x03subscription\x00" + p + "\x00" + u + "\x00" + c)
}

func (sb *subscriber) sealToken(p, u, c, token string) (json.RawMessage, error) {
	var st sealedToken
	if box := sb.opts.Secrets; box != nil {
		b, err := box.Seal([]byte(token), tokenAD(p, u, c))
		if err != nil {
			return nil, err
		}
		st.Sealed = b
	} else {
		st.Plain = token
	}
	return json.Marshal(st)
}

func (sb *subscriber) openToken(p, u, c string, raw json.RawMessage) (string, error) {
	var st sealedToken
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("the kept access token is unreadable: %w", err)
	}
	if len(st.Sealed) == 0 {
		return st.Plain, nil
	}
	if sb.opts.Secrets == nil {
		return "", errors.New("the kept access token is sealed and no SWITCHBOARD_SECRET_KEY is configured")
	}
	b, err := sb.opts.Secrets.Open(st.Sealed, tokenAD(p, u, c))
	if err != nil {
		return "", fmt.Errorf("the kept access token cannot be opened: %w", err)
	}
	return string(b), nil
}

// subscriptionsOf is credential c's subscriptions as its API view shows
// them (nil when it has none or they cannot be read).
func (s *Service) subscriptionsOf(ctx context.Context, p, u, c string) []SubscriptionStatus {
	return s.subscriptionsByCredential(ctx, p, u)[c]
}

// subscriptionsByCredential is every present credential's subscriptions of
// user u, by credential id.
func (s *Service) subscriptionsByCredential(ctx context.Context, p, u string) map[string][]SubscriptionStatus {
	if s.subscriber == nil {
		return nil
	}
	st, _, err := s.subscriber.load(ctx, credUserKey(p, u))
	if err != nil || st == nil {
		return nil
	}
	out := make(map[string][]SubscriptionStatus, len(st.Creds))
	for id, sc := range st.Creds {
		if !sc.Gone {
			out[id] = statusesOf(sc)
		}
	}
	return out
}

func statusesOf(sc *subCred) []SubscriptionStatus {
	out := make([]SubscriptionStatus, 0, len(sc.Subs))
	for _, k := range sortedKeys(sc.Subs) {
		x := sc.Subs[k]
		v := SubscriptionStatus{Trigger: k, Status: x.status(), Error: x.Error, Attempts: x.Attempts, ProviderID: x.ID}
		if x.pending() && !x.NextAt.IsZero() {
			at := x.NextAt.UTC()
			v.NextAttemptAt = &at
		}
		out = append(out, v)
	}
	return out
}

// credUserKey is the "<p>.<U>" part of a user's keys, as in the
// directory's record key.
func credUserKey(p, u string) string { return subjects.Token(p) + "." + subjects.Token(u) }

// credentialView is a credential's public view with its subscriptions.
type credentialView struct {
	*directory.Credential
	Subscriptions []SubscriptionStatus `json:"subscriptions,omitempty"`
}

func (s *Service) credentialView(ctx context.Context, cr *directory.Credential) credentialView {
	return credentialView{Credential: cr.Public(), Subscriptions: s.subscriptionsOf(ctx, cr.Project, cr.User, cr.ID)}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

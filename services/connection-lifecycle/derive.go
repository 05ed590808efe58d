package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Lifecycle events are derived from the stored change, not from the HTTP
// call that made it: a durable consumer on the directory's KV stream sees
// every user record revision (a write that returned, whoever made it — this
// API, an import, the OAuth callback, a token refresh), compares it with the
// last state derived for that user and publishes the transitions. A replica
// that dies between the write and the event leaves the change unacked and
// another replica derives it again.
//
// Exactly once per transition comes from an outbox in the derived state
// (sb_lifecycle, key "d.<record key>"), written with compare-and-set:
//
//  1. read the derived state; if it holds an outbox (a replica died after
//     step 2), publish it and clear it first;
//  2. a revision at or below the state's was derived already: ack;
//  3. otherwise compute the transitions and store the new state with them
//     as its outbox (CAS: of two replicas deriving two revisions of one
//     user, one wins and the other starts over from the winner's state, so
//     a transition is never computed twice from the same old state);
//  4. publish the outbox, then clear it.
//
// Every event of an outbox is published with a dedupe key of record
// key@revision/credential/event (pkg/trigger WithDedupe, days long), so a
// republish after a crash in step 4 — even after the stream's duplicate
// window — stores nothing new, and its runs (whose ids hash the event id)
// are the same runs.
//
// The history-1 bucket keeps only each user's last record, so a consumer
// that is behind sees only the last of several quick changes: transitions
// are computed against the last derived state, never against the previous
// message, which makes coalesced changes give the net transition (connect
// then fill in the required setting: one integration.enabled).

// derivedPrefix is the sb_lifecycle key prefix of derived states.
const derivedPrefix = "d."

// dedupeSource is the pkg/trigger dedupe source of lifecycle events.
const dedupeSource = "lifecycle"

// DefaultDeriveAckWait is how long a change may stay unsettled before
// another replica derives it again.
const DefaultDeriveAckWait = 30 * time.Second

// deriverName is the durable consumer every lifecycle replica shares.
const deriverName = "lifecycle-derive"

// derivedState is what the last derivation for one user record knew.
type derivedState struct {
	Rev      uint64                `json:"rev"`
	Project  string                `json:"project,omitempty"`
	User     string                `json:"user,omitempty"`
	Metadata map[string]any        `json:"metadata,omitempty"`
	Creds    map[string]*credState `json:"creds,omitempty"`
	Outbox   []outboxEvent         `json:"outbox,omitempty"`
}

// credState is one credential as last derived.
type credState struct {
	Integration       string          `json:"integration"`
	Status            string          `json:"status"`
	ProviderAccountID string          `json:"providerAccountId,omitempty"`
	SecretVersion     string          `json:"secretVersion,omitempty"`
	SettingsHash      string          `json:"settingsHash,omitempty"`
	Settings          map[string]any  `json:"settings,omitempty"`
	Workflows         map[string]bool `json:"workflows,omitempty"`
	// Enabled: integration.enabled was published for this connection and
	// neither a removal nor INVALID has ended it since.
	Enabled bool `json:"enabled,omitempty"`
}

// outboxEvent is one transition to publish.
type outboxEvent struct {
	Event       string          `json:"event"`
	Credential  string          `json:"credential"`
	Integration string          `json:"integration"`
	Revision    string          `json:"revision"` // record key@revision
	At          time.Time       `json:"at"`
	Payload     json.RawMessage `json:"payload"`
}

// Payload is the payload of every lifecycle trigger event.
type Payload struct {
	Integration       string         `json:"integration"`
	CredentialID      string         `json:"credentialId"`
	ProviderAccountID string         `json:"providerAccountId,omitempty"`
	Settings          map[string]any `json:"settings"`
	User              PayloadUser    `json:"user"`
	Status            string         `json:"status,omitempty"`
	// Workflows carries a removed credential's per-workflow overrides
	// (integration.disabled only): the router decides "enabled for them"
	// from it, since the credential is gone.
	Workflows map[string]bool `json:"workflows,omitempty"`
}

// PayloadUser is the connected user in a lifecycle payload.
type PayloadUser struct {
	ID       string         `json:"id"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// requiredFunc lists the required setting keys of an integration.
type requiredFunc func(project, integration string) []string

// derive computes the state after record next (nil: the user was deleted)
// at revision rev from prev, and the transitions between them, in a fixed
// order (by credential id, then disabled, invalid, settings.updated,
// refreshed, enabled). It is a pure function, so a redelivery derives the
// same events.
func derive(prev *derivedState, next *directory.StoredUser, key string, rev uint64, at time.Time, required requiredFunc) (*derivedState, []outboxEvent, error) {
	if prev == nil {
		prev = &derivedState{}
	}
	st := &derivedState{Rev: rev, Project: prev.Project, User: prev.User, Metadata: prev.Metadata, Creds: map[string]*credState{}}
	if next != nil {
		st.Project, st.User, st.Metadata = next.User.Project, next.User.ID, next.User.Metadata
	}
	revision := key + "@" + strconv.FormatUint(rev, 10)
	user := PayloadUser{ID: st.User, Metadata: st.Metadata}
	ids := map[string]bool{}
	for id := range prev.Creds {
		ids[id] = true
	}
	if next != nil {
		for id := range next.Credentials {
			ids[id] = true
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)

	var out []outboxEvent
	emit := func(event, cred string, cs *credState, extra func(*Payload)) error {
		p := Payload{Integration: cs.Integration, CredentialID: cred, ProviderAccountID: cs.ProviderAccountID,
			Settings: cs.Settings, User: user, Status: cs.Status}
		if p.Settings == nil {
			p.Settings = map[string]any{}
		}
		if extra != nil {
			extra(&p)
		}
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("lifecycle: encode %s payload: %w", event, err)
		}
		out = append(out, outboxEvent{Event: event, Credential: cred, Integration: cs.Integration, Revision: revision, At: at, Payload: b})
		return nil
	}
	for _, id := range sorted {
		old := prev.Creds[id]
		var cur *directory.StoredCredential
		if next != nil {
			cur = next.Credentials[id]
		}
		if cur == nil {
			// Removed (or the user deleted): the connection ended.
			if err := emit(workflow.EventIntegrationDisabled, id, old, func(p *Payload) { p.Workflows = old.Workflows }); err != nil {
				return nil, nil, err
			}
			continue
		}
		hash, err := settingsHash(cur.Settings)
		if err != nil {
			return nil, nil, err
		}
		cs := &credState{Integration: cur.Integration, Status: cur.Status, ProviderAccountID: cur.ProviderAccountID,
			SecretVersion: cur.SecretVersion, SettingsHash: hash, Settings: cur.Settings, Workflows: cur.Workflows}
		// A credential id reused for another integration is a new
		// connection: the old one ended.
		if old != nil && old.Integration != cs.Integration {
			if err := emit(workflow.EventIntegrationDisabled, id, old, func(p *Payload) { p.Workflows = old.Workflows }); err != nil {
				return nil, nil, err
			}
			old = nil
		}
		valid := cs.Status == directory.CredentialValid
		switch {
		case !valid:
			cs.Enabled = false
		case old != nil && old.Enabled:
			// Stays enabled while VALID, even if a required setting is
			// cleared: it fires again only after a removal or INVALID.
			cs.Enabled = true
		default:
			cs.Enabled = complete(cur.Settings, required(st.Project, cs.Integration))
		}
		if cs.Status == directory.CredentialInvalid && (old == nil || old.Status != directory.CredentialInvalid) {
			if err := emit(workflow.EventCredentialInvalid, id, cs, nil); err != nil {
				return nil, nil, err
			}
		}
		if old != nil && old.SettingsHash != cs.SettingsHash {
			if err := emit(workflow.EventSettingsUpdated, id, cs, nil); err != nil {
				return nil, nil, err
			}
		}
		if old != nil && valid && old.Status == directory.CredentialValid && cs.SecretVersion != "" && old.SecretVersion != cs.SecretVersion {
			if err := emit(workflow.EventCredentialRefreshed, id, cs, nil); err != nil {
				return nil, nil, err
			}
		}
		if cs.Enabled && (old == nil || !old.Enabled) {
			if err := emit(workflow.EventIntegrationEnabled, id, cs, nil); err != nil {
				return nil, nil, err
			}
		}
		st.Creds[id] = cs
	}
	return st, out, nil
}

// complete reports whether every required key has a value: present, not
// null and not the empty string (a form left blank).
func complete(settings map[string]any, required []string) bool {
	for _, k := range required {
		v, ok := settings[k]
		if !ok || v == nil || v == "" {
			return false
		}
	}
	return true
}

// settingsHash identifies settings by value (encoding/json sorts map keys).
func settingsHash(s map[string]any) (string, error) {
	if len(s) == 0 {
		return "", nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("lifecycle: hash settings: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// deriverOptions configure the change consumer.
type deriverOptions struct {
	JS       jetstream.JetStream
	Triggers *trigger.Publisher
	Required requiredFunc
	Logger   *slog.Logger
	AckWait  time.Duration
	// fault, when set (tests), is called at each step of a derivation;
	// an error aborts it there, as a crash would.
	fault func(stage string) error
}

// deriver is the running change consumer of one replica.
type deriver struct {
	opts deriverOptions
	kv   jetstream.KeyValue
	cons *consume.Consumer
	log  *slog.Logger
}

// Derivation stages a fault can stop at (tests).
const (
	stageBeforeState  = "before-state"
	stageAfterState   = "after-state"
	stageAfterPublish = "after-publish"
)

func startDeriver(ctx context.Context, opts deriverOptions) (*deriver, error) {
	if opts.AckWait <= 0 {
		opts.AckWait = DefaultDeriveAckWait
	}
	kv, err := opts.JS.KeyValue(ctx, subjects.BucketLifecycle)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: bucket %s: %w", subjects.BucketLifecycle, err)
	}
	d := &deriver{opts: opts, kv: kv, log: opts.Logger.With("component", "lifecycle-derive")}
	// Deliver-all on first creation: the KV stream holds one message per
	// live record, so a fresh durable derives every existing user once.
	d.cons, err = consume.Start(ctx, opts.JS, consume.Options{
		Name: deriverName, Stream: directory.StreamName, FilterSubjects: []string{directory.UserRecordSubjects},
		AckWait: opts.AckWait, Concurrency: 4, MaxAckPending: 256, Handler: d.handle, Logger: d.log,
		// A change that cannot be derived (an unreadable record) is
		// dead-lettered with the project's undecodable triggers.
		DeadLetter: consume.DeadLetterTo(opts.JS, func(m jetstream.Msg) string {
			return subjects.DeadTrigger(recordProject(m.Subject()))
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("lifecycle: start the change consumer: %w", err)
	}
	return d, nil
}

func (d *deriver) stop(ctx context.Context) error { return d.cons.Stop(ctx) }

// recordProject is the project token of a user record change's subject
// ("$KV.sb_directory.u.<p>.<U>"; project ids are plain tokens).
func recordProject(subject string) string {
	key, _ := directory.UserRecordKey(subject)
	parts := strings.SplitN(key, ".", 3)
	if len(parts) < 2 || parts[1] == "" {
		return "_"
	}
	return parts[1]
}

func (d *deriver) fault(stage string) error {
	if d.opts.fault == nil {
		return nil
	}
	return d.opts.fault(stage)
}

// errConflict is a lost compare-and-set on a derived state.
var errConflict = errors.New("derived state changed concurrently")

func (d *deriver) handle(ctx context.Context, m jetstream.Msg) error {
	ch, ok, err := directory.DecodeChange(m)
	if !ok {
		return nil
	}
	if err != nil {
		return consume.Permanent(fmt.Errorf("lifecycle: %w", err))
	}
	for range 20 {
		err := d.deriveOnce(ctx, ch.Key, ch.Rev, ch.At, ch.Next)
		if errors.Is(err, errConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("lifecycle: %s@%d: %w too often", ch.Key, ch.Rev, errConflict)
}

func (d *deriver) deriveOnce(ctx context.Context, key string, rev uint64, at time.Time, next *directory.StoredUser) error {
	skey := derivedPrefix + key
	prev, srev, err := d.load(ctx, skey)
	if err != nil {
		return err
	}
	if prev != nil && len(prev.Outbox) > 0 {
		// A replica stored these transitions and died before (or while)
		// publishing them: they go out before anything newer is derived.
		if err := d.publish(ctx, prev); err != nil {
			return err
		}
		prev.Outbox = nil
		if srev, err = d.store(ctx, skey, prev, srev); err != nil {
			return err
		}
	}
	if prev != nil && prev.Rev >= rev {
		return nil // derived already (a redelivery, or a newer revision came first)
	}
	st, events, err := derive(prev, next, key, rev, at.UTC(), d.opts.Required)
	if err != nil {
		return consume.Permanent(err)
	}
	st.Outbox = events
	if err := d.fault(stageBeforeState); err != nil {
		return err
	}
	if srev, err = d.store(ctx, skey, st, srev); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	if err := d.fault(stageAfterState); err != nil {
		return err
	}
	if err := d.publish(ctx, st); err != nil {
		return err
	}
	if err := d.fault(stageAfterPublish); err != nil {
		return err
	}
	st.Outbox = nil
	if _, err := d.store(ctx, skey, st, srev); err != nil && !errors.Is(err, errConflict) {
		// Published and stored as an outbox: whoever derives this user
		// next republishes it, which the dedupe keys absorb.
		d.log.Warn("lifecycle outbox not cleared", "key", key, "rev", rev, "err", err)
	}
	return nil
}

func (d *deriver) load(ctx context.Context, skey string) (*derivedState, uint64, error) {
	e, err := d.kv.Get(ctx, skey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("lifecycle: read %s: %w", skey, err)
	}
	var st derivedState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, consume.Permanent(fmt.Errorf("lifecycle: unreadable %s: %w", skey, err))
	}
	return &st, e.Revision(), nil
}

// store writes st with compare-and-set against rev (0: must not exist).
func (d *deriver) store(ctx context.Context, skey string, st *derivedState, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, consume.Permanent(fmt.Errorf("lifecycle: encode %s: %w", skey, err))
	}
	var n uint64
	if rev == 0 {
		n, err = d.kv.Create(ctx, skey, b)
	} else {
		n, err = d.kv.Update(ctx, skey, b, rev)
	}
	if err == nil {
		return n, nil
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
		return 0, errConflict
	}
	return 0, fmt.Errorf("lifecycle: write %s: %w", skey, err)
}

// publish publishes every event of st's outbox.
func (d *deriver) publish(ctx context.Context, st *derivedState) error {
	for _, e := range st.Outbox {
		kind := sbv1.Kind_LIFECYCLE
		if e.Event == workflow.EventIntegrationEnabled {
			kind = sbv1.Kind_INTEGRATION_ENABLED
		}
		ev := &sbv1.TriggerEvent{
			Id: trigger.DerivedID(e.At, e.Revision, e.Credential, e.Event), Project: st.Project, Kind: kind, Name: e.Event,
			User: st.User, Credential: e.Credential, Integration: e.Integration, Payload: e.Payload,
			Detail:     &sbv1.TriggerEvent_Lifecycle{Lifecycle: &sbv1.LifecycleTransition{Event: e.Event, Revision: e.Revision}},
			OccurredAt: timestamppb.New(e.At), ReceivedAt: timestamppb.Now(),
		}
		res, err := d.opts.Triggers.Publish(ctx, ev, trigger.WithDedupe(trigger.Dedupe{
			Source: dedupeSource, Key: e.Revision + "/" + e.Credential + "/" + e.Event,
		}))
		if err != nil {
			return fmt.Errorf("lifecycle: publish %s of %s/%s: %w", e.Event, st.User, e.Credential, err)
		}
		d.log.Info("lifecycle event", "project", st.Project, "user", st.User, "credential", e.Credential,
			"event", e.Event, "revision", e.Revision, "event_id", res.EventID, "duplicate", res.Duplicate)
	}
	return nil
}

// requiredSettings returns the required setting keys of an integration's
// manifest, per Options.Catalog; an unknown integration requires none.
func (s *Service) requiredSettings(project, integration string) []string {
	in, ok := s.cat.Integration(project, integration)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range in.Effective().Settings {
		if f.Required {
			out = append(out, f.Key)
		}
	}
	return slices.Clip(out)
}

package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// WebhookSecret is one app-level webhook signing secret of an integration
// (or a provider's public key, or Meta's verify token: Use says which).
// Several may be active at once, for rotation: an old one is given an
// ExpiresAt at the end of its grace period.
type WebhookSecret struct {
	ID        string    `json:"id,omitempty"`
	Value     string    `json:"value"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	Use       string    `json:"use,omitempty"`
}

// Bounds of one integration's webhook secrets. The verifier tries at most
// 16 secrets per delivery, so more could never all be used.
const (
	MaxWebhookSecrets     = 16
	MaxWebhookSecretBytes = 16 << 10
)

// webhookSecretsKey is the sb_secrets key of project p's app-level secrets
// for integration i. Integration ids are plain subject tokens.
func webhookSecretsKey(p, i string) string { return "w." + p + "." + i }

// webhookSecretsAD binds a sealed value to its project and integration. The
// leading \x01 keeps it apart from every credential's associated data,
// which starts with a project id.
func webhookSecretsAD(p, i string) []byte { return []byte("\x01webhook\x00" + p + "\x00" + i) }

// SetWebhookSecrets replaces the app-level webhook secrets of integration i
// in project p (an empty list removes them). They are kept in sb_secrets,
// sealed like credential secrets, never in a config document. It returns
// the key's new revision.
func (d *Directory) SetWebhookSecrets(ctx context.Context, p, i string, secrets []WebhookSecret) (uint64, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(i) {
		return 0, invalid("integration", "invalid_id", "project and integration must be ids ([a-z0-9][a-z0-9_-]*)")
	}
	if len(secrets) > MaxWebhookSecrets {
		return 0, invalid("secrets", "too_large", "at most %d secrets at once", MaxWebhookSecrets)
	}
	for n, s := range secrets {
		f := fmt.Sprintf("secrets[%d]", n)
		switch {
		case s.Value == "":
			return 0, invalid(f+".value", "invalid_field", "is required")
		case len(s.Value) > MaxWebhookSecretBytes:
			return 0, invalid(f+".value", "too_large", "is longer than %d bytes", MaxWebhookSecretBytes)
		case len(s.ID) > MaxIDBytes:
			return 0, invalid(f+".id", "too_large", "is longer than %d bytes", MaxIDBytes)
		}
	}
	key := webhookSecretsKey(p, i)
	if len(secrets) == 0 {
		if err := d.secKV.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, fmt.Errorf("directory: remove webhook secrets of %s: %w", i, err)
		}
		// The purge's revision is unknown here: drop the entry, so the
		// next read goes to storage (the watch reports the purge too).
		d.hooks.forget(key)
		return 0, nil
	}
	b, err := sealValue(d.box, secrets, webhookSecretsAD(p, i))
	if err != nil {
		return 0, fmt.Errorf("directory: webhook secrets: %w", err)
	}
	rev, err := d.secKV.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("directory: store webhook secrets of %s: %w", i, err)
	}
	// This process's next delivery must see the write at once, before
	// the watch reports it.
	d.hooks.observe(key, b, rev, true)
	return rev, nil
}

// WebhookSecrets returns the app-level webhook secrets of integration i
// (none: an empty list). They are read on every delivery, so — unlike a
// credential's secret — they are kept in memory as stored (sealed when a
// key is configured), in a map the watch of Start keeps current: a
// rotation applies to this process's next delivery at once and to other
// processes' as soon as their watch sees it. The opened value is kept
// with the stored one it came from (opening costs a decryption and a JSON
// decode per delivery otherwise), so it goes whenever that entry is
// replaced or dropped: a changed record is never served from memory.
// Expired secrets are returned as before, with their ExpiresAt: the
// verifier refuses them at the time of each delivery.
func (d *Directory) WebhookSecrets(ctx context.Context, p, i string) ([]WebhookSecret, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(i) {
		return nil, nil
	}
	key := webhookSecretsKey(p, i)
	got, cached := d.hooks.get(key)
	if cached && got.open {
		// A copy: the caller may change what it gets.
		return slices.Clone(got.opened), nil
	}
	raw, rev, found := got.raw, got.rev, got.found
	if !cached {
		epoch, ok := d.hooks.epoch()
		e, err := d.secKV.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			raw, found = nil, false
			if ok {
				d.hooks.fill(epoch, key, nil, 0, false)
			}
		case err != nil:
			return nil, fmt.Errorf("directory: webhook secrets of %s: %w", i, err)
		default:
			raw, rev, found = e.Value(), e.Revision(), true
			if ok {
				d.hooks.fill(epoch, key, raw, rev, true)
			}
		}
	}
	if !found {
		return nil, nil
	}
	out, err := d.openWebhookSecrets(p, i, raw)
	if err != nil {
		return nil, err
	}
	d.hooks.keepOpened(key, rev, slices.Clone(out))
	return out, nil
}

func (d *Directory) openWebhookSecrets(p, i string, raw []byte) ([]WebhookSecret, error) {
	return openValue[[]WebhookSecret](d.box, raw, webhookSecretsAD(p, i), "the webhook secrets of "+i)
}

// hookSecrets is the in-memory copy of the app-level webhook secrets, as
// stored. Every entry carries the revision it reflects and an entry is only
// ever replaced by a newer one, so the watch, the writer's own update and a
// read that missed converge on the newest value in any order. A read's
// fill counts only if the cache was on, in the same epoch, before the read
// began: a value read before the watch was in place could miss a change
// the watch will never report.
type hookSecrets struct {
	mu      sync.Mutex
	on      bool
	gen     uint64
	entries map[string]hookEntry
	nOpened int // entries holding their opened value (maxOpenedHookSecrets)
}

// maxOpenedHookSecrets bounds how many integrations' opened secrets are
// kept in memory (each is at most MaxWebhookSecrets values); past it, the
// others are opened on every read, as stored entries are kept regardless.
const maxOpenedHookSecrets = 4096

type hookEntry struct {
	raw   []byte
	rev   uint64
	found bool
	// opened is raw opened, once a read did (open): it belongs to this
	// entry, so a newer revision or a removal drops it with the entry.
	opened []WebhookSecret
	open   bool
}

func (c *hookSecrets) get(key string) (e hookEntry, cached bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return hookEntry{}, false
	}
	e, ok := c.entries[key]
	return e, ok
}

// keepOpened attaches the opened value of revision rev to key's entry, if
// the entry still is that revision (the revision names the stored bytes:
// a stream sequence is never reused).
func (c *hookSecrets) keepOpened(key string, rev uint64, opened []WebhookSecret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !c.on || !ok || !e.found || e.rev != rev || e.open || c.nOpened >= maxOpenedHookSecrets {
		return
	}
	e.opened, e.open = opened, true
	c.entries[key] = e
	c.nOpened++
}

// replace puts e under key, dropping the opened value of the entry it
// replaces.
func (c *hookSecrets) replace(key string, e hookEntry) {
	if old, ok := c.entries[key]; ok && old.open {
		c.nOpened--
	}
	c.entries[key] = e
}

func (c *hookSecrets) epoch() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.on
}

// fill records what a read found, unless the cache went off or on again
// since the read began, or already holds an entry (which is at least as
// new: it came from the watch or the writer after the read's epoch began).
func (c *hookSecrets) fill(epoch uint64, key string, raw []byte, rev uint64, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on || c.gen != epoch {
		return
	}
	if e, ok := c.entries[key]; ok && e.rev >= rev {
		return
	}
	c.replace(key, hookEntry{raw: raw, rev: rev, found: found})
}

// observe records a change (the watch's, or this process's own write).
func (c *hookSecrets) observe(key string, raw []byte, rev uint64, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return
	}
	if e, ok := c.entries[key]; ok && e.rev >= rev {
		return
	}
	c.replace(key, hookEntry{raw: raw, rev: rev, found: found})
}

// forget drops key's entry and starts a new epoch, so a read already in
// flight cannot put back what was there before.
func (c *hookSecrets) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok && old.open {
		c.nOpened--
	}
	delete(c.entries, key)
	c.gen++
}

func (c *hookSecrets) setOn(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = on
	c.gen++
	c.entries = map[string]hookEntry{}
	c.nOpened = 0
}

// watchWebhookSecrets follows the w.> keys of sb_secrets from now on and
// turns the webhook-secrets cache on; it returns once the watch is in
// place, and turns the cache off when ctx ends or the watch does.
func (d *Directory) watchWebhookSecrets(ctx context.Context) error {
	w, err := d.secKV.Watch(ctx, "w.>", jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("directory: watch webhook secrets: %w", err)
	}
	d.hooks.setOn(true)
	go d.follow(ctx, w, "directory: webhook secrets watch ended; reading them from storage",
		func() { d.hooks.setOn(false) },
		func(e jetstream.KeyValueEntry) {
			put := e.Operation() == jetstream.KeyValuePut
			var raw []byte
			if put {
				raw = e.Value()
			}
			d.hooks.observe(e.Key(), raw, e.Revision(), put)
		})
	return nil
}

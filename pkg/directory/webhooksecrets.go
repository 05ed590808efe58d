package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
		return 0, nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return 0, fmt.Errorf("directory: encode webhook secrets: %w", err)
	}
	st := storedWebhookSecrets{Plain: secrets}
	if d.box != nil {
		if st.Sealed, err = d.box.Seal(plain, webhookSecretsAD(p, i)); err != nil {
			return 0, fmt.Errorf("directory: seal webhook secrets: %w", err)
		}
		st.Plain = nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("directory: encode webhook secrets: %w", err)
	}
	rev, err := d.secKV.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("directory: store webhook secrets of %s: %w", i, err)
	}
	return rev, nil
}

type storedWebhookSecrets struct {
	Sealed []byte          `json:"sealed,omitempty"`
	Plain  []WebhookSecret `json:"plain,omitempty"`
}

// WebhookSecrets returns the app-level webhook secrets of integration i
// (none: an empty list). Like credential secrets they are read from
// storage every time, never cached, so a rotation applies to the next
// delivery.
func (d *Directory) WebhookSecrets(ctx context.Context, p, i string) ([]WebhookSecret, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(i) {
		return nil, nil
	}
	e, err := d.secKV.Get(ctx, webhookSecretsKey(p, i))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("directory: webhook secrets of %s: %w", i, err)
	}
	var st storedWebhookSecrets
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, fmt.Errorf("directory: webhook secrets of %s: unreadable: %w", i, err)
	}
	if len(st.Sealed) == 0 {
		return st.Plain, nil
	}
	if d.box == nil {
		return nil, fmt.Errorf("%w: webhook secrets of %s are sealed and no SWITCHBOARD_SECRET_KEY is configured", ErrSecretUnavailable, i)
	}
	plain, err := d.box.Open(st.Sealed, webhookSecretsAD(p, i))
	if err != nil {
		return nil, fmt.Errorf("%w: webhook secrets of %s: %v", ErrSecretUnavailable, i, err)
	}
	var out []WebhookSecret
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("directory: webhook secrets of %s: decode: %w", i, err)
	}
	return out, nil
}

package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// AppCredential is an app-level API Resource's one credential set: the
// values every user's runs authenticate with (the mirrored product's
// App-Level resources). Like webhook secrets and OAuth clients it is
// app-level and kept sealed in sb_secrets, never in a config document.
type AppCredential struct {
	// Secret holds the credential values under the keys an http step's
	// `auth: credential` reads (accessToken, apiKey, username/password …).
	Secret    map[string]any `json:"secret"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

// MaxAppCredentialBytes bounds one app-level credential as stored.
const MaxAppCredentialBytes = 64 << 10

func appCredentialKey(p, r string) string { return "r." + p + "." + r }

// appCredentialAD binds a sealed app credential to its project and
// resource; the leading \x03 keeps it apart from credential (a project id
// first), webhook secret (\x01) and OAuth client (\x02) associated data.
func appCredentialAD(p, r string) []byte { return []byte("\x03app-credential\x00" + p + "\x00" + r) }

// SetAppCredential stores project p's app-level credential for resource
// r; nil removes it. It returns the key's new revision.
func (d *Directory) SetAppCredential(ctx context.Context, p, r string, c *AppCredential) (uint64, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(r) {
		return 0, invalid("resource", "invalid_id", "project and resource must be ids ([a-z0-9][a-z0-9_-]*)")
	}
	key := appCredentialKey(p, r)
	if c == nil {
		if err := d.secKV.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, fmt.Errorf("directory: remove app credential of %s: %w", r, err)
		}
		return 0, nil
	}
	if len(c.Secret) == 0 {
		return 0, invalid("secret", "missing_field", "no credential values")
	}
	if err := checkSize("secret", c.Secret, MaxAppCredentialBytes); err != nil {
		return 0, err
	}
	b, err := sealValue(d.box, c, appCredentialAD(p, r))
	if err != nil {
		return 0, fmt.Errorf("directory: app credential: %w", err)
	}
	rev, err := d.secKV.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("directory: store app credential of %s: %w", r, err)
	}
	return rev, nil
}

// AppCredential returns project p's app-level credential for resource r,
// or ErrNotFound. Read from storage every time (never cached), so a
// replaced credential applies to the next request.
func (d *Directory) AppCredential(ctx context.Context, p, r string) (*AppCredential, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(r) {
		return nil, ErrNotFound
	}
	e, err := d.secKV.Get(ctx, appCredentialKey(p, r))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("directory: app credential of %s: %w", r, err)
	}
	c, err := openValue[*AppCredential](d.box, e.Value(), appCredentialAD(p, r), "the app credential of "+r)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNotFound
	}
	return c, nil
}

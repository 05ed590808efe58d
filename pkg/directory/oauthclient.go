package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// OAuthClient is a project's OAuth 2.0 client registration at a provider:
// what the connect flow and token refreshes authenticate with. Like
// webhook secrets it is app-level, kept sealed in sb_secrets, never in a
// config document.
type OAuthClient struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret,omitempty"`
}

// MaxOAuthClientBytes bounds a client id or secret.
const MaxOAuthClientBytes = 4 << 10

func oauthClientKey(p, i string) string { return "o." + p + "." + i }

// oauthClientAD binds a sealed client to its project and integration; the
// leading \x02 keeps it apart from credential (a project id first) and
// webhook secret (\x01) associated data.
func oauthClientAD(p, i string) []byte { return []byte("\x02oauth\x00" + p + "\x00" + i) }

// SetOAuthClient stores project p's OAuth client for integration i; nil
// removes it.
func (d *Directory) SetOAuthClient(ctx context.Context, p, i string, c *OAuthClient) (uint64, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(i) {
		return 0, invalid("integration", "invalid_id", "project and integration must be ids ([a-z0-9][a-z0-9_-]*)")
	}
	key := oauthClientKey(p, i)
	if c == nil {
		if err := d.secKV.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, fmt.Errorf("directory: remove oauth client of %s: %w", i, err)
		}
		return 0, nil
	}
	switch {
	case c.ClientID == "":
		return 0, invalid("clientId", "invalid_field", "is required")
	case len(c.ClientID) > MaxOAuthClientBytes:
		return 0, invalid("clientId", "too_large", "is longer than %d bytes", MaxOAuthClientBytes)
	case len(c.ClientSecret) > MaxOAuthClientBytes:
		return 0, invalid("clientSecret", "too_large", "is longer than %d bytes", MaxOAuthClientBytes)
	}
	b, err := sealValue(d.box, c, oauthClientAD(p, i))
	if err != nil {
		return 0, fmt.Errorf("directory: oauth client: %w", err)
	}
	rev, err := d.secKV.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("directory: store oauth client of %s: %w", i, err)
	}
	return rev, nil
}

// OAuthClient returns project p's OAuth client for integration i, or
// ErrNotFound. Read from storage every time (never cached), so a rotated
// secret applies to the next exchange.
func (d *Directory) OAuthClient(ctx context.Context, p, i string) (*OAuthClient, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(i) {
		return nil, ErrNotFound
	}
	e, err := d.secKV.Get(ctx, oauthClientKey(p, i))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("directory: oauth client of %s: %w", i, err)
	}
	c, err := openValue[*OAuthClient](d.box, e.Value(), oauthClientAD(p, i), "the oauth client of "+i)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNotFound
	}
	return c, nil
}

package directory

import (
	"time"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// User is a connected user: an end user of the customer's app.
type User struct {
	Project  string         `json:"project"`
	ID       string         `json:"id"`
	Metadata map[string]any `json:"metadata,omitempty"`
	// Workflows overrides enablement of workflows that need no credential.
	Workflows map[string]bool `json:"workflows,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// Credential statuses.
const (
	CredentialValid   = "VALID"
	CredentialInvalid = "INVALID"
)

// Credential is one connected account of a user for one integration.
//
// A Credential read from the directory never carries its secret (Secret is
// nil; HasSecret says whether one is stored): the secret lives in its own
// bucket and is read with Directory.Secret only where it is used. A writer
// sets Secret inside UpdateCredential to store a new one.
type Credential struct {
	Project           string         `json:"project"`
	User              string         `json:"user"`
	ID                string         `json:"id"`
	Integration       string         `json:"integration"`
	ProviderAccountID string         `json:"providerAccountId,omitempty"`
	Secret            map[string]any `json:"secret,omitempty"`
	// HasSecret reports whether a secret is stored for the credential.
	HasSecret bool           `json:"hasSecret,omitempty"`
	Settings  map[string]any `json:"settings,omitempty"`
	Status    string         `json:"status"`
	// WebhookToken is the unguessable token (128 random bits, base64url) of
	// the credential's own webhook URL, minted when the credential is
	// created and changed only by RotateWebhookToken.
	WebhookToken string `json:"webhookToken,omitempty"`
	// Workflows holds per-workflow enablement; absent means the workflow's
	// enabledByDefault.
	Workflows map[string]bool `json:"workflows,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// Enabled reports whether w runs for this credential.
func (c *Credential) Enabled(w *workflow.Workflow) bool { return enabled(c.Workflows, w) }

// Enabled reports whether a workflow that needs no credential runs for u.
func (u *User) Enabled(w *workflow.Workflow) bool { return enabled(u.Workflows, w) }

func enabled(overrides map[string]bool, w *workflow.Workflow) bool {
	if v, ok := overrides[w.ID]; ok {
		return v
	}
	return w.IsEnabledByDefault()
}

// Public returns the credential without its secret, for API responses and
// logs: a stored secret shows as {"redacted": true}.
func (c *Credential) Public() *Credential {
	cp := *c
	if cp.Secret != nil || cp.HasSecret {
		cp.Secret = map[string]any{"redacted": true}
	}
	return &cp
}

// Entry is one enrollment: a user (Credential empty, for workflows without
// an integration) or one credential of a user, in one time zone and shard.
// The values come from the user's primary record, not from the index.
type Entry struct {
	User       string `json:"user"`
	Credential string `json:"credential,omitempty"`
	// Workflows are the per-workflow overrides of the credential (or, for
	// Credential == "", of the user).
	Workflows map[string]bool `json:"workflows,omitempty"`
	// Status is the credential's status; VALID for user entries.
	Status string `json:"status"`
}

// Enabled applies override-or-default: whether w is enabled for this entry,
// with w's enabledByDefault (which lives in config, not in the index) when
// the entry has no override for it.
func (e *Entry) Enabled(w *workflow.Workflow) bool { return enabled(e.Workflows, w) }

// Runs reports whether a fan-out of w runs for this entry: the credential
// is VALID and w is enabled for it.
func (e *Entry) Runs(w *workflow.Workflow) bool {
	return e.Status == CredentialValid && e.Enabled(w)
}

// Page is one page of enrollment entries.
type Page struct {
	Entries []Entry `json:"entries"`
	// Next is the cursor of the following page ("after"); empty on the last.
	Next string `json:"next,omitempty"`
}

package catalog

import (
	"time"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Project is the isolation unit.
type Project struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// APIKeys are stored hashed; the key itself is shown once when minted.
	APIKeys []APIKey `json:"apiKeys,omitempty"`
	// UserTokenKeys are PEM RSA public keys that verify user tokens. Several
	// may be active at once, for rotation.
	UserTokenKeys []string  `json:"userTokenKeys,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// APIKey is the stored form of a project API key.
type APIKey struct {
	ID        string    `json:"id"`
	Hash      string    `json:"hash"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"createdAt"`
}

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
type Credential struct {
	Project           string         `json:"project"`
	User              string         `json:"user"`
	ID                string         `json:"id"`
	Integration       string         `json:"integration"`
	ProviderAccountID string         `json:"providerAccountId,omitempty"`
	Secret            map[string]any `json:"secret,omitempty"`
	Settings          map[string]any `json:"settings,omitempty"`
	Status            string         `json:"status"`
	// Workflows holds per-workflow enablement; absent means the workflow's
	// enabledByDefault.
	Workflows map[string]bool `json:"workflows,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// Enabled reports whether w runs for this credential.
func (c *Credential) Enabled(w *workflow.Workflow) bool {
	if v, ok := c.Workflows[w.ID]; ok {
		return v
	}
	return w.IsEnabledByDefault()
}

// Enabled reports whether a workflow that needs no credential runs for u.
func (u *User) Enabled(w *workflow.Workflow) bool {
	if v, ok := u.Workflows[w.ID]; ok {
		return v
	}
	return w.IsEnabledByDefault()
}

// Public returns the credential without its secret, for API responses and logs.
func (c *Credential) Public() *Credential {
	cp := *c
	if cp.Secret != nil {
		cp.Secret = map[string]any{"redacted": true}
	}
	return &cp
}

package catalog

import "time"

// Project is the isolation unit.
type Project struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// APIKeys are stored hashed; the key itself is shown once when minted.
	APIKeys []APIKey `json:"apiKeys,omitempty"`
	// UserTokenKeys are PEM RSA public keys that verify user tokens. Several
	// may be active at once, for rotation.
	UserTokenKeys []string `json:"userTokenKeys,omitempty"`
	// AllowedOrigins are the origins (scheme://host[:port], or "*") of the
	// pages that may call the project's browser-facing routes (the SDK
	// surface), normalized as browsers send them (httpx.NormalizeOrigin).
	AllowedOrigins []string  `json:"allowedOrigins,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// APIKey is the stored form of a project API key.
type APIKey struct {
	ID        string    `json:"id"`
	Hash      string    `json:"hash"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"createdAt"`
}

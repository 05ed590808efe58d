package verify

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Request is a delivery as the verifier sees it. URL must be the URL the
// provider called, because several schemes (Twilio, Square, HubSpot v2/v3,
// Mailchimp Transactional) sign it: behind a proxy, build it from the
// configured public base URL, never from Host or X-Forwarded-* sent by the
// client (see FromHTTP). Body is the raw bytes exactly as received; verifying
// re-serialized JSON fails by design.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// FromHTTP builds a Request from an incoming http.Request whose body the
// caller has already read (through a size cap). When publicBaseURL is set
// (e.g. "https://hooks.example.com"), the URL becomes that base plus the
// request's path and raw query, which is what the provider signed; otherwise
// r.URL is used as is (complete only in tests and behind no proxy).
func FromHTTP(r *http.Request, body []byte, publicBaseURL string) Request {
	u := r.URL.String()
	if publicBaseURL != "" {
		u = strings.TrimRight(publicBaseURL, "/") + r.URL.RequestURI()
	}
	return Request{Method: r.Method, URL: u, Header: r.Header, Body: body}
}

// header returns the first value of the first present header among the
// "|"-separated alternatives (e.g. "svix-signature|webhook-signature").
func (r Request) header(names string) (string, bool) {
	for _, n := range strings.Split(names, "|") {
		if vs := r.Header.Values(n); len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}

func (r Request) query() url.Values {
	u, err := url.Parse(r.URL)
	if err != nil {
		return url.Values{}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return url.Values{}
	}
	return q
}

// Secret is one signing secret (or public key, or token) of a source. Several
// may be active at once so a provider's secret can be rotated without
// downtime: the new one is added, the old one gets ExpiresAt = end of its
// grace period, and from that instant on it is refused.
type Secret struct {
	// ID names the secret in logs and in Result, so an operator can see which
	// key still matches before retiring it. Never the value.
	ID string `json:"id,omitempty" yaml:"id,omitempty"`
	// Value is the secret as the provider shows it (e.g. "whsec_…", a hex
	// Discord public key, "user:password" for basic auth).
	Value string `json:"value" yaml:"value"`
	// ExpiresAt is when this secret stops being accepted; zero means never.
	ExpiresAt time.Time `json:"expiresAt,omitzero" yaml:"expiresAt,omitempty"`
	// Use distinguishes secrets with another role: "" (signing/verification)
	// or "verify_token" (Meta's hub.verify_token, checked only by the handshake).
	Use string `json:"use,omitempty" yaml:"use,omitempty"`
}

// UseVerifyToken marks a Secret that is only Meta's subscription verify token.
const UseVerifyToken = "verify_token"

// active filters the signing secrets that are usable at now.
func activeSecrets(secrets []Secret, now time.Time, use string) []Secret {
	out := make([]Secret, 0, len(secrets))
	for _, s := range secrets {
		if s.Use != use || s.Value == "" {
			continue
		}
		if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
			continue
		}
		out = append(out, s)
		if len(out) == maxSecrets {
			break
		}
	}
	return out
}

// Limits that bound the work one delivery can cause (every signature is tried
// against every secret) and the size of what is decoded.
const (
	maxSecrets         = 16
	maxSignatures      = 32
	maxSignatureHeader = 8 << 10
)

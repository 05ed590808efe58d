package verify

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Spec declares how a source's deliveries are verified. Integration manifests
// embed it under `webhook.verification`; it is either a named preset
//
//	verification: {preset: stripe}
//
// or a generic scheme, e.g. a Slack-like HMAC:
//
//	verification:
//	  scheme: hmac
//	  algorithm: sha256
//	  encoding: hex
//	  header: X-Signature
//	  prefix: "v0="
//	  content: "v0:{timestamp}:{body}"
//	  timestamp: {header: X-Timestamp, unit: s, tolerance: 5m}
//
// Fields set next to a preset override the preset's (e.g. a longer tolerance).
// See docs/webhooks.md for every field and the preset table.
type Spec struct {
	// Preset names a built-in spec (see Presets). Empty means generic.
	Preset string `json:"preset,omitempty" yaml:"preset,omitempty"`
	// Scheme is the family: hmac (default), hash (plain digest with the secret
	// inside the content, HubSpot v1/v2), ed25519, ecdsa, rsa (public keys as
	// secrets), token (constant-time compare of a header, query or body value),
	// basic, bearer, jwt (HMAC-signed JWT in a header).
	Scheme string `json:"scheme,omitempty" yaml:"scheme,omitempty"`
	// Algorithm is the digest: sha1, sha256 (default) or sha512.
	Algorithm string `json:"algorithm,omitempty" yaml:"algorithm,omitempty"`
	// Encoding of the signature: hex (default), base64 or base64url.
	Encoding string `json:"encoding,omitempty" yaml:"encoding,omitempty"`
	// Header carrying the signature. "a|b" tries a, then b; a trailing "*"
	// takes every header with that prefix (DocuSign's X-DocuSign-Signature-1..N).
	Header string `json:"header,omitempty" yaml:"header,omitempty"`
	// Field is a JSON path in the body carrying the signature instead of a
	// header (Mailgun: signature.signature). For token: the value(s) to
	// compare; "*" matches every array element and all must match.
	Field string `json:"field,omitempty" yaml:"field,omitempty"`
	// Query is a query parameter carrying the token (token scheme only).
	Query string `json:"query,omitempty" yaml:"query,omitempty"`
	// Prefix is stripped from each signature, e.g. "sha256=" or "v0=".
	Prefix string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	// Format of the signature header: "" (one signature), "kv" (Stripe-like
	// "t=…,v1=…,v1=…") or "list" (Standard Webhooks' space-separated "v1,<sig>").
	Format string `json:"format,omitempty" yaml:"format,omitempty"`
	// Separator between items: kv default ",", list default " ".
	Separator string `json:"separator,omitempty" yaml:"separator,omitempty"`
	// SignatureKey selects signatures in kv ("v1", Paddle "h1") and the version
	// in list ("v1", "v1a"). Other keys and versions are ignored.
	SignatureKey string `json:"signatureKey,omitempty" yaml:"signatureKey,omitempty"`
	// TimestampKey is the kv key holding the timestamp ("t", Paddle "ts").
	TimestampKey string `json:"timestampKey,omitempty" yaml:"timestampKey,omitempty"`
	// Content is the signed-content template; default "{body}". Placeholders:
	// {body} raw body, {timestamp} as sent, {method}, {url} as the provider
	// called it, {url_hubspot} (URL with HubSpot's selected %XX decoded),
	// {form} (form params sorted by name, each name+value, Twilio/Mandrill),
	// {secret} (hash scheme only), {header:Name}, {field:json.path}.
	Content string `json:"content,omitempty" yaml:"content,omitempty"`
	// SecretEncoding says how a secret's Value becomes key bytes: raw (default,
	// the string's bytes), base64, hex, or whsec (strip an optional "whsec_"
	// then base64, Standard Webhooks).
	SecretEncoding string `json:"secretEncoding,omitempty" yaml:"secretEncoding,omitempty"`
	// Timestamp, when set, is required and must lie inside the window.
	Timestamp *TimestampSpec `json:"timestamp,omitempty" yaml:"timestamp,omitempty"`
	// URLPortVariants also tries the URL with the default port added or removed
	// (Twilio computes signatures inconsistently about it).
	URLPortVariants bool `json:"urlPortVariants,omitempty" yaml:"urlPortVariants,omitempty"`
	// BodyHashParam: when this query parameter is present, it must equal
	// hex(sha256(body)) and {form} is empty (Twilio's JSON bodies: bodySHA256).
	BodyHashParam string `json:"bodyHashParam,omitempty" yaml:"bodyHashParam,omitempty"`
	// Audience for jwt: a literal, or "{url}" for the URL without its query.
	Audience string `json:"audience,omitempty" yaml:"audience,omitempty"`
	// Handshake the receiver answers instead of treating the request as an event.
	Handshake *HandshakeSpec `json:"handshake,omitempty" yaml:"handshake,omitempty"`
}

// TimestampSpec locates the signed timestamp and bounds it both ways.
type TimestampSpec struct {
	// Header carrying the timestamp (ignored when the kv header has TimestampKey).
	Header string `json:"header,omitempty" yaml:"header,omitempty"`
	// Field is a JSON path in the body (Linear: webhookTimestamp).
	Field string `json:"field,omitempty" yaml:"field,omitempty"`
	// Unit: s (default), ms, or rfc3339.
	Unit string `json:"unit,omitempty" yaml:"unit,omitempty"`
	// Tolerance for timestamps in the past; default 5m.
	Tolerance Duration `json:"tolerance,omitempty" yaml:"tolerance,omitempty"`
	// FutureTolerance for clock skew ahead of us; default = Tolerance.
	FutureTolerance Duration `json:"futureTolerance,omitempty" yaml:"futureTolerance,omitempty"`
}

// HandshakeSpec is a provider's endpoint-ownership check, answered as data by
// the receiver (see Handshake). Type is one of the built-in kinds or "custom".
type HandshakeSpec struct {
	// Type: slack_url_verification, asana_hook_secret, graph_validation_token,
	// zoom_url_validation, dropbox_challenge, meta_challenge, twitch_challenge,
	// monday_challenge, google_sync, head_ok, custom.
	Type string `json:"type" yaml:"type"`
	// The custom kind matches when every set condition holds.
	Method      string `json:"method,omitempty" yaml:"method,omitempty"`
	Query       string `json:"query,omitempty" yaml:"query,omitempty"`
	Header      string `json:"header,omitempty" yaml:"header,omitempty"`
	HeaderValue string `json:"headerValue,omitempty" yaml:"headerValue,omitempty"`
	Field       string `json:"field,omitempty" yaml:"field,omitempty"`
	FieldValue  string `json:"fieldValue,omitempty" yaml:"fieldValue,omitempty"`
	// Verify requires the delivery's signature before answering (custom).
	Verify bool `json:"verify,omitempty" yaml:"verify,omitempty"`
	// Response of the custom kind; Body is a template over {query:x},
	// {header:x} and {field:x}.
	Status      int    `json:"status,omitempty" yaml:"status,omitempty"`
	ContentType string `json:"contentType,omitempty" yaml:"contentType,omitempty"`
	Body        string `json:"body,omitempty" yaml:"body,omitempty"`
}

// Duration is a time.Duration written as "300s" or "5m" in manifests.
type Duration time.Duration

// UnmarshalText accepts Go duration syntax; both encoding/json and yaml use it.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ParseSpec reads a spec from YAML or JSON (JSON is YAML) and validates it,
// so a manifest with a typo'd field or an unknown preset fails at apply time
// rather than as 503s later.
func ParseSpec(data []byte) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return Spec{}, wrapErr(ErrInvalidSpec, err, "cannot parse verification spec")
	}
	if _, err := New(s, Options{}); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// resolve returns the effective spec: the preset's, with the caller's
// non-zero fields laid over it.
func resolve(s Spec) (Spec, error) {
	if s.Preset == "" {
		return s, nil
	}
	p, ok := LookupPreset(s.Preset)
	if !ok {
		return Spec{}, newErr(ErrUnknownScheme, "unknown preset %q", s.Preset)
	}
	out := p.Spec
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&out.Scheme, s.Scheme)
	over(&out.Algorithm, s.Algorithm)
	over(&out.Encoding, s.Encoding)
	over(&out.Header, s.Header)
	over(&out.Field, s.Field)
	over(&out.Query, s.Query)
	over(&out.Prefix, s.Prefix)
	over(&out.Format, s.Format)
	over(&out.Separator, s.Separator)
	over(&out.SignatureKey, s.SignatureKey)
	over(&out.TimestampKey, s.TimestampKey)
	over(&out.Content, s.Content)
	over(&out.SecretEncoding, s.SecretEncoding)
	over(&out.BodyHashParam, s.BodyHashParam)
	over(&out.Audience, s.Audience)
	if s.URLPortVariants {
		out.URLPortVariants = true
	}
	if s.Timestamp != nil {
		ts := TimestampSpec{}
		if out.Timestamp != nil {
			ts = *out.Timestamp
		}
		over(&ts.Header, s.Timestamp.Header)
		over(&ts.Field, s.Timestamp.Field)
		over(&ts.Unit, s.Timestamp.Unit)
		if s.Timestamp.Tolerance != 0 {
			ts.Tolerance = s.Timestamp.Tolerance
		}
		if s.Timestamp.FutureTolerance != 0 {
			ts.FutureTolerance = s.Timestamp.FutureTolerance
		}
		out.Timestamp = &ts
	}
	if s.Handshake != nil {
		h := *s.Handshake
		out.Handshake = &h
	}
	out.Preset = s.Preset
	return out, nil
}

// segment is one piece of a compiled content template.
type segment struct {
	kind string // "lit", "body", "timestamp", "method", "url", "url_hubspot", "form", "secret", "header", "field"
	arg  string
}

func compileTemplate(t string) ([]segment, error) {
	var segs []segment
	for len(t) > 0 {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			segs = append(segs, segment{kind: "lit", arg: t})
			break
		}
		if i > 0 {
			segs = append(segs, segment{kind: "lit", arg: t[:i]})
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return nil, newErr(ErrInvalidSpec, "content template: unclosed '{'")
		}
		name := t[i+1 : i+j]
		t = t[i+j+1:]
		kind, arg, _ := strings.Cut(name, ":")
		switch kind {
		case "body", "timestamp", "method", "url", "url_hubspot", "form", "secret":
			if arg != "" {
				return nil, newErr(ErrInvalidSpec, "content template: {%s} takes no argument", kind)
			}
		case "header", "field":
			if arg == "" {
				return nil, newErr(ErrInvalidSpec, "content template: {%s:…} needs a name", kind)
			}
		default:
			return nil, newErr(ErrInvalidSpec, "content template: unknown placeholder {%s}", name)
		}
		segs = append(segs, segment{kind: kind, arg: arg})
	}
	return segs, nil
}

func usesKind(segs []segment, kind string) bool {
	for _, s := range segs {
		if s.kind == kind {
			return true
		}
	}
	return false
}

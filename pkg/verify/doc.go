// Package verify authenticates incoming webhook deliveries for the webhook
// receiver: a declarative Spec (a named preset such as "stripe" or a generic
// HMAC, Ed25519, ECDSA, RSA, token, Basic, Bearer or JWT scheme) is compiled
// by New into a Verifier that checks a Request against a source's active
// Secrets.
//
// What it guarantees, and why:
//
//   - Verification runs on the raw body bytes. JSON that was parsed and
//     re-serialized has other bytes and fails: key order and whitespace are
//     not preserved by any encoder.
//   - Every comparison is constant-time (hmac.Equal; tokens are compared as
//     SHA-256 digests with subtle.ConstantTimeCompare, so not even their
//     length leaks).
//   - Signed timestamps are checked in both directions, after the signature,
//     so a captured delivery cannot be replayed later and a forged one learns
//     nothing from the timestamp error.
//   - It fails closed: an unknown preset, scheme or algorithm is
//     ErrUnknownScheme, a source without a usable secret is ErrNoSecret; the
//     receiver answers 503 for both, never "accept unverified".
//   - Several secrets can be active at once (rotation); an expired one is
//     refused from its ExpiresAt on. Check reports which secret matched.
//   - Errors carry a stable Code (missing_signature, bad_signature,
//     timestamp_out_of_range, no_secret, unknown_scheme) and never the
//     signature, the computed MAC or the secret, so they can be logged.
//   - No input makes it panic; the work per delivery is bounded.
//
// Handshake answers providers' endpoint checks (Slack url_verification, Asana
// X-Hook-Secret, Microsoft Graph validationToken, Zoom url_validation,
// Dropbox and Meta challenges, Twitch, monday.com, custom ones) as data the
// receiver sends back. NewSigner signs requests like a provider would, for
// the CLI helper and tests.
//
// The package holds no mutable state: Presets returns a fresh table on every
// call. docs/webhooks.md lists the presets and the spec format.
package verify

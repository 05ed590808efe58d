// Package idempotency holds the rules of the Idempotency-Key header that
// are not the dedupe itself: how long a key may be, what makes a repeat
// the same request (Fingerprint), and how long a key is remembered (TTL).
//
// The keys themselves are long-lived producer dedupe claims
// (trigger.WithDedupe, in sb_dedupe): the event id is derived from the
// claim and every retry of a key republishes it, so a call that timed out
// is settled by its retry and nothing is ever released on failure. This
// package once kept its own records (claim, publish, release on failure),
// which a NATS outage could turn into a replayed answer for an event never
// stored, or a second event beside a late first one (hardening defect #2).
package idempotency

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// MaxKeyLen bounds the header's length.
const MaxKeyLen = 255

// DefaultTTL is how long a key is remembered unless configured
// (SWITCHBOARD_IDEMPOTENCY_TTL, broker.Limits.IdempotencyTTL).
const DefaultTTL = 24 * time.Hour

// Fingerprint hashes the parts of a request that must match for a repeat
// to count as the same request. Each part is length-prefixed, so parts
// never run into each other.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

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
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// MaxKeyLen bounds the header's length.
const MaxKeyLen = 255

// DefaultTTL is how long a key is remembered when the bucket says nothing.
const DefaultTTL = 24 * time.Hour

// Store knows the configured key TTL.
type Store struct {
	ttl time.Duration
}

// Open reads how long a key is remembered: the TTL configured for the
// sb_idempotency bucket by broker.Provision (Limits.IdempotencyTTL,
// SWITCHBOARD_IDEMPOTENCY_TTL). The bucket holds no keys any more; its
// configuration is read so the setting keeps working where it is set,
// until the TTL is handed to ingress directly.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.BucketIdempotency)
	if err != nil {
		return nil, fmt.Errorf("idempotency: bucket: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("idempotency: bucket status: %w", err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{ttl: ttl}, nil
}

// TTL is how long a key is remembered after its last write.
func (s *Store) TTL() time.Duration { return s.ttl }

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

// Package idempotency keeps Idempotency-Key records in a JetStream KV bucket
// whose TTL (default 24 h) bounds how long a key is remembered. The first
// request with a key claims it atomically (KV Create), so any number of
// concurrent repeats start exactly one run; the repeats get the original ids.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// ErrReused is a key presented again with a different request.
var ErrReused = errors.New("idempotency key reused with a different request")

// MaxKeyLen bounds the header's length.
const MaxKeyLen = 255

// Record is what a key remembers: a fingerprint of the request and the ids
// the original answer carried.
type Record struct {
	Fingerprint string    `json:"fingerprint"`
	EventID     string    `json:"eventId"`
	RunID       string    `json:"runId,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Store is the key store.
type Store struct {
	kv jetstream.KeyValue
}

// Open binds the idempotency bucket (created by broker.Provision).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.BucketIdempotency)
	if err != nil {
		return nil, fmt.Errorf("idempotency: bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Fingerprint hashes the parts of a request that must match for a repeat
// to count as the same request.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func kvKey(scope, key string) string {
	sum := sha256.Sum256([]byte(key))
	return scope + "." + hex.EncodeToString(sum[:])
}

// Claim claims key within scope (project and route) for rec. It returns nil
// when this request owns the key, the stored record when an identical
// request already claimed it, and ErrReused when a different one did.
func (s *Store) Claim(ctx context.Context, scope, key string, rec Record) (*Record, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	k := kvKey(scope, key)
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := s.kv.Create(ctx, k, b); err == nil {
			return nil, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("idempotency: claim: %w", err)
		}
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile; try to claim again
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: read: %w", err)
		}
		var prev Record
		if err := json.Unmarshal(e.Value(), &prev); err != nil {
			return nil, fmt.Errorf("idempotency: decode: %w", err)
		}
		if prev.Fingerprint != rec.Fingerprint {
			return &prev, ErrReused
		}
		return &prev, nil
	}
	return nil, fmt.Errorf("idempotency: key %q keeps changing", key)
}

// Release forgets a claim whose request failed before anything was stored,
// so the caller's retry is not answered with ids that never existed.
func (s *Store) Release(ctx context.Context, scope, key string) error {
	if err := s.kv.Purge(ctx, kvKey(scope, key)); err != nil {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}

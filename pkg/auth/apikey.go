// Package auth holds Switchboard's credential primitives: API keys for
// machines, a shared admin token for operators, and RS256 JWTs for end users
// of a project. It knows nothing about HTTP or storage; callers decide where
// keys live and which project a request targets.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// APIKeyPrefix starts every API key. It lets a request handler tell an API
// key from a JWT (which always starts with "eyJ") without trying to parse
// it, and makes leaked keys easy to find with secret scanners.
const APIKeyPrefix = "sk_"

// apiKeyBytes is the entropy of a key. 256 bits is what makes a plain,
// unsalted SHA-256 an adequate storage hash: there is nothing to brute force.
const apiKeyBytes = 32

// GenerateAPIKey returns a fresh API key: APIKeyPrefix followed by 32 random
// bytes in unpadded base64url. Show it to the user once and store only
// HashAPIKey(key).
func GenerateAPIKey() (key string, err error) {
	var b [apiKeyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: generate api key: %w", err)
	}
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashAPIKey returns the stored form of key: hex SHA-256.
//
// Lookups go by this hash (map or indexed column), so the raw key is never
// compared against a stored secret and no constant-time compare is needed.
// Any timing an attacker can observe depends on the hash of their own guess,
// and learning prefixes of a preimage-resistant hash tells them nothing about
// a real key. A slow KDF is unnecessary because keys carry 256 bits of
// entropy rather than being human-chosen.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// LooksLikeAPIKey reports whether tok has the API key shape, so a handler can
// route it to the key lookup instead of JWT verification. It does not
// validate anything.
func LooksLikeAPIKey(tok string) bool {
	return strings.HasPrefix(tok, APIKeyPrefix)
}

// EqualSecret compares a presented secret (such as the admin token) with the
// configured one in constant time. It is false if either is empty so that an
// unset secret can never be matched by an empty header.
//
// Both sides are hashed first because subtle.ConstantTimeCompare returns
// early on a length mismatch, which would leak the secret's length.
func EqualSecret(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

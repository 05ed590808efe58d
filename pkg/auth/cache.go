package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// evictSample is how many entries Put inspects to pick a victim when the
// cache is full. Sampling (as Redis does) approximates "evict the entry
// closest to expiry" without an ordered index, and naturally drops already
// expired entries first.
const evictSample = 8

// TokenCache remembers user tokens that already passed VerifyUserToken, so
// the RSA verification and JSON decoding run once per token rather than
// once per request. It is bounded and safe for concurrent use. A nil
// *TokenCache is a valid, always-empty cache.
//
// Entries are keyed by the caller's key-set ID together with a SHA-256 of
// the token. Hashing keeps bearer tokens themselves out of memory; the
// key-set ID means that rotating or revoking a project's keys (and changing
// its ID, e.g. to a hash of the key list) invalidates everything verified
// under the old set without having to walk the cache.
type TokenCache struct {
	max int

	mu      sync.RWMutex
	entries map[cacheKey]Claims
}

type cacheKey [sha256.Size]byte

// NewTokenCache returns a cache holding at most max verified tokens.
// max <= 0 yields a cache that stores nothing.
func NewTokenCache(max int) *TokenCache {
	c := &TokenCache{max: max}
	if max > 0 {
		c.entries = make(map[cacheKey]Claims, min(max, 1024))
	}
	return c
}

func makeCacheKey(keySetID, token string) cacheKey {
	// Length-prefix the ID so that ("ab", "c…") and ("a", "bc…") differ.
	// The fixed-capacity buffer stays on the stack for typical tokens.
	buf := make([]byte, 0, 1024)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(keySetID)))
	buf = append(buf, keySetID...)
	buf = append(buf, token...)
	return sha256.Sum256(buf)
}

// Get returns the claims cached for token under keySetID if they have not
// expired at now. Expiry is checked on every hit, without Leeway, so the
// cache can only ever be stricter than VerifyUserToken.
func (c *TokenCache) Get(keySetID, token string, now time.Time) (Claims, bool) {
	if c == nil || c.max <= 0 {
		return Claims{}, false
	}
	k := makeCacheKey(keySetID, token)
	c.mu.RLock()
	cl, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(cl.ExpiresAt) {
		// Expired entries are left for eviction, which prefers them, so the
		// hot path only ever takes the read lock.
		return Claims{}, false
	}
	return cl, true
}

// Put records that token verified under keySetID with claims cl. Only call it
// with the result of a successful VerifyUserToken. Claims without an expiry
// are not cached, since nothing would ever invalidate them.
func (c *TokenCache) Put(keySetID, token string, cl Claims) {
	if c == nil || c.max <= 0 || cl.ExpiresAt.IsZero() {
		return
	}
	k := makeCacheKey(keySetID, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evictLocked()
	}
	c.entries[k] = cl
}

// evictLocked removes the entry expiring soonest among a few sampled ones.
// Map iteration starts at a random position, so the sample is spread out.
func (c *TokenCache) evictLocked() {
	var (
		victim cacheKey
		soon   time.Time
		n      int
	)
	for k, cl := range c.entries {
		if n == 0 || cl.ExpiresAt.Before(soon) {
			victim, soon = k, cl.ExpiresAt
		}
		n++
		if n == evictSample {
			break
		}
	}
	if n > 0 {
		delete(c.entries, victim)
	}
}

// Len reports how many entries the cache holds, expired ones included.
func (c *TokenCache) Len() int {
	if c == nil || c.max <= 0 {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

package directory

import (
	"hash/maphash"
	"sync"
	"time"
)

// cache is a bounded LRU of decoded primary records (present or absent),
// keyed by their KV key, plus the recent-change log that keeps a slow read
// from caching a value the watch has already superseded.
//
// The race it closes: a reader fetches revision 5 of a key, a writer stores
// revision 6, the watch invalidates the key (nothing cached yet), and only
// then the reader inserts revision 5 — which would stay stale until
// evicted. Every watched change is logged (key hash, revision) in a ring;
// insert refuses a value if the ring holds a newer change of its key, or
// if the ring no longer covers every change since the read began.
type cache struct {
	mu      sync.Mutex
	size    int
	ttl     time.Duration
	entries map[string]*cacheEntry
	head    cacheEntry // sentinel of the LRU list; head.next is the most recent
	seed    maphash.Seed
	enabled bool

	ring      []change
	ringNext  int
	ringFull  bool
	latest    map[uint64]uint64 // key hash -> newest revision in the ring
	droppedTo uint64            // the newest revision that fell out of the ring

	hits, misses, refused uint64
}

type cacheEntry struct {
	key        string
	doc        *doc
	insertedAt time.Time
	prev, next *cacheEntry
}

type change struct{ hash, rev uint64 }

// ringSize bounds the change log: at 10k directory writes a second it
// covers reads that take up to ~0.8 s.
const ringSize = 8192

func newCache(size int, ttl time.Duration) *cache {
	c := &cache{
		size:    size,
		ttl:     ttl,
		entries: make(map[string]*cacheEntry),
		seed:    maphash.MakeSeed(),
		ring:    make([]change, ringSize),
		latest:  make(map[uint64]uint64, ringSize),
	}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

func (c *cache) hash(key string) uint64 { return maphash.String(c.seed, key) }

// get returns the cached record of key; touch moves it to the front (a
// fan-out scan peeks without promoting, so it cannot flush the working set).
func (c *cache) get(key string, touch bool) (*doc, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		c.misses++
		return nil, false
	}
	if c.ttl > 0 && time.Since(e.insertedAt) > c.ttl {
		c.unlink(e)
		delete(c.entries, key)
		c.misses++
		return nil, false
	}
	c.hits++
	if touch {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.doc, true
}

// insert caches d (read at revision d.rev; nil-valued records are absent
// ones) for key if no change newer than the read is known; since is the
// watch position before the read began.
func (c *cache) insert(key string, d *doc, since uint64) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || c.droppedTo > since {
		c.refused++
		return
	}
	if rev, ok := c.latest[c.hash(key)]; ok && rev > d.rev {
		c.refused++
		return
	}
	if e := c.entries[key]; e != nil {
		if e.doc.rev > d.rev {
			return
		}
		e.doc, e.insertedAt = d, time.Now()
		c.unlink(e)
		c.pushFront(e)
		return
	}
	e := &cacheEntry{key: key, doc: d, insertedAt: time.Now()}
	c.entries[key] = e
	c.pushFront(e)
	for len(c.entries) > c.size {
		last := c.head.prev
		c.unlink(last)
		delete(c.entries, last.key)
	}
}

// changed records a watched change of key at rev and drops its cached record.
func (c *cache) changed(key string, rev uint64) {
	h := c.hash(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil && e.doc.rev < rev {
		c.unlink(e)
		delete(c.entries, key)
	}
	if c.ringFull {
		old := c.ring[c.ringNext]
		c.droppedTo = max(c.droppedTo, old.rev)
		if c.latest[old.hash] == old.rev {
			delete(c.latest, old.hash)
		}
	}
	c.ring[c.ringNext] = change{hash: h, rev: rev}
	if rev > c.latest[h] {
		c.latest[h] = rev
	}
	c.ringNext++
	if c.ringNext == len(c.ring) {
		c.ringNext, c.ringFull = 0, true
	}
}

// drop forgets key's cached record.
func (c *cache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		c.unlink(e)
		delete(c.entries, key)
	}
}

// setEnabled turns caching on (the watch runs) or off and empties the cache.
func (c *cache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = on
	c.entries = make(map[string]*cacheEntry)
	c.head.next, c.head.prev = &c.head, &c.head
}

func (c *cache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *cache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

// CacheStats are counters of the record cache.
type CacheStats struct {
	Entries int
	Hits    uint64
	Misses  uint64
	// Refused counts reads not cached because a newer change was known
	// (or could not be ruled out).
	Refused uint64
}

func (c *cache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: len(c.entries), Hits: c.hits, Misses: c.misses, Refused: c.refused}
}

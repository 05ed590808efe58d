package schedule

import (
	"sync"
	"time"
)

// ZoneCache loads each time zone once. time.LoadLocation parses the zone's
// tzdata on every call (about 10 KB and tens of microseconds), while a
// scheduler or a router asks for the same few zones thousands of times a
// second: at 1,000 workflows × 10 zones the scheduler held ten thousand
// copies of ten zones. Only zones that load are kept, so its size is
// bounded by the tzdata's zone names (about 600). The zero value is ready
// to use; it is safe for concurrent use.
type ZoneCache struct {
	mu   sync.RWMutex
	zone map[string]*time.Location
}

// Load is LoadZone through the cache.
func (c *ZoneCache) Load(name string) (*time.Location, error) {
	c.mu.RLock()
	loc, ok := c.zone[name]
	c.mu.RUnlock()
	if ok {
		return loc, nil
	}
	loc, err := LoadZone(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.zone == nil {
		c.zone = map[string]*time.Location{}
	}
	c.zone[name] = loc
	c.mu.Unlock()
	return loc, nil
}

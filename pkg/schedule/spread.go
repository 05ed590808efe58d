package schedule

import (
	"hash/fnv"
	"math/bits"
	"time"
)

// Offset is how long after the nominal tick a user's run starts: a place in
// the spread window picked by a hash of the user key, plus a jitter picked
// by a hash of (user key, tick). Both are pure functions of their inputs,
// so every replica and every router computes the same delay, and a user
// keeps the same place in the window from tick to tick (their runs stay
// one interval apart). The result is in [0, spread+jitter), whole
// milliseconds (delayed delivery is not finer).
func Offset(nominal time.Time, userKey string, spread, jitter time.Duration) time.Duration {
	var d time.Duration
	h := hashKey(userKey)
	if spread > 0 {
		d += scale(mix(h), spread)
	}
	if jitter > 0 {
		// The tick enters through its own mix so consecutive ticks give
		// unrelated jitters.
		d += scale(mix(h^mix(uint64(nominal.Unix())+0x9e3779b97f4a7c15)), jitter)
	}
	return d.Truncate(time.Millisecond)
}

// Offset is the package Offset with the schedule's spread and jitter.
func (s *Schedule) Offset(nominal time.Time, userKey string) time.Duration {
	return Offset(nominal, userKey, s.spread, s.jitter)
}

func hashKey(key string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(key))
	return f.Sum64()
}

// mix is the splitmix64 finalizer: FNV alone leaves similar keys ("user-1",
// "user-2") close together in the high bits that scale reads.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// scale maps a uniform 64-bit hash onto [0, span) without modulo bias.
func scale(h uint64, span time.Duration) time.Duration {
	hi, _ := bits.Mul64(h, uint64(span))
	return time.Duration(hi)
}

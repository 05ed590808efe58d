package schedule

import (
	"iter"
	"time"
)

// Bounds of the instants Next works on, 0001-01-02 and 9999-01-01 UTC
// (TestBounds checks the numbers), so naive wall-time arithmetic and
// time.Date never overflow.
const (
	minUnix = -62135510400
	maxUnix = 253370764800
)

// Next is the first nominal tick strictly after after, in loc (nil: the
// schedule's fixed zone, else its fallback zone). It returns the zero time
// when there is none (after is beyond year 9999). Nominal times are whole
// seconds; the result carries loc so its wall clock is easy to read.
func (s *Schedule) Next(after time.Time, loc *time.Location) time.Time {
	loc = s.loc(loc)
	a := after.Unix() // floor: any tick > a is > after, whole seconds
	if a < minUnix {
		a = minUnix
	}
	if a >= maxUnix {
		return time.Time{}
	}
	var u int64
	var ok bool
	switch s.kind {
	case kindElapsed:
		u, ok = (floorDiv(a, s.period)+1)*s.period, true
	case kindHourly:
		u, ok = s.nextHourly(a, loc)
	case kindWall:
		u, ok = s.nextWall(a, loc)
	}
	if !ok || u > maxUnix {
		return time.Time{}
	}
	return time.Unix(u, 0).In(loc)
}

// Between yields the ticks in (from, to], in order. Callers that may face a
// long range should stop early (the sequence is lazy).
func (s *Schedule) Between(from, to time.Time, loc *time.Location) iter.Seq[time.Time] {
	loc = s.loc(loc)
	return func(yield func(time.Time) bool) {
		for t := s.Next(from, loc); !t.IsZero() && !t.After(to); t = s.Next(t, loc) {
			if !yield(t) {
				return
			}
		}
	}
}

func (s *Schedule) loc(loc *time.Location) *time.Location {
	switch {
	case loc != nil:
		return loc
	case s.zone != nil:
		return s.zone
	case s.fallback != nil:
		return s.fallback
	}
	return time.UTC
}

// zonePeriod is the stretch of time around instant u during which loc keeps
// one UTC offset: [start, end), with open ends flagged.
type zonePeriod struct {
	offset           int64
	start, end       int64
	hasStart, hasEnd bool
}

func periodAt(loc *time.Location, u int64) zonePeriod {
	t := time.Unix(u, 0).In(loc)
	_, off := t.Zone()
	p := zonePeriod{offset: int64(off)}
	start, end := t.ZoneBounds()
	if !start.IsZero() {
		p.start, p.hasStart = start.Unix(), true
	}
	if !end.IsZero() {
		p.end, p.hasEnd = end.Unix(), true
	}
	return p
}

func (p zonePeriod) contains(u int64) bool {
	return (!p.hasStart || u >= p.start) && (!p.hasEnd || u < p.end)
}

// maxOffset is more than any UTC offset in tzdata (local mean times reach
// about ±16 h), so an instant with a given wall time lies within it.
const maxOffset = 18 * 3600

// periodBudget bounds zone-period walks; a day or two holds at most a few
// transitions, so this is only a guard against a pathological zone.
const periodBudget = 64

// resolve maps a wall time to the instant it runs at in loc, by the DST
// rule: the first instant showing that wall time, or, when no instant
// does (a spring-forward gap), the first instant after the gap.
//
// It walks loc's offset periods from before the earliest possible
// occurrence; the first period whose local range holds w gives the first
// occurrence, and the first period whose local range starts after w means
// w fell in the gap before it.
func resolve(loc *time.Location, w int64) int64 {
	u := w - maxOffset
	for range periodBudget {
		p := periodAt(loc, u)
		c := w - p.offset
		if p.contains(c) {
			return c
		}
		if p.hasStart && c < p.start {
			return p.start
		}
		if !p.hasEnd {
			break
		}
		u = p.end
	}
	return w - periodAt(loc, w).offset
}

func offsetAt(loc *time.Location, u int64) int64 {
	_, off := time.Unix(u, 0).In(loc).Zone()
	return int64(off)
}

// nextWall is the first wall-matcher tick after instant a. Because resolve
// never decreases as wall times increase, the answer is the first matching
// wall time after a's own whose resolved instant is after a.
func (s *Schedule) nextWall(a int64, loc *time.Location) (int64, bool) {
	w := a + offsetAt(loc, a)
	for range periodBudget {
		nw, ok := s.wall.next(w)
		if !ok || nw > maxUnix+maxOffset {
			return 0, false
		}
		c := resolve(loc, nw)
		if c > a {
			return c, true
		}
		// a is in the second pass of a repeated (fall-back) range and nw
		// ran in the first pass: every wall time up to a's reading in that
		// first pass ran before a too.
		w = max(nw, a+offsetAt(loc, c))
	}
	return 0, false
}

// nextHourly is the first instant after a whose local time (in the offset
// in force at that instant) is hh:MM:00 with hh divisible by N. Within one
// offset period local time runs in step with real time, so the answer is
// found by arithmetic per period, moving to the next period when the
// candidate falls past the period's end.
func (s *Schedule) nextHourly(a int64, loc *time.Location) (int64, bool) {
	u := a + 1
	for range periodBudget {
		p := periodAt(loc, u)
		n := u + p.offset // local reading of u
		c := n - floorMod(n, 3600) + s.atMinute*60
		if c < n {
			c += 3600
		}
		for floorMod(floorDiv(c, 3600), 24)%s.hours != 0 {
			c += 3600
		}
		if inst := c - p.offset; !p.hasEnd || inst < p.end {
			return inst, true
		}
		u = p.end
	}
	return 0, false
}

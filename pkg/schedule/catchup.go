package schedule

import "time"

// Missed lists the ticks to fire on start-up after downtime, by the
// catch-up policy: ticks in (lastFired, now] that are no older than the
// catch-up window. skip: none; once: the latest one; all: each of them,
// oldest first, at most MaxCatchupTicks (the latest are kept). Ticks keep
// their nominal times: the caller publishes each with TickID(…, t), so a
// replica that already fired one is deduplicated by JetStream.
//
// A zero lastFired (the schedule never fired: new workflow, new zone) has
// nothing missed. The window ends at now inclusive and Next(now) is the
// first regular tick, so Missed and Next never both return a tick.
func (s *Schedule) Missed(lastFired, now time.Time, loc *time.Location) []time.Time {
	if lastFired.IsZero() || !now.After(lastFired) || s.catchup == CatchupSkip {
		return nil
	}
	from := lastFired
	// One nanosecond earlier makes a tick exactly at now-window count.
	if edge := now.Add(-s.window - time.Nanosecond); edge.After(from) {
		from = edge
	}
	if s.catchup == CatchupOnce {
		if t, ok := s.latest(from, now, loc); ok {
			return []time.Time{t}
		}
		return nil
	}
	// A ring of the latest MaxCatchupTicks: the window bounds the walk
	// (at most one tick a second over MaxCatchupWindow).
	ring := make([]time.Time, 0, 16)
	head := 0
	for t := range s.Between(from, now, loc) {
		if len(ring) < MaxCatchupTicks {
			ring = append(ring, t)
			continue
		}
		ring[head] = t
		head = (head + 1) % MaxCatchupTicks
	}
	return append(ring[head:], ring[:head]...)
}

// Latest is the last tick at or before at and after at-within, in loc. A
// timer-driven caller (a gocron task) uses it to name the tick it is
// firing: timers fire at or a little after the nominal time, and the name
// must be the nominal time on every replica.
// within is capped at MaxInterval, which bounds the search.
func (s *Schedule) Latest(at time.Time, within time.Duration, loc *time.Location) (time.Time, bool) {
	return s.latest(at.Add(-min(max(within, 0), MaxInterval)), at, loc)
}

// latest is the last tick in (from, to]. It probes windows ending at to
// that double in length, so the work is proportional to how far back the
// last tick is, not to the length of (from, to].
func (s *Schedule) latest(from, to time.Time, loc *time.Location) (time.Time, bool) {
	for step := time.Second; ; step *= 2 {
		start := to.Add(-step)
		if !start.After(from) || step > 2*MaxInterval {
			start = from
		}
		var last time.Time
		for t := range s.Between(start, to, loc) {
			last = t
		}
		if !last.IsZero() {
			return last, true
		}
		if start.Equal(from) {
			return time.Time{}, false
		}
	}
}

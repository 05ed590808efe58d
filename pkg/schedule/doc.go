// Package schedule is the timing core of schedule triggers: it parses and
// checks a trigger's schedule fields, computes nominal tick times in a time
// zone (with explicit daylight-saving rules), lists ticks missed during
// downtime per the catch-up policy, spreads a tick's per-user runs over a
// window, and names each tick for JetStream deduplication.
//
// Everything here is pure and deterministic: no goroutines, no clocks, no
// NATS. Any number of scheduler replicas that compile the same spec compute
// the same ticks, the same offsets and the same tick ids, which is what lets
// them run without a leader (JetStream keeps one message per tick id).
//
// # Two kinds of schedule
//
// Elapsed-time schedules (every N seconds or minutes, a Go duration such as
// "5s" or "2h", or "@every 90s") tick at whole multiples of the interval
// since the Unix epoch. They ignore the zone entirely, so daylight-saving
// changes can neither double-fire nor skip them.
//
// Wall-clock schedules (cron, every N days at a time, every N weeks on a
// weekday at a time) name local times. Their DST rule: a wall time that does
// not exist (spring forward) runs once, at the first instant after the gap;
// a wall time that occurs twice (fall back) runs once, at its first
// occurrence.
//
// Hourly schedules (every N hours at minute M) follow the local clock's
// minute but real time: they fire at every instant whose local time is
// hh:MM with hh a multiple of N, so an hourly tick keeps firing once per
// real hour through both transitions of a whole-hour DST change.
//
// See docs/schedules.md for the YAML shape and worked examples.
package schedule

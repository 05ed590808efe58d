package schedule

import (
	"slices"
	"testing"
	"time"
)

func TestMissed(t *testing.T) {
	cases := []struct {
		name      string
		spec      Spec
		zone      string
		lastFired string
		now       string
		want      []string
	}{
		{"skip fires nothing", Spec{Every: every("5s"), Catchup: "skip"}, "", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z", nil},
		{"once fires the latest missed, nominal time kept", Spec{Every: every("5s"), Catchup: "once"}, "", "2026-01-01T00:00:00Z", "2026-01-01T00:00:32Z",
			[]string{"2026-01-01T00:00:30Z"}},
		{"all fires each missed, oldest first", Spec{Every: every("5s"), Catchup: "all"}, "", "2026-01-01T00:00:00Z", "2026-01-01T00:00:17Z",
			[]string{"2026-01-01T00:00:05Z", "2026-01-01T00:00:10Z", "2026-01-01T00:00:15Z"}},
		{"a tick exactly at now is missed (Next(now) is after it)", Spec{Every: every("5s"), Catchup: "all"}, "", "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z",
			[]string{"2026-01-01T00:00:05Z", "2026-01-01T00:00:10Z"}},
		{"all within the window only (edge inclusive)", Spec{Every: every("1m"), Catchup: "all", CatchupWindow: "3m"}, "", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z",
			[]string{"2026-01-01T00:07:00Z", "2026-01-01T00:08:00Z", "2026-01-01T00:09:00Z", "2026-01-01T00:10:00Z"}},
		{"once outside the window fires nothing", Spec{Cron: "0 0 9 * * *", Catchup: "once", CatchupWindow: "1h"}, "", "2026-01-01T09:00:00Z", "2026-01-02T11:00:00Z", nil},
		{"once inside the window", Spec{Cron: "0 0 9 * * *", Catchup: "once", CatchupWindow: "3h"}, "", "2026-01-01T09:00:00Z", "2026-01-02T11:00:00Z",
			[]string{"2026-01-02T09:00:00Z"}},
		{"once of a daily schedule a week later", Spec{Cron: "0 0 9 * * *", Catchup: "once", CatchupWindow: "168h"}, "", "2026-01-01T09:00:00Z", "2026-01-08T08:00:00Z",
			[]string{"2026-01-07T09:00:00Z"}},
		{"nothing missed yet", Spec{Cron: "0 0 9 * * *", Catchup: "all"}, "", "2026-01-01T09:00:00Z", "2026-01-01T09:30:00Z", nil},
		{"never fired: nothing to catch up", Spec{Every: every("5s"), Catchup: "all"}, "", "", "2026-01-01T00:00:30Z", nil},
		{"clock behind lastFired: nothing", Spec{Every: every("5s"), Catchup: "all"}, "", "2026-01-01T00:01:00Z", "2026-01-01T00:00:30Z", nil},
		{"in the user's zone, across a gap", Spec{Cron: "0 30 2 * * *", Catchup: "all", CatchupWindow: "168h"}, "America/New_York", "2026-03-07T07:30:00Z", "2026-03-09T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, c.spec)
			var loc *time.Location
			if c.zone != "" {
				loc = mustLoad(t, c.zone)
			}
			var last time.Time
			if c.lastFired != "" {
				last = utc(c.lastFired)
			}
			got := fmtTimes(s.Missed(last, utc(c.now), loc))
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestMissedCap: catchup all keeps the latest MaxCatchupTicks, in order.
func TestMissedCap(t *testing.T) {
	s := mustCompile(t, Spec{Every: every("1s"), Catchup: "all", CatchupWindow: "2h"})
	now := utc("2026-01-01T02:00:00Z")
	got := s.Missed(utc("2026-01-01T00:00:00Z"), now, nil)
	if len(got) != MaxCatchupTicks {
		t.Fatalf("%d ticks, want %d", len(got), MaxCatchupTicks)
	}
	if !got[len(got)-1].Equal(now) || !got[0].Equal(now.Add(-(MaxCatchupTicks-1)*time.Second)) {
		t.Errorf("kept %v … %v, want the latest %d", got[0], got[len(got)-1], MaxCatchupTicks)
	}
	if !slices.IsSortedFunc(got, time.Time.Compare) {
		t.Error("not oldest first")
	}
}

// TestMissedThenNext: after a restart, Missed and Next together fire every
// tick once: no tick both caught up and scheduled, none lost.
func TestMissedThenNext(t *testing.T) {
	s := mustCompile(t, Spec{Every: every("5s"), Catchup: "all", CatchupWindow: "1h"})
	last, now := utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:20Z")
	missed := s.Missed(last, now, nil)
	next := s.Next(now, nil)
	all := append(missed, next)
	want := []string{"2026-01-01T00:00:05Z", "2026-01-01T00:00:10Z", "2026-01-01T00:00:15Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:25Z"}
	if got := fmtTimes(all); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLatest(t *testing.T) {
	s := mustCompile(t, Spec{Cron: "0 30 2 * * *", Timezone: "America/New_York"})
	ny := mustLoad(t, "America/New_York")
	// A timer that fired 3 s late on the spring-forward day still names the
	// collapsed 02:30 tick by its nominal time, 03:00 EDT.
	got, ok := s.Latest(utc("2026-03-08T07:00:03Z"), time.Minute, ny)
	if !ok || !got.Equal(utc("2026-03-08T07:00:00Z")) {
		t.Errorf("got %v %v", got, ok)
	}
	if _, ok := s.Latest(utc("2026-03-08T08:00:00Z"), time.Minute, ny); ok {
		t.Error("found a tick an hour back with a 1-minute window")
	}
	e := mustCompile(t, Spec{Every: every("5s")})
	if got, ok := e.Latest(utc("2026-01-01T00:00:05Z"), time.Second, nil); !ok || !got.Equal(utc("2026-01-01T00:00:05Z")) {
		t.Errorf("at a tick: got %v %v", got, ok)
	}
}

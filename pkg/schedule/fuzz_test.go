package schedule

import (
	"testing"
	"time"
)

// FuzzCompile: any cron text, every text or structured every compiles or
// is refused with problems, without panicking; a compiled one yields
// strictly increasing ticks in a DST zone.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"0 0 9 * * *", "*/15 * * * *", "@daily", "@every 5s", "0 0 0 29 2 *", "0 0 0 L * *",
		"1-5/2 */3 0-23/4 1,15 jan-dec/2 mon-fri", "* * * * * *", "? ? ? ? ? ?", "0 0 0 31 4 *", "60 * * * * *", "*/", "-", ",,", "0-"} {
		f.Add(s, "5s", "hours", 2, 30, "09:00", "monday")
	}
	f.Add("", "1h30m", "weeks", 3, 0, "9:00 pm", "sun")
	f.Add("", "", "days", 366, 0, "23:59:59", "")
	ny := mustLoad(f, "America/New_York")
	f.Fuzz(func(t *testing.T, cron, dur, unit string, interval, atMinute int, at, weekday string) {
		specs := []Spec{
			{Cron: cron, Timezone: "America/New_York"},
			{Every: every(dur), Spread: Duration(dur)},
			{Every: &Every{Unit: unit, Interval: interval, AtMinute: &atMinute, At: at, Weekday: weekday}},
			{Every: &Every{Unit: unit, Interval: interval, At: at, Weekday: weekday}, Timezone: "Australia/Lord_Howe"},
		}
		for _, spec := range specs {
			s, p := Compile(spec)
			if (s == nil) == (len(p) == 0) {
				t.Fatalf("Compile(%+v): schedule %v with problems %v", spec, s, p)
			}
			if s == nil {
				for _, x := range p {
					if x.Field == "" || x.Message == "" {
						t.Fatalf("unnamed problem %+v", x)
					}
				}
				continue
			}
			prev := utc("2026-10-31T00:00:00Z")
			for range 5 {
				n := s.Next(prev, ny)
				if n.IsZero() {
					break
				}
				if !n.After(prev) {
					t.Fatalf("%s: Next(%v) = %v, not after", s, prev, n)
				}
				prev = n
			}
		}
	})
}

// FuzzNext: for any instant and zone, Next is strictly after its argument,
// a whole second, and found without looping forever.
func FuzzNext(f *testing.F) {
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Apia", "America/Havana", "Asia/Kathmandu", "Africa/Monrovia", "Europe/Amsterdam"}
	specs := []Spec{
		{Cron: "0 30 2 * * *"}, {Cron: "* * * * * *"}, {Cron: "0 */15 * * * *"}, {Cron: "0 0 0 29 2 *"}, {Cron: "0 0 12 13 * 5"},
		{Every: every("5s")}, {Every: every("7m")}, {Every: &Every{Unit: "hours", Interval: 5, AtMinute: intp(45)}},
		{Every: &Every{Unit: "days", Interval: 3, At: "02:30"}}, {Every: &Every{Unit: "weeks", Interval: 2, Weekday: "sunday", At: "01:30"}},
	}
	var compiled []*Schedule
	for _, s := range specs {
		compiled = append(compiled, mustCompile(f, s))
	}
	var locs []*time.Location
	for _, z := range zones {
		locs = append(locs, mustLoad(f, z))
	}
	f.Add(int64(1772953200), int64(0), uint8(0), uint8(1))
	f.Add(int64(1793512800), int64(999999999), uint8(2), uint8(3))
	f.Add(int64(1325239200), int64(5), uint8(8), uint8(4))
	f.Add(int64(-62135596800), int64(0), uint8(5), uint8(7))
	f.Add(int64(253402300000), int64(0), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, sec, nsec int64, si, zi uint8) {
		s := compiled[int(si)%len(compiled)]
		loc := locs[int(zi)%len(locs)]
		after := time.Unix(sec, nsec%1e9)
		n := s.Next(after, loc)
		if n.IsZero() {
			if after.Year() < 9980 && after.Year() > 1 {
				t.Fatalf("%s in %v: no next after %v", s, loc, after)
			}
			return
		}
		if !n.After(after) || n.Nanosecond() != 0 {
			t.Fatalf("%s in %v: Next(%v) = %v", s, loc, after, n)
		}
		// Going on from the answer keeps moving forward.
		if m := s.Next(n, loc); !m.IsZero() && !m.After(n) {
			t.Fatalf("%s in %v: Next(%v) = %v", s, loc, n, m)
		}
	})
}

func BenchmarkNext(b *testing.B) {
	cases := []struct {
		name string
		spec Spec
	}{
		{"every-5s", Spec{Every: every("5s")}},
		{"hourly", Spec{Every: &Every{Unit: "hours", AtMinute: intp(30)}}},
		{"cron-daily-9am", Spec{Cron: "0 0 9 * * *"}},
		{"cron-every-15m", Spec{Cron: "0 */15 * * * *"}},
		{"weekly", Spec{Every: &Every{Unit: "weeks", Weekday: "monday", At: "09:00"}}},
	}
	loc := mustLoad(b, "Europe/Berlin")
	for _, c := range cases {
		s := mustCompile(b, c.spec)
		b.Run(c.name, func(b *testing.B) {
			t := utc("2026-01-01T00:00:00Z")
			for b.Loop() {
				t = s.Next(t, loc)
			}
		})
	}
}

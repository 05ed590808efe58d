package schedule

import (
	"slices"
	"testing"
	"time"
)

// TestNextDST pins the DST rule on real 2026 transitions (dates checked
// against Go's tzdata): a wall time in a spring-forward gap runs once at the
// first instant after the gap; a wall time repeated by a fall-back runs
// once, at its first occurrence. Elapsed intervals ignore the change and
// hourly schedules keep one tick per real hour.
func TestNextDST(t *testing.T) {
	daily := func(at string) Spec { return Spec{Every: &Every{Unit: "days", At: at}} }
	cron := func(c string) Spec { return Spec{Cron: c} }
	hourly := func(m int) Spec { return Spec{Every: &Every{Unit: "hours", AtMinute: intp(m)}} }
	cases := []struct {
		name string
		spec Spec
		zone string
		from string
		want []string
	}{
		// America/New_York: 2026-03-08 02:00 EST → 03:00 EDT (07:00Z).
		{"new york spring: daily 02:30 runs at 03:00 EDT", cron("0 30 2 * * *"), "America/New_York", "2026-03-07T00:00:00Z",
			[]string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"new york spring: every.days at 02:30 likewise", daily("02:30"), "America/New_York", "2026-03-07T00:00:00Z",
			[]string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"new york spring: weekly sunday 02:30", Spec{Every: &Every{Unit: "weeks", Weekday: "sunday", At: "2:30 am"}}, "America/New_York", "2026-03-01T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-15T06:30:00Z"}},
		{"new york spring: cron */15 collapses the gap into one 03:00 tick", cron("0 */15 * * * *"), "America/New_York", "2026-03-08T06:30:00Z",
			[]string{"2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"}},
		{"new york spring: hourly :30 skips the missing 02:30, one per real hour", hourly(30), "America/New_York", "2026-03-08T05:00:00Z",
			[]string{"2026-03-08T05:30:00Z", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", "2026-03-08T08:30:00Z"}},
		{"new york spring: every 15m is plain elapsed time", Spec{Every: every("15m")}, "America/New_York", "2026-03-08T06:40:00Z",
			[]string{"2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"}},
		// America/New_York: 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).
		{"new york fall: daily 01:30 runs once, first occurrence (EDT)", cron("0 30 1 * * *"), "America/New_York", "2026-10-31T00:00:00Z",
			[]string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"new york fall: asked from inside the repeated hour", cron("0 30 1 * * *"), "America/New_York", "2026-11-01T06:10:00Z",
			[]string{"2026-11-02T06:30:00Z"}},
		{"new york fall: cron */15 does not repeat 01:00-01:45", cron("0 */15 * * * *"), "America/New_York", "2026-11-01T05:40:00Z",
			[]string{"2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:15:00Z"}},
		{"new york fall: hourly :30 keeps both 01:30s, one per real hour", hourly(30), "America/New_York", "2026-11-01T04:00:00Z",
			[]string{"2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"}},
		{"new york fall: every 15m does not double-fire", Spec{Every: every("15m")}, "America/New_York", "2026-11-01T05:40:00Z",
			[]string{"2026-11-01T05:45:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z"}},
		{"new york fall: every 5s straight through", Spec{Every: every("5s")}, "America/New_York", "2026-11-01T05:59:50Z",
			[]string{"2026-11-01T05:59:55Z", "2026-11-01T06:00:00Z", "2026-11-01T06:00:05Z"}},
		// Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST (01:00Z);
		// 2026-10-25 03:00 CEST → 02:00 CET (01:00Z).
		{"berlin spring: daily 02:30 runs at 03:00 CEST", daily("02:30"), "Europe/Berlin", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"berlin spring: 09:00 moves with the offset", cron("0 0 9 * * *"), "Europe/Berlin", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"}},
		{"berlin fall: daily 02:30 runs once, at 02:30 CEST", daily("02:30"), "Europe/Berlin", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"berlin fall: 5-field cron, same rule", cron("30 2 * * *"), "Europe/Berlin", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		// Australia/Lord_Howe, a 30-minute shift: 2026-04-05 02:00 +11 →
		// 01:30 +10:30 (2026-04-04 15:00Z); 2026-10-04 02:00 +10:30 → 02:30
		// +11 (2026-10-03 15:30Z).
		{"lord howe fall: daily 01:45 at its first occurrence (+11)", daily("01:45"), "Australia/Lord_Howe", "2026-04-03T00:00:00Z",
			[]string{"2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}},
		{"lord howe fall: cron */15 skips the repeated 01:30-01:59", cron("0 */15 * * * *"), "Australia/Lord_Howe", "2026-04-04T14:10:00Z",
			[]string{"2026-04-04T14:15:00Z", "2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:30:00Z"}},
		{"lord howe fall: hourly :45 at both 01:45s", hourly(45), "Australia/Lord_Howe", "2026-04-04T13:00:00Z",
			[]string{"2026-04-04T13:45:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:15:00Z", "2026-04-04T16:15:00Z"}},
		{"lord howe spring: daily 02:15 runs at 02:30 +11", daily("02:15"), "Australia/Lord_Howe", "2026-10-02T00:00:00Z",
			[]string{"2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}},
		{"lord howe spring: 02:45 exists and is not moved", daily("02:45"), "Australia/Lord_Howe", "2026-10-03T00:00:00Z",
			[]string{"2026-10-03T15:45:00Z"}},
		{"lord howe spring: hourly :15 skips the missing 02:15", hourly(15), "Australia/Lord_Howe", "2026-10-03T14:00:00Z",
			[]string{"2026-10-03T14:45:00Z", "2026-10-03T16:15:00Z"}},
		// Pacific/Apia skipped 2011-12-30 entirely (-10 → +14 at 10:00Z).
		{"apia: the missing day's 09:00 runs at 2011-12-31 00:00 +14", daily("09:00"), "Pacific/Apia", "2011-12-29T00:00:00Z",
			[]string{"2011-12-29T19:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T19:00:00Z"}},
		// Zones without DST and UTC.
		{"utc default", cron("0 0 9 * * *"), "", "2026-01-01T09:00:00Z", []string{"2026-01-02T09:00:00Z"}},
		{"kolkata hourly :00 is local :00", hourly(0), "Asia/Kolkata", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T00:30:00Z", "2026-01-01T01:30:00Z"}},
		{"every 2 hours at :30 on local even hours", Spec{Every: &Every{Unit: "hours", Interval: 2, AtMinute: intp(30)}}, "Europe/Berlin", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T01:30:00Z", "2026-01-01T03:30:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var loc *time.Location
			if c.zone != "" {
				c.spec.Timezone = c.zone
				loc = mustLoad(t, c.zone)
			}
			s := mustCompile(t, c.spec)
			got := fmtTimes(ticks(s, utc(c.from), loc, len(c.want)))
			if !slices.Equal(got, c.want) {
				t.Errorf("%s from %s:\n got  %v\n want %v", s, c.from, got, c.want)
			}
		})
	}
}

// TestNextMatchesBruteForce checks wall-clock schedules against an
// independent model of the rule, walking real time minute by minute
// around each transition: an instant fires when its local reading matches
// and is seen for the first time; when local time jumps forward, the first
// instant after the jump fires for every matching reading it skipped.
func TestNextMatchesBruteForce(t *testing.T) {
	zones := []struct {
		name string
		from string
		days int
	}{
		{"America/New_York", "2026-03-06T00:00:00Z", 4},
		{"America/New_York", "2026-10-30T00:00:00Z", 4},
		{"Europe/Berlin", "2026-03-27T00:00:00Z", 4},
		{"Europe/Berlin", "2026-10-23T00:00:00Z", 4},
		{"Australia/Lord_Howe", "2026-04-02T00:00:00Z", 4},
		{"Australia/Lord_Howe", "2026-10-01T00:00:00Z", 4},
		{"Pacific/Apia", "2011-12-28T00:00:00Z", 4},
		{"America/Havana", "2026-03-06T00:00:00Z", 4}, // DST at midnight
		{"America/Havana", "2026-10-30T00:00:00Z", 4},
	}
	specs := []Spec{{Cron: "0 30 2 * * *"}, {Cron: "0 */15 * * * *"}, {Cron: "0 0 * * * *"}, {Cron: "0 45 1 * * *"}, {Cron: "0 15 2 * * *"},
		{Cron: "0 0 0 * * *"}, {Cron: "0 30 0 * * *"}, {Cron: "0 */7 1-3 * * *"}, {Cron: "0 0 9 * * 1-5"},
		{Every: &Every{Unit: "days", At: "02:30"}}, {Every: &Every{Unit: "days", Interval: 3, At: "00:00"}},
		{Every: &Every{Unit: "weeks", Weekday: "sunday", At: "01:45"}}, {Every: &Every{Unit: "weeks", Weekday: "saturday", At: "23:30"}}}
	for _, z := range zones {
		loc := mustLoad(t, z.name)
		for _, spec := range specs {
			spec.Timezone = z.name
			s := mustCompile(t, spec)
			t.Run(z.name+"/"+z.from[:10]+"/"+s.String(), func(t *testing.T) {
				from := utc(z.from)
				to := from.Add(time.Duration(z.days) * 24 * time.Hour)
				want := bruteWall(s.wall, loc, from, to)
				got := slices.Collect(s.Between(from, to, loc))
				if !slices.EqualFunc(got, want, time.Time.Equal) {
					t.Errorf("got  %v\nwant %v", fmtTimes(got), fmtTimes(want))
				}
			})
		}
	}
}

func bruteWall(m wallMatcher, loc *time.Location, from, to time.Time) []time.Time {
	matches := func(w int64) bool {
		n, ok := m.next(w - 1)
		return ok && n == w
	}
	wallOf := func(u int64) int64 { return u + offsetAt(loc, u) }
	var out []time.Time
	maxWall := wallOf(from.Unix())
	for u := from.Unix() + 60; u <= to.Unix(); u += 60 {
		w := wallOf(u)
		fire := false
		if w > maxWall+60 { // skipped readings (maxWall, w)
			for x := maxWall + 60; x < w; x += 60 {
				if matches(x) {
					fire = true
				}
			}
		}
		if w > maxWall && matches(w) {
			fire = true
		}
		if w > maxWall {
			maxWall = w
		}
		if fire {
			out = append(out, time.Unix(u, 0).In(loc))
		}
	}
	return out
}

// TestHourlyMatchesBruteForce checks hourly schedules against the plain
// definition: every real minute whose local reading is hh:MM with hh a
// multiple of N fires, with no DST adjustment at all.
func TestHourlyMatchesBruteForce(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kathmandu"} {
		loc := mustLoad(t, zone)
		for _, hm := range [][2]int{{1, 0}, {1, 30}, {1, 45}, {2, 15}, {5, 0}, {23, 59}} {
			s := mustCompile(t, Spec{Every: &Every{Unit: "hours", Interval: hm[0], AtMinute: intp(hm[1])}, Timezone: zone})
			t.Run(zone+"/"+s.String(), func(t *testing.T) {
				for _, from := range []time.Time{utc("2026-03-06T00:00:00Z"), utc("2026-04-02T00:00:00Z"), utc("2026-09-30T00:00:00Z"), utc("2026-10-29T00:00:00Z"), utc("2011-12-28T00:00:00Z")} {
					to := from.Add(5 * 24 * time.Hour)
					var want []time.Time
					for u := from.Unix() + 60; u <= to.Unix(); u += 60 {
						l := time.Unix(u, 0).In(loc)
						if l.Minute() == hm[1] && l.Second() == 0 && l.Hour()%hm[0] == 0 {
							want = append(want, l)
						}
					}
					got := slices.Collect(s.Between(from, to, loc))
					if !slices.EqualFunc(got, want, time.Time.Equal) {
						t.Errorf("from %v:\n got  %v\n want %v", from, fmtTimes(got), fmtTimes(want))
					}
				}
			})
		}
	}
}

// TestDailyOncePerDay: a daily schedule fires exactly once per local day
// through a whole year, in zones with 1-hour, 30-minute and midnight shifts.
func TestDailyOncePerDay(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Havana", "UTC"} {
		for _, at := range []string{"00:00", "00:30", "01:30", "01:45", "02:00", "02:15", "02:30", "09:00"} {
			t.Run(zone+"/"+at, func(t *testing.T) {
				loc := mustLoad(t, zone)
				s := mustCompile(t, Spec{Every: &Every{Unit: "days", At: at}, Timezone: zone})
				from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Add(-time.Second)
				to := time.Date(2027, 1, 1, 0, 0, 0, 0, loc).Add(-time.Second)
				days := map[string]int{}
				var prev time.Time
				for tk := range s.Between(from, to, loc) {
					if !tk.After(prev) {
						t.Fatalf("not increasing: %v after %v", tk, prev)
					}
					prev = tk
					days[tk.Format("2006-01-02")]++
				}
				if len(days) != 365 {
					t.Errorf("%d distinct days, want 365", len(days))
				}
				for d, n := range days {
					if n != 1 {
						t.Errorf("%s fired %d times", d, n)
					}
				}
			})
		}
	}
}

func TestNextBasics(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		from string
		want []string
	}{
		{"every 5s is epoch aligned", Spec{Every: every("5s")}, "2026-01-01T00:00:03Z", []string{"2026-01-01T00:00:05Z", "2026-01-01T00:00:10Z"}},
		{"strictly after a tick", Spec{Every: every("5s")}, "2026-01-01T00:00:05Z", []string{"2026-01-01T00:00:10Z"}},
		{"every 7m counts from the epoch", Spec{Every: &Every{Unit: "minutes", Interval: 7}}, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:07:00Z", "2026-01-01T00:14:00Z"}},
		{"@every 90s", Spec{Cron: "@every 90s"}, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"}},
		{"@hourly", Spec{Cron: "@hourly"}, "2026-01-01T00:00:00Z", []string{"2026-01-01T01:00:00Z"}},
		{"@daily", Spec{Cron: "@daily"}, "2026-01-01T00:00:00Z", []string{"2026-01-02T00:00:00Z"}},
		{"@weekly is sunday", Spec{Cron: "@weekly"}, "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z"}},
		{"@monthly", Spec{Cron: "@monthly"}, "2026-01-15T00:00:00Z", []string{"2026-02-01T00:00:00Z"}},
		{"@yearly", Spec{Cron: "@yearly"}, "2026-01-15T00:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"6-field seconds first", Spec{Cron: "*/20 * * * * *"}, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"}},
		{"names and lists", Spec{Cron: "0 0 12 * JAN,jul MON"}, "2026-01-01T00:00:00Z", []string{"2026-01-05T12:00:00Z", "2026-01-12T12:00:00Z"}},
		{"dom or dow when both restricted (Vixie)", Spec{Cron: "0 0 0 13 * FRI"}, "2026-02-01T00:00:00Z", []string{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"}},
		{"dow 7 is sunday", Spec{Cron: "0 0 0 * * 7"}, "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z"}},
		{"29 february", Spec{Cron: "0 0 0 29 2 *"}, "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"a/step runs to the maximum", Spec{Cron: "0 50/5 * * * *"}, "2026-01-01T00:00:00Z", []string{"2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z", "2026-01-01T01:50:00Z"}},
		{"every 2 days counts civil days from 1970-01-01", Spec{Every: &Every{Unit: "days", Interval: 2, At: "09:00"}}, "2026-01-01T00:00:00Z", []string{"2026-01-01T09:00:00Z", "2026-01-03T09:00:00Z"}},
		{"every week on monday at noon", Spec{Every: &Every{Unit: "weeks", Weekday: "Monday", At: "12:00 pm"}}, "2026-01-01T00:00:00Z", []string{"2026-01-05T12:00:00Z", "2026-01-12T12:00:00Z"}},
		{"every 2 weeks counts weeks from monday 1969-12-29", Spec{Every: &Every{Unit: "weeks", Interval: 2, Weekday: "mon", At: "08:00"}}, "2026-01-01T00:00:00Z", []string{"2026-01-12T08:00:00Z", "2026-01-26T08:00:00Z"}},
		{"fractional after rounds up", Spec{Every: every("1s")}, "2026-01-01T00:00:00.5Z", []string{"2026-01-01T00:00:01Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, c.spec)
			from, err := time.Parse(time.RFC3339Nano, c.from)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmtTimes(ticks(s, from, nil, len(c.want))); !slices.Equal(got, c.want) {
				t.Errorf("%s: got %v, want %v", s, got, c.want)
			}
		})
	}
}

func TestNextEdges(t *testing.T) {
	s := mustCompile(t, Spec{Every: every("1s")})
	if got := s.Next(time.Date(9999, 6, 1, 0, 0, 0, 0, time.UTC), nil); !got.IsZero() {
		t.Errorf("after year 9999: got %v, want zero", got)
	}
	if got := s.Next(time.Time{}, nil); got.IsZero() {
		t.Error("from the zero time: got zero")
	}
	// The result carries the zone asked for.
	ny := mustLoad(t, "America/New_York")
	if got := s.Next(utc("2026-01-01T00:00:00Z"), ny); got.Location() != ny {
		t.Errorf("location %v, want %v", got.Location(), ny)
	}
	// Between stops when asked to.
	n := 0
	for range s.Between(utc("2026-01-01T00:00:00Z"), utc("2026-01-02T00:00:00Z"), nil) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("Between yielded %d, want 3", n)
	}
	// Between is (from, to].
	got := fmtTimes(slices.Collect(s.Between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:02Z"), nil)))
	if want := []string{"2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"}; !slices.Equal(got, want) {
		t.Errorf("Between: got %v, want %v", got, want)
	}
}

func TestBounds(t *testing.T) {
	if got := time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC).Unix(); got != minUnix {
		t.Errorf("minUnix = %d, want %d", int64(minUnix), got)
	}
	if got := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix(); got != maxUnix {
		t.Errorf("maxUnix = %d, want %d", int64(maxUnix), got)
	}
}

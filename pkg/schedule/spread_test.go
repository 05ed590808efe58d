package schedule

import (
	"fmt"
	"testing"
	"time"
)

// TestOffsetUniform: 10,000 users over a 30 s spread fill every 1-second
// bucket within ±30 % of the mean.
func TestOffsetUniform(t *testing.T) {
	const users, spread = 10000, 30 * time.Second
	nominal := utc("2026-01-01T09:00:00Z")
	var buckets [30]int
	for i := range users {
		d := Offset(nominal, fmt.Sprintf("user-%d", i), spread, 0)
		if d < 0 || d >= spread {
			t.Fatalf("offset %v outside [0, %v)", d, spread)
		}
		buckets[d/time.Second]++
	}
	mean := float64(users) / float64(len(buckets))
	for i, n := range buckets {
		if f := float64(n); f < 0.7*mean || f > 1.3*mean {
			t.Errorf("bucket %ds has %d users, mean %.0f", i, n, mean)
		}
	}
}

func TestOffsetDeterministic(t *testing.T) {
	a, b := utc("2026-01-01T09:00:00Z"), utc("2026-01-02T09:00:00Z")
	spread, jitter := 30*time.Second, 5*time.Second
	// Same inputs, same answer (replicas agree); whole milliseconds.
	for i := range 100 {
		k := fmt.Sprintf("u%d", i)
		d := Offset(a, k, spread, jitter)
		if d != Offset(a, k, spread, jitter) {
			t.Fatal("not deterministic")
		}
		if d%time.Millisecond != 0 || d < 0 || d >= spread+jitter {
			t.Fatalf("offset %v", d)
		}
	}
	// The spread place is the user's own from tick to tick; the jitter
	// varies per tick.
	sameSpread, sameJitter := 0, 0
	for i := range 100 {
		k := fmt.Sprintf("u%d", i)
		if Offset(a, k, spread, 0) == Offset(b, k, spread, 0) {
			sameSpread++
		}
		if Offset(a, k, 0, jitter) == Offset(b, k, 0, jitter) {
			sameJitter++
		}
	}
	if sameSpread != 100 || sameJitter > 5 {
		t.Errorf("same spread %d/100 (want 100), same jitter %d/100 (want ~0)", sameSpread, sameJitter)
	}
	if d := Offset(a, "u", 0, 0); d != 0 {
		t.Errorf("no spread, no jitter: %v", d)
	}
	// A pinned value, so a change of hash (which would move every user's
	// run) is a visible test change.
	if got, want := Offset(a, "user-1", spread, jitter), 25134*time.Millisecond; got != want {
		t.Errorf("pinned offset: got %v, want %v", got, want)
	}
	s := mustCompile(t, Spec{Cron: "@daily", Spread: "30s", Jitter: "5s"})
	if got, want := s.Offset(a, "user-1"), Offset(a, "user-1", spread, jitter); got != want {
		t.Errorf("method %v, function %v", got, want)
	}
}

func TestTickID(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	cases := []struct {
		name                    string
		project, workflow, zone string
		nominal                 time.Time
		want                    string
	}{
		{"utc form whatever the time's zone", "acme", "nightly", "Europe/Berlin", time.Date(2026, 3, 29, 9, 0, 0, 0, berlin), "acme/nightly@Europe/Berlin@2026-03-29T07:00:00Z"},
		{"fall-back first occurrence", "acme", "w", "America/New_York", utc("2026-11-01T05:30:00Z"), "acme/w@America/New_York@2026-11-01T05:30:00Z"},
		{"sub-second stays distinct", "p", "w", "UTC", utc("2026-01-01T00:00:00Z").Add(time.Millisecond), "p/w@UTC@2026-01-01T00:00:00.001Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := TickID(c.project, c.workflow, c.zone, c.nominal); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	long := TickID(string(make([]byte, 300)), "w", "UTC", utc("2026-01-01T00:00:00Z"))
	if len(long) > MaxTickIDLen || long[0] != '~' {
		t.Errorf("long id not bounded: %q", long)
	}
	if a, b := TickID("p\n", "w", "UTC", utc("2026-01-01T00:00:00Z")), TickID("p\r", "w", "UTC", utc("2026-01-01T00:00:00Z")); a == b || a[0] != '~' {
		t.Errorf("control bytes: %q %q", a, b)
	}
	// The same tick in two zones and two ticks in one zone differ.
	n := utc("2026-01-01T00:00:00Z")
	if TickID("p", "w", "UTC", n) == TickID("p", "w", "Europe/Berlin", n) || TickID("p", "w", "UTC", n) == TickID("p", "w", "UTC", n.Add(time.Second)) {
		t.Error("ids collide")
	}
}

func TestResolveZone(t *testing.T) {
	perUser := mustCompile(t, Spec{Cron: "0 0 9 * * *", TimezoneFrom: "user.metadata.timezone", FallbackZone: "Europe/Berlin"})
	nested := mustCompile(t, Spec{Cron: "0 0 9 * * *", TimezoneFrom: "user.metadata.prefs.tz"})
	fixed := mustCompile(t, Spec{Cron: "0 0 9 * * *", Timezone: "Asia/Tokyo"})
	cases := []struct {
		name      string
		s         *Schedule
		meta      map[string]any
		zone, why string
	}{
		{"fixed ignores metadata", fixed, map[string]any{"timezone": "Europe/Paris"}, "Asia/Tokyo", ZoneFixed},
		{"from metadata", perUser, map[string]any{"timezone": "America/New_York"}, "America/New_York", ZoneFromMetadata},
		{"missing", perUser, map[string]any{}, "Europe/Berlin", ZoneMissing},
		{"nil metadata", perUser, nil, "Europe/Berlin", ZoneMissing},
		{"empty string", perUser, map[string]any{"timezone": " "}, "Europe/Berlin", ZoneMissing},
		{"null", perUser, map[string]any{"timezone": nil}, "Europe/Berlin", ZoneMissing},
		{"not a string", perUser, map[string]any{"timezone": 5.0}, "Europe/Berlin", ZoneNotString},
		{"invalid", perUser, map[string]any{"timezone": "Mars/Olympus"}, "Europe/Berlin", ZoneInvalid},
		{"Local refused", perUser, map[string]any{"timezone": "Local"}, "Europe/Berlin", ZoneInvalid},
		{"path traversal refused", perUser, map[string]any{"timezone": "../../etc/passwd"}, "Europe/Berlin", ZoneInvalid},
		{"nested path", nested, map[string]any{"prefs": map[string]any{"tz": "Australia/Lord_Howe"}}, "Australia/Lord_Howe", ZoneFromMetadata},
		{"nested path through a non-map", nested, map[string]any{"prefs": "x"}, "UTC", ZoneMissing},
		{"default fallback is UTC", nested, map[string]any{}, "UTC", ZoneMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc, name, why := ResolveZone(c.s, c.meta)
			if name != c.zone || why != c.why || loc == nil || loc.String() != c.zone {
				t.Errorf("got (%v, %q, %q), want (%q, %q)", loc, name, why, c.zone, c.why)
			}
		})
	}
}

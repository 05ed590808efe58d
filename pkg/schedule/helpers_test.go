package schedule

import (
	"testing"
	"time"
	_ "time/tzdata" // the same zone rules on every machine
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustCompile(t testing.TB, spec Spec) *Schedule {
	t.Helper()
	s, p := Compile(spec)
	if len(p) > 0 {
		t.Fatalf("Compile(%+v): %v", spec, p)
	}
	return s
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func every(d string) *Every { return &Every{Duration: d} }

func intp(n int) *int { return &n }

// ticks collects n ticks after from.
func ticks(s *Schedule, from time.Time, loc *time.Location, n int) []time.Time {
	var out []time.Time
	t := from
	for range n {
		t = s.Next(t, loc)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func fmtTimes(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.UTC().Format(time.RFC3339)
	}
	return out
}

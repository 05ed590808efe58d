package schedule

import (
	"testing"
	"time"
)

func TestZoneCache(t *testing.T) {
	var c ZoneCache
	for _, tc := range []struct {
		name    string
		wantErr bool
	}{
		{"Europe/Berlin", false},
		{"Australia/Lord_Howe", false},
		{"Mars/Olympus", true},
		{"", true},
		{"Local", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := c.Load(tc.name)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load(%q) err = %v, want error %v", tc.name, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			b, _ := c.Load(tc.name)
			if a != b {
				t.Errorf("Load(%q) twice: two locations, want the cached one", tc.name)
			}
			fresh, _ := LoadZone(tc.name)
			at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
			if a.String() != tc.name || at.In(a).String() != at.In(fresh).String() {
				t.Errorf("cached %q differs from a fresh load: %s vs %s", tc.name, at.In(a), at.In(fresh))
			}
		})
	}
	if n := len(c.zone); n != 2 {
		t.Errorf("cache holds %d zones, want the 2 valid ones", n)
	}
}

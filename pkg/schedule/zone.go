package schedule

import (
	"strings"
	"time"
)

// Reasons ResolveZone gives, for the decision record. They are short,
// stable codes (a decision's reason field is at most 64 ASCII bytes).
const (
	ZoneFixed        = "zone_fixed"         // the schedule names one zone
	ZoneFromMetadata = "zone_from_metadata" // the user's metadata zone
	ZoneMissing      = "zone_missing"       // no value at timezoneFrom: fallback
	ZoneNotString    = "zone_not_string"    // the value is not a string: fallback
	ZoneInvalid      = "zone_invalid"       // the value is not an IANA zone: fallback
)

// ResolveZone picks the zone a user's runs of this schedule follow, and
// says why. A fixed-zone schedule ignores the metadata. A per-user one reads
// timezoneFrom in the user's metadata and falls back to fallbackZone when
// the value is missing, not a string or not a zone Go's tzdata knows;
// the fallback is a decision, not an error, so the user still runs.
func (s *Schedule) ResolveZone(userMetadata map[string]any) (loc *time.Location, zoneName string, reason string) {
	if s.zone != nil {
		return s.zone, s.zoneName, ZoneFixed
	}
	v, ok := lookupPath(userMetadata, s.zonePath)
	if !ok || v == nil {
		return s.fallback, s.fallbackName, ZoneMissing
	}
	name, ok := v.(string)
	if !ok {
		return s.fallback, s.fallbackName, ZoneNotString
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return s.fallback, s.fallbackName, ZoneMissing
	}
	l, err := LoadZone(name)
	if err != nil {
		return s.fallback, s.fallbackName, ZoneInvalid
	}
	return l, name, ZoneFromMetadata
}

// ResolveZone is (*Schedule).ResolveZone as a function.
func ResolveZone(s *Schedule, userMetadata map[string]any) (*time.Location, string, string) {
	return s.ResolveZone(userMetadata)
}

func lookupPath(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

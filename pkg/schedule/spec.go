package schedule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Spec is the schedule part of a workflow trigger, as written in YAML or
// JSON. Exactly one of Every and Cron is set. Durations and names stay
// text here so Compile can report a bad value as a problem naming its field
// instead of failing the whole document decode.
type Spec struct {
	// Every is an interval: a Go duration ("5s", "15m", "2h") or the
	// structured form {unit, interval, atMinute, at, weekday}.
	Every *Every `json:"every,omitempty" yaml:"every,omitempty"`
	// Cron is a 6-field expression with seconds first ("0 0 9 * * *", as
	// the mirrored product writes it), a 5-field standard one, or a macro
	// (@yearly, @monthly, @weekly, @daily, @hourly, @every <duration>).
	Cron string `json:"cron,omitempty" yaml:"cron,omitempty"`
	// Timezone is a fixed IANA zone; empty means UTC.
	Timezone string `json:"timezone,omitempty" yaml:"timezone,omitempty"`
	// TimezoneFrom reads each user's zone from their metadata, e.g.
	// "user.metadata.timezone"; FallbackZone (default UTC) is used when the
	// value is missing or not a valid zone.
	TimezoneFrom string `json:"timezoneFrom,omitempty" yaml:"timezoneFrom,omitempty"`
	FallbackZone string `json:"fallbackZone,omitempty" yaml:"fallbackZone,omitempty"`
	// Overlap is skip (default), buffer_one or allow, per (workflow, user).
	Overlap string `json:"overlap,omitempty" yaml:"overlap,omitempty"`
	// Catchup is skip, once (default) or all, for ticks missed while no
	// scheduler ran, within CatchupWindow (default 1h, at most 7 days).
	Catchup       string   `json:"catchup,omitempty" yaml:"catchup,omitempty"`
	CatchupWindow Duration `json:"catchupWindow,omitempty" yaml:"catchupWindow,omitempty"`
	// Spread spreads one tick's per-user runs over a window; Jitter adds a
	// deterministic pseudo-random delay on top.
	Spread Duration `json:"spread,omitempty" yaml:"spread,omitempty"`
	Jitter Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
}

// Every is the interval form of a schedule. Its short form is a Go
// duration string (Duration); the structured form mirrors the options of
// the product this one mirrors:
//
//	every: 5s                                        # elapsed time
//	every: {unit: seconds, interval: 5}              # the same
//	every: {unit: minutes, interval: 30}
//	every: {unit: hours, interval: 1, atMinute: 15}  # every hour at :15
//	every: {unit: days, interval: 2, at: "09:00"}
//	every: {unit: weeks, weekday: monday, at: "12:00"}
type Every struct {
	// Duration is the short form; when set, the other fields are empty.
	Duration string `json:"-" yaml:"-"`
	// Unit is seconds, minutes, hours, days or weeks.
	Unit string `json:"unit,omitempty" yaml:"unit,omitempty"`
	// Interval is how many units apart ticks are (default 1).
	Interval int `json:"interval,omitempty" yaml:"interval,omitempty"`
	// AtMinute is the minute past the hour (hours only; default 0).
	AtMinute *int `json:"atMinute,omitempty" yaml:"atMinute,omitempty"`
	// At is the local time of day, "09:00", "9:00 am" or "09:00:30"
	// (days and weeks only; default midnight).
	At string `json:"at,omitempty" yaml:"at,omitempty"`
	// Weekday is the day of the week (weeks only; required).
	Weekday string `json:"weekday,omitempty" yaml:"weekday,omitempty"`
}

// everyFields is Every without its methods, so decoding the structured form
// does not recurse.
type everyFields struct {
	Unit     string `json:"unit,omitempty" yaml:"unit,omitempty"`
	Interval int    `json:"interval,omitempty" yaml:"interval,omitempty"`
	AtMinute *int   `json:"atMinute,omitempty" yaml:"atMinute,omitempty"`
	At       string `json:"at,omitempty" yaml:"at,omitempty"`
	Weekday  string `json:"weekday,omitempty" yaml:"weekday,omitempty"`
}

var everyKeys = []string{"unit", "interval", "atMinute", "at", "weekday"}

// UnmarshalJSON accepts a duration string, a number of seconds or the
// structured form; unknown keys are refused so a typo ("atMinutes") is not
// silently ignored.
func (e *Every) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("every: %w", err)
		}
		*e = Every{Duration: s}
		return nil
	case len(b) > 0 && b[0] == '{':
		var f everyFields
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("every: %w (keys: %s)", err, strings.Join(everyKeys, ", "))
		}
		*e = Every(everyFromFields(f))
		return nil
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("every must be a duration like \"5s\" or a mapping of %s", strings.Join(everyKeys, ", "))
		}
		*e = Every{Duration: n.String() + "s"}
		return nil
	}
}

// MarshalJSON writes the short form back as a string.
func (e Every) MarshalJSON() ([]byte, error) {
	if e.Duration != "" {
		return json.Marshal(e.Duration)
	}
	return json.Marshal(everyFields{Unit: e.Unit, Interval: e.Interval, AtMinute: e.AtMinute, At: e.At, Weekday: e.Weekday})
}

// UnmarshalYAML is UnmarshalJSON for documents decoded straight from YAML.
func (e *Every) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!int" || n.Tag == "!!float" {
			*e = Every{Duration: n.Value + "s"}
			return nil
		}
		*e = Every{Duration: n.Value}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; !contains(everyKeys, k) {
				return fmt.Errorf("every: unknown key %q (keys: %s)", k, strings.Join(everyKeys, ", "))
			}
		}
		var f everyFields
		if err := n.Decode(&f); err != nil {
			return fmt.Errorf("every: %w", err)
		}
		*e = everyFromFields(f)
		return nil
	default:
		return fmt.Errorf("every must be a duration like \"5s\" or a mapping of %s", strings.Join(everyKeys, ", "))
	}
}

func everyFromFields(f everyFields) Every {
	return Every{Unit: f.Unit, Interval: f.Interval, AtMinute: f.AtMinute, At: f.At, Weekday: f.Weekday}
}

// Duration is a duration kept as written ("30s", "1h"; a bare number is
// seconds). Compile parses it, so a bad value is a field problem.
type Duration string

// UnmarshalJSON accepts a string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("duration: %w", err)
		}
		*d = Duration(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or a number of seconds")
	}
	*d = Duration(n.String())
	return nil
}

// ParseSpec decodes a schedule spec from YAML or JSON (JSON is YAML),
// refusing unknown keys. It checks only the shape; Compile checks values.
func ParseSpec(data []byte) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("schedule spec: %w", err)
	}
	return s, nil
}

// isNumber reports whether s is a plain decimal number (seconds).
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

package schedule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestCompileProblems: each bad input is refused with a problem naming its
// field (the workflow compiler turns these into 400s on trigger.<field>).
func TestCompileProblems(t *testing.T) {
	cases := []struct {
		name  string
		spec  Spec
		field string
		msg   string
	}{
		{"nothing", Spec{}, "every", "needs every or cron"},
		{"both every and cron", Spec{Every: every("5s"), Cron: "* * * * * *"}, "cron", "together with every"},
		{"interval under 1s", Spec{Every: every("500ms")}, "every", "at least 1s"},
		{"zero interval", Spec{Every: every("0s")}, "every", "at least 1s"},
		{"negative interval", Spec{Every: every("-5s")}, "every", "negative"},
		{"fractional seconds", Spec{Every: every("1500ms")}, "every", "whole number of seconds"},
		{"bad duration", Spec{Every: every("5 sec")}, "every", "invalid duration"},
		{"interval too long", Spec{Every: every("9000h")}, "every", "at most"},
		{"duration and mapping", Spec{Every: &Every{Duration: "5s", Unit: "hours"}}, "every", "not both"},
		{"unknown unit", Spec{Every: &Every{Unit: "fortnights"}}, "every.unit", "must be one of"},
		{"interval zero-or-negative", Spec{Every: &Every{Unit: "minutes", Interval: -1}}, "every.interval", "between 1 and"},
		{"hours interval over 23", Spec{Every: &Every{Unit: "hours", Interval: 24}}, "every.interval", "between 1 and 23"},
		{"atMinute out of range", Spec{Every: &Every{Unit: "hours", AtMinute: intp(60)}}, "every.atMinute", "between 0 and 59"},
		{"atMinute on days", Spec{Every: &Every{Unit: "days", AtMinute: intp(5)}}, "every.atMinute", "not an option of unit days"},
		{"at on hours", Spec{Every: &Every{Unit: "hours", At: "09:00"}}, "every.at", "not an option of unit hours"},
		{"weekday on days", Spec{Every: &Every{Unit: "days", Weekday: "monday"}}, "every.weekday", "not an option"},
		{"bad at", Spec{Every: &Every{Unit: "days", At: "25:00"}}, "every.at", "time of day"},
		{"bad at pm", Spec{Every: &Every{Unit: "days", At: "13:00 pm"}}, "every.at", "time of day"},
		{"weeks without weekday", Spec{Every: &Every{Unit: "weeks", At: "09:00"}}, "every.weekday", "day of the week"},
		{"bad weekday", Spec{Every: &Every{Unit: "weeks", Weekday: "funday"}}, "every.weekday", "day of the week"},
		{"spread of a whole 1s interval", Spec{Every: &Every{Unit: "seconds"}, Spread: "1s"}, "spread", "shorter than the interval"},
		{"cron wrong field count", Spec{Cron: "* * *"}, "cron", "expected 6 fields"},
		{"cron out of range", Spec{Cron: "0 61 * * * *"}, "cron", "out of range"},
		{"cron hour out of range", Spec{Cron: "0 0 24 * * *"}, "cron", "hour field"},
		{"cron backwards range", Spec{Cron: "0 0 5-3 * * *"}, "cron", "backwards"},
		{"cron bad step", Spec{Cron: "*/0 * * * * *"}, "cron", "bad step"},
		{"cron not a number", Spec{Cron: "0 0 x * * *"}, "cron", "not a number"},
		{"cron quartz L", Spec{Cron: "0 0 0 L * *"}, "cron", "Quartz"},
		{"cron never matches", Spec{Cron: "0 0 0 30 2 *"}, "cron", "never matches"},
		{"cron TZ prefix", Spec{Cron: "TZ=Europe/Berlin 0 0 9 * * *"}, "cron", "timezone"},
		{"cron unknown macro", Spec{Cron: "@reboot"}, "cron", "unknown macro"},
		{"cron @every under 1s", Spec{Cron: "@every 100ms"}, "cron", "at least 1s"},
		{"unknown zone", Spec{Every: every("5s"), Timezone: "Mars/Olympus"}, "timezone", "unknown time zone"},
		{"Local zone", Spec{Every: every("5s"), Timezone: "Local"}, "timezone", "host's zone"},
		{"zone and zoneFrom", Spec{Every: every("5s"), Timezone: "UTC", TimezoneFrom: "user.metadata.tz"}, "timezoneFrom", "together with timezone"},
		{"zoneFrom not metadata", Spec{Every: every("5s"), TimezoneFrom: "user.timezone"}, "timezoneFrom", "path into user metadata"},
		{"zoneFrom empty segment", Spec{Every: every("5s"), TimezoneFrom: "user.metadata..tz"}, "timezoneFrom", "path into user metadata"},
		{"bad fallback", Spec{Every: every("5s"), TimezoneFrom: "user.metadata.tz", FallbackZone: "Nowhere/Land"}, "fallbackZone", "unknown time zone"},
		{"fallback without zoneFrom", Spec{Every: every("5s"), FallbackZone: "UTC"}, "fallbackZone", "only with timezoneFrom"},
		{"bad overlap", Spec{Every: every("5s"), Overlap: "queue"}, "overlap", "skip, buffer_one, allow"},
		{"bad catchup", Spec{Every: every("5s"), Catchup: "some"}, "catchup", "skip, once, all"},
		{"negative catchupWindow", Spec{Every: every("5s"), CatchupWindow: "-1h"}, "catchupWindow", "negative"},
		{"zero catchupWindow", Spec{Every: every("5s"), CatchupWindow: "0s"}, "catchupWindow", "between 1s and"},
		{"catchupWindow too long", Spec{Every: every("5s"), CatchupWindow: "200h"}, "catchupWindow", "between 1s and 168h"},
		{"bad catchupWindow", Spec{Every: every("5s"), CatchupWindow: "soon"}, "catchupWindow", "invalid duration"},
		{"negative spread", Spec{Every: every("1m"), Spread: "-30s"}, "spread", "negative"},
		{"spread too long", Spec{Cron: "@daily", Spread: "25h"}, "spread", "between 0s and 24h"},
		{"negative jitter", Spec{Every: every("1m"), Jitter: "-1s"}, "jitter", "negative"},
		{"jitter too long", Spec{Cron: "@daily", Jitter: "2h"}, "jitter", "between 0s and 1h"},
		{"spread as long as the interval", Spec{Every: every("30s"), Spread: "30s"}, "spread", "shorter than the interval"},
		{"NaN seconds", Spec{Every: every("5s"), Spread: "NaN"}, "spread", "invalid duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, p := Compile(c.spec)
			if s != nil {
				t.Fatalf("compiled, want a problem on %s", c.field)
			}
			for _, x := range p {
				if x.Field == c.field && strings.Contains(x.Message, c.msg) {
					return
				}
			}
			t.Errorf("problems %v, want %s containing %q", p, c.field, c.msg)
		})
	}
}

// TestCompileReportsEveryProblem: all problems at once, not the first.
func TestCompileReportsEveryProblem(t *testing.T) {
	_, p := Compile(Spec{Cron: "bad", Timezone: "Nowhere", Overlap: "x", Catchup: "y", Spread: "-1s"})
	fields := map[string]bool{}
	for _, x := range p {
		fields[x.Field] = true
	}
	for _, f := range []string{"cron", "timezone", "overlap", "catchup", "spread"} {
		if !fields[f] {
			t.Errorf("no problem on %s in %v", f, p)
		}
	}
	if !strings.Contains(p.Error(), "cron: ") {
		t.Errorf("Error() = %q", p.Error())
	}
}

func TestCompileDefaults(t *testing.T) {
	s := mustCompile(t, Spec{Every: every("5s")})
	if s.Overlap() != OverlapSkip || s.Catchup() != CatchupOnce || s.CatchupWindow() != time.Hour || s.Spread() != 0 || s.Jitter() != 0 {
		t.Errorf("defaults: %s %s %s %s %s", s.Overlap(), s.Catchup(), s.CatchupWindow(), s.Spread(), s.Jitter())
	}
	if loc, name := s.Zone(); loc != time.UTC && name != "UTC" {
		t.Errorf("zone %v %q, want UTC", loc, name)
	}
	if s.PerUser() || !s.ZoneIndependent() || s.String() != "every 5s" {
		t.Errorf("PerUser %v ZoneIndependent %v String %q", s.PerUser(), s.ZoneIndependent(), s.String())
	}
	s = mustCompile(t, Spec{Cron: "0 0 9 * * *", TimezoneFrom: "user.metadata.timezone", Overlap: "buffer_one", Catchup: "all", CatchupWindow: "2h", Spread: "30s", Jitter: "5"})
	if s.Overlap() != OverlapBufferOne || s.Catchup() != CatchupAll || s.CatchupWindow() != 2*time.Hour || s.Spread() != 30*time.Second || s.Jitter() != 5*time.Second {
		t.Errorf("set: %s %s %s %s %s", s.Overlap(), s.Catchup(), s.CatchupWindow(), s.Spread(), s.Jitter())
	}
	if !s.PerUser() || s.ZoneIndependent() || s.String() != "cron 0 0 9 * * *" {
		t.Errorf("PerUser %v ZoneIndependent %v String %q", s.PerUser(), s.ZoneIndependent(), s.String())
	}
}

// TestParseSpec: the YAML and JSON shapes of a trigger's schedule fields.
func TestParseSpec(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string // String() of the compiled schedule
	}{
		{"short every", "every: 5s", "every 5s"},
		{"every as seconds", "every: 30", "every 30s"},
		{"minutes", "every: {unit: minutes, interval: 30}", "every 30m0s"},
		{"hourly at minute", "every: {unit: hours, atMinute: 15}", "every 1 hour(s) at minute 15"},
		{"daily at", "every: {unit: days, interval: 2, at: \"9:00 am\"}", "every 2 day(s) at 09:00:00"},
		{"weekly", "every:\n  unit: weeks\n  weekday: monday\n  at: \"12:00\"\n", "every 1 week(s) on monday at 12:00:00"},
		{"cron and policies", "cron: \"0 0 9 * * *\"\ntimezone: Europe/Berlin\noverlap: skip\ncatchup: once\ncatchupWindow: 1h\nspread: 30s\njitter: 2s\n", "cron 0 0 9 * * *"},
		{"unquoted times of day", "every: {unit: days, at: 09:00}", "every 1 day(s) at 09:00:00"},
		{"unquoted am", "every:\n  unit: weeks\n  weekday: Fri\n  at: 5:30 pm\n", "every 1 week(s) on friday at 17:30:00"},
		{"json", `{"every": {"unit": "days", "at": "09:00"}, "timezoneFrom": "user.metadata.timezone", "fallbackZone": "Europe/Berlin"}`, "every 1 day(s) at 09:00:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := ParseSpec([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			if s := mustCompile(t, spec); s.String() != c.want {
				t.Errorf("got %q, want %q", s.String(), c.want)
			}
		})
	}
	for _, bad := range []string{"every: {unit: hours, atMinutes: 5}", "evry: 5s", "every: [1, 2]"} {
		if _, err := ParseSpec([]byte(bad)); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

// TestSpecJSON: the spec decodes from the JSON the workflow compiler
// produces (YAML documents become JSON before decoding) and round-trips.
func TestSpecJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"every":"15m","spread":30}`, `{"every":"15m","spread":"30"}`},
		{`{"every":5}`, `{"every":"5s"}`},
		{`{"every":{"unit":"hours","interval":2,"atMinute":30},"catchup":"all"}`, `{"every":{"unit":"hours","interval":2,"atMinute":30},"catchup":"all"}`},
		{`{"cron":"@daily","timezone":"Asia/Tokyo"}`, `{"cron":"@daily","timezone":"Asia/Tokyo"}`},
	}
	for _, c := range cases {
		var s Spec
		if err := json.Unmarshal([]byte(c.in), &s); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		mustCompile(t, s)
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != c.want {
			t.Errorf("%s: marshaled %s, want %s", c.in, out, c.want)
		}
	}
	for _, bad := range []string{`{"every":{"unit":"hours","atMinutes":5}}`, `{"every":true}`, `{"spread":true}`} {
		var s Spec
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestSpecThroughWorkflowDecode: workflow documents are decoded YAML →
// map → JSON → struct (pkg/workflow/documents.go); the spec survives it,
// unquoted times and bare numbers included.
func TestSpecThroughWorkflowDecode(t *testing.T) {
	doc := "every: {unit: days, at: 09:00}\ntimezoneFrom: user.metadata.timezone\ncatchupWindow: 90\nspread: 30s\n"
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	s := mustCompile(t, spec)
	if s.String() != "every 1 day(s) at 09:00:00" || s.CatchupWindow() != 90*time.Second || s.Spread() != 30*time.Second || !s.PerUser() {
		t.Errorf("%s: %s window %s spread %s", b, s, s.CatchupWindow(), s.Spread())
	}
}

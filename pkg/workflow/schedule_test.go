package workflow_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// A schedule trigger is compiled at apply: a bad field is a problem on
// trigger.<field> (the API's 400), a good one yields the compiled schedule
// the scheduler and the router read.
func TestScheduleTrigger(t *testing.T) {
	cases := []struct {
		name    string
		trigger string
		field   string // "" means valid
		message string
	}{
		{"every 5s", `{type: schedule, every: 5s}`, "", ""},
		{"cron in a zone", `{type: schedule, cron: "0 0 9 * * *", timezone: Europe/Berlin, catchup: all, catchupWindow: 2h}`, "", ""},
		{"per user zone", `{type: schedule, every: {unit: days, at: "09:00"}, timezoneFrom: user.metadata.timezone, fallbackZone: America/New_York, overlap: allow, spread: 30s, jitter: 1s}`, "", ""},
		{"invalid cron", `{type: schedule, cron: "0 0 25 * * *"}`, "trigger.cron", ""},
		{"unknown zone", `{type: schedule, every: 5s, timezone: Mars/Olympus}`, "trigger.timezone", "unknown time zone"},
		{"unknown fallback zone", `{type: schedule, every: 5s, timezoneFrom: user.metadata.timezone, fallbackZone: Nowhere/Zone}`, "trigger.fallbackZone", "unknown time zone"},
		{"under one second", `{type: schedule, every: 500ms}`, "trigger.every", "at least 1s"},
		{"neither every nor cron", `{type: schedule}`, "trigger.", ""},
		{"bad overlap", `{type: schedule, every: 5s, overlap: queue}`, "trigger.overlap", "must be one of"},
		{"bad catchup", `{type: schedule, every: 5s, catchup: never}`, "trigger.catchup", "must be one of"},
		{"unindexed zone path", `{type: schedule, every: 5s, timezoneFrom: user.metadata.tz}`, "trigger.timezoneFrom", "must be user.metadata.timezone"},
		{"spread over the interval", `{type: schedule, every: 5s, spread: 10s}`, "trigger.spread", "shorter than the interval"},
		{"schedule field on app event", `{type: app_event, event: E, cron: "* * * * *"}`, "trigger.cron", "not a field of app_event triggers"},
		{"request field on schedule", `{type: schedule, every: 5s, methods: [GET]}`, "trigger.methods", "not a field of schedule triggers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "kind: Workflow\nid: w\ntrigger: " + tc.trigger + "\nsteps: [{id: a, type: http, url: 'https://example.com'}]\n"
			if tc.field == "" {
				objs := parseOK(t, doc, "p")
				w := objs[0].(*workflow.Workflow)
				if w.Trigger.Schedule() == nil {
					t.Fatal("compiled schedule is nil")
				}
				return
			}
			pe := parseErr(t, doc, "p")
			for _, pr := range pe.Docs[0].Problems {
				if strings.HasPrefix(pr.Field, tc.field) && strings.Contains(pr.Message, tc.message) {
					return
				}
			}
			t.Fatalf("no problem %s: …%s… in %v", tc.field, tc.message, pe.Docs[0].Problems)
		})
	}
}

// The compiled schedule survives the catalog's JSON round trip (a service
// decodes the stored document and compiles it again).
func TestScheduleTriggerRoundTrip(t *testing.T) {
	objs := parseOK(t, "kind: Workflow\nid: w\ntrigger: {type: schedule, every: 5s, timezone: Europe/Berlin, spread: 2s}\nsteps: [{id: a, type: http, url: 'https://example.com'}]\n", "p")
	w := objs[0].(*workflow.Workflow)
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := workflow.Decode(workflow.KindWorkflow, b)
	if err != nil {
		t.Fatalf("Decode %s: %v", b, err)
	}
	s := obj.(*workflow.Workflow).Trigger.Schedule()
	if s == nil || s.Spread() != 2*time.Second {
		t.Fatalf("schedule after round trip = %v (json %s)", s, b)
	}
	if _, name := s.Zone(); name != "Europe/Berlin" {
		t.Fatalf("zone = %q", name)
	}
	from := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	if got := s.Next(from, nil); !got.Equal(from.Add(4 * time.Second)) {
		t.Fatalf("Next(%s) = %s", from, got)
	}
}

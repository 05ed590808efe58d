package router_test

import (
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/router"
)

// TestDefect9AppEventSchemaOnNATS: an App Event published straight to
// sb.trigger.<p>.app_event.<key> skips ingress and its schema check; the
// router checks it too. A payload that does not match the declared schema,
// and an event that is not declared at all, run nothing and are recorded
// as decisions that say why.
func TestDefect9AppEventSchemaOnNATS(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: AppEvent
name: Signed Up
schema:
  type: object
  required: [email]
  properties:
    email: {type: string}
---
kind: Workflow
id: welcome
trigger: {type: app_event, event: Signed Up}
steps:
  - {id: call, type: http, method: POST, url: "` + h.lst.URL + `/welcome", json: {email: "{{ trigger.payload.email }}"}}
`)
	h.user("u1", nil)

	for _, tc := range []struct {
		name, event, payload, reason, message string
	}{
		{"payload without a required field", "Signed Up", `{"name": "x"}`, runs.ReasonValidationFailed, "email"},
		{"payload of the wrong type", "Signed Up", `{"email": 5}`, runs.ReasonValidationFailed, "email"},
		{"payload not JSON", "Signed Up", `{"email":`, runs.ReasonValidationFailed, "not valid JSON"},
		{"undeclared event", "Signed Upp", `{"email": "a@b.c"}`, "unknown_event", `"Signed Upp" is not declared`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			ev := appEvent(tc.event, "u1", tc.payload)
			seq := h.publish(ev)
			cands := candidates(h.decision(ev.Id))
			h.routed(seq)
			if len(cands) == 0 {
				t.Fatal("the decision has no candidate saying why nothing ran")
			}
			for _, c := range cands {
				if c.Outcome != runs.OutcomeSkipped || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) {
					t.Errorf("candidate %+v, want skipped, %s, a message naming %q", c, tc.reason, tc.message)
				}
			}
			if n := len(h.runMessages("welcome")); n != 0 {
				t.Errorf("%d run messages published", n)
			}
		})
	}

	t.Run("a matching payload runs", func(t *testing.T) {
		h := h.on(t)
		ev := appEvent("Signed Up", "u1", `{"email": "a@b.c"}`)
		h.publish(ev)
		if r := h.finished(runs.ID(ev.Id, "welcome", "u1", "")); r.Status != runs.StatusSucceeded {
			t.Errorf("run: %s %s", r.Status, r.Error)
		}
		if n := len(h.lst.at("/welcome")); n != 1 {
			t.Errorf("/welcome called %d times, want 1 (only the valid event)", n)
		}
	})
}

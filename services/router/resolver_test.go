package router_test

import (
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/router"
)

// TestDefect9RunErrorHidesResolver: an http step to a host that does not
// resolve fails with "could not resolve host X"; the run's history does
// not show the internal resolver's address.
func TestDefect9RunErrorHidesResolver(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: AppEvent
name: Ping
---
kind: Workflow
id: ping
trigger: {type: app_event, event: Ping}
steps:
  - {id: call, type: http, method: POST, url: "http://nope.invalid/x", retry: {attempts: 1}}
`)
	h.user("u1", nil)
	ev := appEvent("Ping", "u1", `{}`)
	h.publish(ev)
	r := h.finished(runs.ID(ev.Id, "ping", "u1", ""))
	if r.Status != runs.StatusFailed {
		t.Fatalf("run %s, want failed", r.Status)
	}
	for _, msg := range []string{r.Error, r.Steps[0].Error} {
		if !strings.Contains(msg, "could not resolve host nope.invalid") {
			t.Errorf("error %q does not say the host did not resolve", msg)
		}
		if strings.Contains(msg, ":53") || strings.Contains(msg, "lookup ") {
			t.Errorf("error %q shows the resolver", msg)
		}
	}
}

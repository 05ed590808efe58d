package router_test

import (
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/router"
)

// maxHops is the harness's hop limit: small, so a chain ends quickly.
const maxHops = 2

// pingDocs: workflow pinger calls /ping, then emits its own event again,
// carrying the payload's root along so a test finds its chain's calls.
func pingDocs(url string) string {
	return `kind: AppEvent
name: Ping
---
kind: Workflow
id: pinger
trigger: {type: app_event, event: Ping}
steps:
  - id: call
    type: http
    method: POST
    url: ` + url + `/ping
    json: {root: "{{ trigger.payload.root }}", event: "{{ trigger.id }}"}
  - id: again
    type: emit
    event: Ping
    payload: {root: "{{ trigger.payload.root }}"}
`
}

// TestHopLimit: a trigger deeper than the hop limit runs nothing and its
// decision says hop_limit; a workflow that emits its own event runs once
// per hop up to the limit, and the event past it is recorded as stopped.
func TestHopLimit(t *testing.T) {
	h := newHarness(t, router.Options{MaxHops: maxHops})
	h.apply(pingDocs(h.lst.URL))
	h.user("u1", nil)

	for _, tc := range []struct {
		name string
		hops uint32
		ran  bool
	}{
		{"at the limit", maxHops, true},
		{"above the limit", maxHops + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			ev := appEvent("Ping", "u1", `{"root":"`+tc.name+`"}`)
			ev.Hops = tc.hops
			seq := h.publish(ev)
			cands := candidates(h.decision(ev.Id))
			if len(cands) != 1 {
				t.Fatalf("candidates %+v, want one", cands)
			}
			c := cands[0]
			if !tc.ran {
				if c.Outcome != runs.OutcomeSkipped || c.Reason != runs.ReasonHopLimit || c.RunID != "" ||
					!strings.Contains(c.Message, "limit 2") {
					t.Errorf("candidate %+v, want skipped for %s naming the limit", c, runs.ReasonHopLimit)
				}
				h.routed(seq)
				if ids := h.runsOfEvent(ev.Id); len(ids) != 0 {
					t.Errorf("runs queued: %v", ids)
				}
				return
			}
			if c.Outcome != runs.OutcomeRan {
				t.Fatalf("candidate %+v, want ran", c)
			}
			// Its own emit is one hop deeper, past the limit: that event
			// runs nothing.
			r := h.finished(c.RunID)
			child := emitted(t, r)
			if cc := candidates(h.decision(child)); len(cc) != 1 || cc[0].Reason != runs.ReasonHopLimit {
				t.Errorf("the emitted event's candidates %+v, want one skipped for %s", cc, runs.ReasonHopLimit)
			}
		})
	}

	t.Run("a workflow emitting its own event", func(t *testing.T) {
		h := h.on(t)
		root := appEvent("Ping", "u1", `{"root":"chain"}`)
		h.publish(root)
		// Follow the chain: each event's one run emits the next event.
		var ran []string
		id := root.Id
		for {
			cands := candidates(h.decision(id))
			if len(cands) != 1 {
				t.Fatalf("event %s: candidates %+v, want one", id, cands)
			}
			if cands[0].Outcome != runs.OutcomeRan {
				if cands[0].Reason != runs.ReasonHopLimit {
					t.Fatalf("event %s: candidate %+v, want ran or skipped for %s", id, cands[0], runs.ReasonHopLimit)
				}
				break
			}
			if len(ran) > maxHops {
				t.Fatalf("more than %d runs: %v", maxHops+1, ran)
			}
			r := h.finished(cands[0].RunID)
			if r.Status != runs.StatusSucceeded {
				t.Fatalf("run %s: %s %s", r.ID, r.Status, r.Error)
			}
			ran = append(ran, r.ID)
			id = emitted(t, r)
		}
		// Hops 0, 1 and 2 run; the event at hop 3 stops the chain.
		if len(ran) != maxHops+1 {
			t.Errorf("%d runs, want %d: %v", len(ran), maxHops+1, ran)
		}
		var calls int
		for _, c := range h.lst.at("/ping") {
			if c.Body["root"] == "chain" {
				calls++
			}
		}
		if calls != maxHops+1 {
			t.Errorf("/ping was called %d times by the chain, want %d", calls, maxHops+1)
		}
	})
}

// emitted is the id of the event run r's emit step published.
func emitted(t *testing.T, r *runs.Run) string {
	t.Helper()
	st, ok := r.StepByID("again")
	if !ok || st.Status != runs.StepSucceeded {
		t.Fatalf("run %s has no succeeded emit step: %+v", r.ID, r.Steps)
	}
	out, _ := st.Output.(map[string]any)
	id, _ := out["eventId"].(string)
	if id == "" {
		t.Fatalf("run %s's emit step output %v has no eventId", r.ID, st.Output)
	}
	return id
}

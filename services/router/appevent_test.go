package router_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// contactDocs: one app event, a bearer integration, and two workflows on
// the event — to-crm needs a crm credential and posts with its token to
// /crm, audit needs none and posts to /audit. Both put the event id in the
// body so a test finds its own calls.
func contactDocs(url string) string {
	return `kind: AppEvent
name: Contact Created
---
kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: to-crm
integration: crm
trigger: {type: app_event, event: Contact Created}
steps:
  - id: call
    type: http
    method: POST
    url: ` + url + `/crm
    auth: credential
    json: {event: "{{ trigger.id }}", user: "{{ user.id }}", credential: "{{ credential.id }}"}
---
kind: Workflow
id: audit
trigger: {type: app_event, event: Contact Created}
steps:
  - id: call
    type: http
    method: POST
    url: ` + url + `/audit
    json: {event: "{{ trigger.id }}", user: "{{ user.id }}"}
`
}

// runsOfEvent lists the run ids of the RUNS messages that carry event id.
// Call it once the router settled the trigger: its runs are stored by then.
func (h *harness) runsOfEvent(id string) []string {
	h.t.Helper()
	var out []string
	for _, m := range h.stored(subjects.StreamRuns, subjects.RunsAll) {
		ev, err := envelope.Decode(m.Data, m.Header.Get(envelope.HeaderContentType))
		if err != nil {
			h.t.Fatalf("RUNS message %d: %v", m.Sequence, err)
		}
		if ev.Id == id {
			out = append(out, m.Header.Get(router.HeaderRunID))
		}
	}
	slices.Sort(out)
	return out
}

// callsOf is the calls of path that carry event id.
func (h *harness) callsOf(path, id string) []call {
	var out []call
	for _, c := range h.lst.at(path) {
		if c.Body["event"] == id {
			out = append(out, c)
		}
	}
	return out
}

// TestAppEventFanOut: one App Event starts one run per workflow and per
// enabled, valid credential; the decision record lists all five candidates
// on pages of two, every page with the same summary.
func TestAppEventFanOut(t *testing.T) {
	h := newHarness(t, router.Options{DecisionPage: 2})
	h.apply(contactDocs(h.lst.URL))
	h.user("u1", nil)
	h.credential("u1", "c1", "crm", nil)
	h.credential("u1", "c2", "crm", nil)
	h.credential("u1", "c3", "crm", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })
	h.credential("u1", "c4", "crm", func(cr *directory.Credential) { cr.Workflows = map[string]bool{"to-crm": false} })

	ev := appEvent("Contact Created", "u1", `{"email":"ada@example.com"}`)
	seq := h.publish(ev)
	pages := h.decision(ev.Id)

	runID := func(w, cred string) string { return runs.ID(ev.Id, w, "u1", cred) }
	// Workflows in id order, then each workflow's credentials in id order.
	want := []runs.Candidate{
		{Workflow: "audit", User: "u1", Outcome: runs.OutcomeRan, RunID: runID("audit", "")},
		{Workflow: "to-crm", User: "u1", Credential: "c1", Outcome: runs.OutcomeRan, RunID: runID("to-crm", "c1")},
		{Workflow: "to-crm", User: "u1", Credential: "c2", Outcome: runs.OutcomeRan, RunID: runID("to-crm", "c2")},
		{Workflow: "to-crm", User: "u1", Credential: "c3", Outcome: runs.OutcomeSkipped, Reason: runs.ReasonCredentialInvalid},
		{Workflow: "to-crm", User: "u1", Credential: "c4", Outcome: runs.OutcomeSkipped, Reason: runs.ReasonNotEnabled},
	}
	wantSummary := runs.Summary{Candidates: 5, Ran: 3, Pages: 3,
		Skipped: map[string]int{runs.ReasonCredentialInvalid: 1, runs.ReasonNotEnabled: 1}}
	if len(pages) != 3 {
		t.Fatalf("%d decision pages, want 3", len(pages))
	}
	for i, p := range pages {
		if p.Page != i || p.Summary.Candidates != wantSummary.Candidates || p.Summary.Ran != wantSummary.Ran ||
			p.Summary.Pages != wantSummary.Pages || !maps.Equal(p.Summary.Skipped, wantSummary.Skipped) {
			t.Errorf("page %d: page %d, summary %+v, want summary %+v", i, p.Page, p.Summary, wantSummary)
		}
		if len(p.Candidates) > 2 {
			t.Errorf("page %d has %d candidates, the page size is 2", i, len(p.Candidates))
		}
		if p.EventID != ev.Id || p.Project != project || p.Kind != sbv1.Kind_APP_EVENT.String() ||
			p.Name != "Contact Created" || p.User != "u1" || p.TriggerSeq != seq {
			t.Errorf("page %d header: %+v, want event %s seq %d", i, p, ev.Id, seq)
		}
	}
	checkCandidates(t, candidates(pages), want)

	h.routed(seq)
	wantRuns := []string{runID("audit", ""), runID("to-crm", "c1"), runID("to-crm", "c2")}
	slices.Sort(wantRuns)
	if got := h.runsOfEvent(ev.Id); !slices.Equal(got, wantRuns) {
		t.Errorf("RUNS holds runs %v of the event, want %v", got, wantRuns)
	}
	for _, c := range want[:3] {
		r := h.finished(c.RunID)
		if r.Status != runs.StatusSucceeded || r.Workflow != c.Workflow || r.User != "u1" ||
			r.Credential != c.Credential || r.EventID != ev.Id || len(r.Steps) != 1 {
			t.Errorf("run %s: %+v", c.RunID, r)
		}
	}
	var auths []string
	for _, c := range h.callsOf("/crm", ev.Id) {
		auths = append(auths, c.Auth)
	}
	slices.Sort(auths)
	if want := []string{"Bearer tok-c1", "Bearer tok-c2"}; !slices.Equal(auths, want) {
		t.Errorf("/crm was called with %v, want %v", auths, want)
	}
	if n := len(h.callsOf("/audit", ev.Id)); n != 1 {
		t.Errorf("/audit was called %d times, want 1", n)
	}
}

// TestAppEventSkipped: every reason a candidate of an App Event does not
// run is recorded, and nothing runs for it.
func TestAppEventSkipped(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(contactDocs(h.lst.URL))
	ran := func(w, cred string) runs.Candidate {
		return runs.Candidate{Workflow: w, Credential: cred, Outcome: runs.OutcomeRan}
	}
	skipped := func(w, cred, reason string) runs.Candidate {
		return runs.Candidate{Workflow: w, Credential: cred, Outcome: runs.OutcomeSkipped, Reason: reason}
	}
	for _, tc := range []struct {
		name  string
		user  string
		setup func(h *harness, user string)
		// credential is the envelope's credential (X-Switchboard-Credential).
		credential string
		want       []runs.Candidate
	}{
		{name: "unknown user", user: "ghost",
			want: []runs.Candidate{skipped("audit", "", runs.ReasonUnknownUser), skipped("to-crm", "", runs.ReasonUnknownUser)}},
		{name: "no credential", user: "u-nocred",
			setup: func(h *harness, u string) { h.user(u, nil) },
			want:  []runs.Candidate{ran("audit", ""), skipped("to-crm", "", runs.ReasonNoCredential)}},
		{name: "credential of another integration", user: "u-other",
			setup: func(h *harness, u string) { h.user(u, nil); h.credential(u, "m1", "mail", nil) },
			want:  []runs.Candidate{ran("audit", ""), skipped("to-crm", "", runs.ReasonNoCredential)}},
		{name: "invalid credential", user: "u-invalid",
			setup: func(h *harness, u string) {
				h.user(u, nil)
				h.credential(u, "x", "crm", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })
			},
			want: []runs.Candidate{ran("audit", ""), skipped("to-crm", "x", runs.ReasonCredentialInvalid)}},
		{name: "not enabled for the user or the credential", user: "u-off",
			setup: func(h *harness, u string) {
				h.user(u, func(us *directory.User) { us.Workflows = map[string]bool{"audit": false} })
				h.credential(u, "y", "crm", func(cr *directory.Credential) { cr.Workflows = map[string]bool{"to-crm": false} })
			},
			want: []runs.Candidate{skipped("audit", "", runs.ReasonNotEnabled), skipped("to-crm", "y", runs.ReasonNotEnabled)}},
		{name: "named credential unknown", user: "u-named", credential: "nope",
			setup: func(h *harness, u string) { h.user(u, nil); h.credential(u, "z", "crm", nil) },
			want:  []runs.Candidate{ran("audit", ""), skipped("to-crm", "nope", runs.ReasonCredentialUnknown)}},
		{name: "named credential picks one", user: "u-pick", credential: "b",
			setup: func(h *harness, u string) {
				h.user(u, nil)
				h.credential(u, "a", "crm", nil)
				h.credential(u, "b", "crm", nil)
			},
			want: []runs.Candidate{ran("audit", ""), ran("to-crm", "b")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			if tc.setup != nil {
				tc.setup(h, tc.user)
			}
			ev := appEvent("Contact Created", tc.user, `{}`)
			ev.Credential = tc.credential
			seq := h.publish(ev)
			var wantRuns []string
			for i := range tc.want {
				c := &tc.want[i]
				c.User = tc.user
				if c.Outcome == runs.OutcomeRan {
					c.RunID = runs.ID(ev.Id, c.Workflow, tc.user, c.Credential)
					wantRuns = append(wantRuns, c.RunID)
				}
			}
			pages := h.decision(ev.Id)
			checkCandidates(t, candidates(pages), tc.want)
			if s := pages[0].Summary; s.Ran != len(wantRuns) || s.Candidates != len(tc.want) {
				t.Errorf("summary %+v, want %d candidates, %d ran", s, len(tc.want), len(wantRuns))
			}
			h.routed(seq)
			slices.Sort(wantRuns)
			if got := h.runsOfEvent(ev.Id); !slices.Equal(got, wantRuns) {
				t.Errorf("RUNS holds runs %v of the event, want %v", got, wantRuns)
			}
			for _, id := range wantRuns {
				if r := h.finished(id); r.Status != runs.StatusSucceeded {
					t.Errorf("run %s: %s %s", id, r.Status, r.Error)
				}
			}
		})
	}
}

// checkCandidates compares candidates without their free-text messages,
// which must be set on every skipped one.
func checkCandidates(t *testing.T, got, want []runs.Candidate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d candidates, want %d:\n got %s\nwant %s", len(got), len(want), fmtCands(got), fmtCands(want))
	}
	for i := range got {
		g := got[i]
		if g.Outcome == runs.OutcomeSkipped && g.Message == "" {
			t.Errorf("candidate %d (%s) has no message", i, g.Reason)
		}
		g.Message = ""
		if g != want[i] {
			t.Errorf("candidate %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
}

func fmtCands(cs []runs.Candidate) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("[%s %s %s %s] ", c.Workflow, c.Credential, c.Outcome, c.Reason)
	}
	return s
}

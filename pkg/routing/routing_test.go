package routing_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/routing"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

const docs = `
kind: Workflow
id: wf-a
integration: crm
trigger: {type: app_event, event: Contact Created}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: wf-b
integration: crm
trigger: {type: app_event, event: Contact Created}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: wf-off
integration: crm
enabledByDefault: false
trigger: {type: app_event, event: Deal Won}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: plain
trigger: {type: app_event, event: Ping}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: plain-off
enabledByDefault: false
trigger: {type: app_event, event: Ping}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: chat
integration: slack
trigger: {type: app_event, event: Deal Won}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: hook
trigger: {type: request}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: hook-crm
integration: crm
trigger: {type: request}
steps: [{id: s, type: emit, event: x}]
`

// setup builds the catalog:
//
//	u1: c1, c2 VALID crm; c3 INVALID crm; s1 VALID slack; c2 disables wf-b
//	    and c1 enables wf-off; u1 enables plain-off.
//	u2: no credentials; disables plain.
//	ghost: had a credential, then the user was deleted.
func setup(t *testing.T) (*catalog.Catalog, *directory.Directory) {
	t.Helper()
	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	dir := brokertest.Directory(t, srv.JS)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	objs, err := workflow.Parse([]byte(docs), "acme")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := cat.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	user := func(u string, wfs map[string]bool) {
		if _, _, err := dir.UpdateUser(ctx, "acme", u, func(us *directory.User) error { us.Workflows = wfs; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	cred := func(u, id, integration, status string, wfs map[string]bool) {
		if _, _, err := dir.UpdateCredential(ctx, "acme", u, id, func(cr *directory.Credential, _ bool) error {
			cr.Integration, cr.Status, cr.Workflows = integration, status, wfs
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	user("u1", map[string]bool{"plain-off": true})
	user("u2", map[string]bool{"plain": false})
	cred("u1", "c1", "crm", directory.CredentialValid, map[string]bool{"wf-off": true})
	cred("u1", "c2", "crm", directory.CredentialValid, map[string]bool{"wf-b": false})
	cred("u1", "c3", "crm", directory.CredentialInvalid, nil)
	cred("u1", "s1", "slack", directory.CredentialValid, nil)
	cred("ghost", "c1", "crm", directory.CredentialValid, nil)
	if _, err := dir.DeleteUser(ctx, "acme", "ghost"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := cat.WaitRevision(wctx, rev); err != nil {
		t.Fatal(err)
	}
	return cat, dir
}

func ran(ev *sbv1.TriggerEvent, wf, cred string) runs.Candidate {
	return runs.Candidate{Workflow: wf, User: ev.User, Credential: cred, Outcome: runs.OutcomeRan,
		RunID: runs.ID(ev.Id, wf, ev.User, cred)}
}

func skipped(ev *sbv1.TriggerEvent, wf, cred, reason string) runs.Candidate {
	return runs.Candidate{Workflow: wf, User: ev.User, Credential: cred, Outcome: runs.OutcomeSkipped, Reason: reason}
}

func TestDecide(t *testing.T) {
	cat, dir := setup(t)
	appEvent := func(name, user, cred string) *sbv1.TriggerEvent {
		return &sbv1.TriggerEvent{Id: "evt-" + name + user + cred, Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: name, User: user, Credential: cred}
	}
	cases := []struct {
		name string
		ev   *sbv1.TriggerEvent
		want func(ev *sbv1.TriggerEvent) []runs.Candidate
	}{
		{"fan-out over workflows and credentials", appEvent("Contact Created", "u1", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{
				ran(ev, "wf-a", "c1"), ran(ev, "wf-a", "c2"), skipped(ev, "wf-a", "c3", runs.ReasonCredentialInvalid),
				ran(ev, "wf-b", "c1"), skipped(ev, "wf-b", "c2", runs.ReasonNotEnabled), skipped(ev, "wf-b", "c3", runs.ReasonCredentialInvalid),
			}
		}},
		{"credential header selects one", appEvent("Contact Created", "u1", "c2"), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{ran(ev, "wf-a", "c2"), skipped(ev, "wf-b", "c2", runs.ReasonNotEnabled)}
		}},
		{"selected credential invalid", appEvent("Contact Created", "u1", "c3"), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "wf-a", "c3", runs.ReasonCredentialInvalid), skipped(ev, "wf-b", "c3", runs.ReasonCredentialInvalid)}
		}},
		{"unknown credential", appEvent("Contact Created", "u1", "nope"), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "wf-a", "nope", runs.ReasonCredentialUnknown), skipped(ev, "wf-b", "nope", runs.ReasonCredentialUnknown)}
		}},
		{"credential of another integration", appEvent("Contact Created", "u1", "s1"), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "wf-a", "s1", runs.ReasonCredentialUnknown), skipped(ev, "wf-b", "s1", runs.ReasonCredentialUnknown)}
		}},
		{"no credential", appEvent("Contact Created", "u2", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "wf-a", "", runs.ReasonNoCredential), skipped(ev, "wf-b", "", runs.ReasonNoCredential)}
		}},
		{"unknown user", appEvent("Contact Created", "stranger", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "wf-a", "", runs.ReasonUnknownUser), skipped(ev, "wf-b", "", runs.ReasonUnknownUser)}
		}},
		{"deleted user", appEvent("Contact Created", "ghost", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "wf-a", "", runs.ReasonUnknownUser), skipped(ev, "wf-b", "", runs.ReasonUnknownUser)}
		}},
		{"enabledByDefault false, enabled per credential; other integration unconnected", appEvent("Deal Won", "u1", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{
				ran(ev, "chat", "s1"),
				ran(ev, "wf-off", "c1"), skipped(ev, "wf-off", "c2", runs.ReasonNotEnabled), skipped(ev, "wf-off", "c3", runs.ReasonCredentialInvalid),
			}
		}},
		{"integration-less workflows for u1", appEvent("Ping", "u1", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{ran(ev, "plain", ""), ran(ev, "plain-off", "")}
		}},
		{"integration-less workflows for u2", appEvent("Ping", "u2", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "plain", "", runs.ReasonNotEnabled), skipped(ev, "plain-off", "", runs.ReasonNotEnabled)}
		}},
		{"integration-less workflows for unknown user", appEvent("Ping", "stranger", ""), func(ev *sbv1.TriggerEvent) []runs.Candidate {
			return []runs.Candidate{skipped(ev, "plain", "", runs.ReasonUnknownUser), skipped(ev, "plain-off", "", runs.ReasonUnknownUser)}
		}},
		{"undeclared event", appEvent("Nothing", "u1", ""), func(*sbv1.TriggerEvent) []runs.Candidate { return []runs.Candidate{} }},
		{"other project", &sbv1.TriggerEvent{Id: "e", Project: "other", Kind: sbv1.Kind_APP_EVENT, Name: "Ping", User: "u1"},
			func(*sbv1.TriggerEvent) []runs.Candidate { return []runs.Candidate{} }},
		{"workflow narrows an app event", &sbv1.TriggerEvent{Id: "e1", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1", Workflow: "wf-b"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate {
				return []runs.Candidate{ran(ev, "wf-b", "c1"), skipped(ev, "wf-b", "c2", runs.ReasonNotEnabled), skipped(ev, "wf-b", "c3", runs.ReasonCredentialInvalid)}
			}},
		{"workflow narrows with credential", &sbv1.TriggerEvent{Id: "e1", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1", Workflow: "wf-a", Credential: "c2"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate { return []runs.Candidate{ran(ev, "wf-a", "c2")} }},
		{"named workflow of another event", &sbv1.TriggerEvent{Id: "e1", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Ping", User: "u1", Workflow: "wf-a"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate {
				return []runs.Candidate{skipped(ev, "wf-a", "", routing.ReasonWorkflowNotFound)}
			}},
		{"named workflow unknown", &sbv1.TriggerEvent{Id: "e1", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Ping", User: "u1", Workflow: "gone"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate {
				return []runs.Candidate{skipped(ev, "gone", "", routing.ReasonWorkflowNotFound)}
			}},
		{"request trigger", &sbv1.TriggerEvent{Id: "r1", Project: "acme", Kind: sbv1.Kind_REQUEST, User: "u1", Workflow: "hook"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate { return []runs.Candidate{ran(ev, "hook", "")} }},
		{"request trigger with integration", &sbv1.TriggerEvent{Id: "r1", Project: "acme", Kind: sbv1.Kind_REQUEST, User: "u1", Workflow: "hook-crm"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate {
				return []runs.Candidate{ran(ev, "hook-crm", "c1"), ran(ev, "hook-crm", "c2"), skipped(ev, "hook-crm", "c3", runs.ReasonCredentialInvalid)}
			}},
		{"request kind naming an app_event workflow", &sbv1.TriggerEvent{Id: "r1", Project: "acme", Kind: sbv1.Kind_REQUEST, User: "u1", Workflow: "plain"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate {
				return []runs.Candidate{skipped(ev, "plain", "", routing.ReasonWorkflowNotFound)}
			}},
		{"app event naming a request workflow", &sbv1.TriggerEvent{Id: "r1", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Ping", User: "u1", Workflow: "hook"},
			func(ev *sbv1.TriggerEvent) []runs.Candidate {
				return []runs.Candidate{skipped(ev, "hook", "", routing.ReasonWorkflowNotFound)}
			}},
		{"request kind without workflow", &sbv1.TriggerEvent{Id: "r1", Project: "acme", Kind: sbv1.Kind_REQUEST, User: "u1"},
			func(*sbv1.TriggerEvent) []runs.Candidate { return []runs.Candidate{} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := routing.Decide(context.Background(), cat, dir, c.ev)
			if err != nil {
				t.Fatal(err)
			}
			// Messages are for humans: present on every skip, absent on runs.
			for i := range got {
				if (got[i].Outcome == runs.OutcomeSkipped) != (got[i].Message != "") {
					t.Errorf("candidate %d: outcome %s with message %q", i, got[i].Outcome, got[i].Message)
				}
				got[i].Message = ""
			}
			want := c.want(c.ev)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decide =\n%+v\nwant\n%+v", got, want)
			}
			for _, cand := range got {
				if cand.Outcome == runs.OutcomeRan && !runs.ValidID(cand.RunID) {
					t.Errorf("invalid run id %q", cand.RunID)
				}
			}
		})
	}
}

func TestRunIDsAreStablePerEvent(t *testing.T) {
	cat, dir := setup(t)
	decide := func(ev *sbv1.TriggerEvent) []runs.Candidate {
		t.Helper()
		cands, err := routing.Decide(context.Background(), cat, dir, ev)
		if err != nil {
			t.Fatal(err)
		}
		return cands
	}
	ev := &sbv1.TriggerEvent{Id: "evt-1", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1"}
	a := decide(ev)
	b := decide(ev)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("Decide not deterministic:\n%+v\n%+v", a, b)
	}
	ev2 := &sbv1.TriggerEvent{Id: "evt-2", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1"}
	c := decide(ev2)
	seen := map[string]bool{}
	for _, cand := range append(a, c...) {
		if cand.RunID == "" {
			continue
		}
		if seen[cand.RunID] {
			t.Errorf("run id %s repeated across candidates or events", cand.RunID)
		}
		seen[cand.RunID] = true
	}
	if len(seen) != 6 {
		t.Errorf("got %d distinct run ids, want 6", len(seen))
	}
}

func TestFirst(t *testing.T) {
	cases := []struct {
		name  string
		cands []runs.Candidate
		want  runs.Candidate
		ok    bool
	}{
		{"empty", nil, runs.Candidate{}, false},
		{"all skipped", []runs.Candidate{{Workflow: "a", Outcome: runs.OutcomeSkipped}}, runs.Candidate{}, false},
		{"first ran", []runs.Candidate{
			{Workflow: "a", Outcome: runs.OutcomeSkipped},
			{Workflow: "b", Credential: "c1", Outcome: runs.OutcomeRan, RunID: "r1"},
			{Workflow: "b", Credential: "c2", Outcome: runs.OutcomeRan, RunID: "r2"},
		}, runs.Candidate{Workflow: "b", Credential: "c1", Outcome: runs.OutcomeRan, RunID: "r1"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := routing.First(c.cands)
			if got != c.want || ok != c.ok {
				t.Errorf("First = %+v, %v; want %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// TestDirectoryFailureIsAnError: when the directory cannot be read, Decide
// fails (the router retries) instead of deciding "unknown user".
func TestDirectoryFailureIsAnError(t *testing.T) {
	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	objs, err := workflow.Parse([]byte(docs), "acme")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := cat.Apply(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Embedded.Connect("doomed")
	if err != nil {
		t.Fatal(err)
	}
	js, err := broker.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(ctx, directory.Options{JS: js})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	ev := &sbv1.TriggerEvent{Id: "e", Project: "acme", Kind: sbv1.Kind_APP_EVENT, Name: "Ping", User: "u1"}
	if cands, err := routing.Decide(ctx, cat, dir, ev); err == nil {
		t.Fatalf("Decide with an unreadable directory = %+v, nil", cands)
	}
}

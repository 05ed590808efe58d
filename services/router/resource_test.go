package router_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// resourceDocs: an app-level resource (one credential for every user,
// routed by the user its deliveries name) and a user-level one, each with
// a workflow whose http step authenticates with `auth: credential`.
func resourceDocs(url string) string {
	return `kind: Integration
id: tasklab
resource: true
level: app
auth: {type: bearer}
webhook:
  verification: {preset: standard-webhooks}
  eventType: body.type
  userId: body.data.userId
---
kind: Integration
id: crmlab
resource: true
auth: {type: api_key, header: X-CRM-Key}
webhook:
  verification: {preset: standard-webhooks}
  eventType: body.type
  userId: body.user
---
kind: Workflow
id: tasklab-created
trigger: {type: integration, integration: tasklab, event: task.created}
steps:
  - {id: call, type: http, method: POST, url: '` + url + `/tasklab', auth: credential, json: {event: "{{ trigger.id }}", user: "{{ user.id }}"}}
---
kind: Workflow
id: crmlab-created
trigger: {type: integration, integration: crmlab, event: deal.created}
steps:
  - {id: call, type: http, method: POST, url: '` + url + `/crmlab', auth: credential, json: {event: "{{ trigger.id }}", user: "{{ user.id }}"}}
`
}

// resourceEvent is an API Resource delivery's event as the receiver
// stores it for the resource's app-level URL: the user from webhook.userId,
// no credential.
func resourceEvent(resource, typ, user string) *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{
		Id: trigger.NewID(), Project: project, Kind: sbv1.Kind_API_RESOURCE, Name: typ, Integration: resource, User: user,
		Payload: []byte(`{"type":"` + typ + `"}`), ReceivedAt: timestamppb.Now(),
		Detail: &sbv1.TriggerEvent_Provider{Provider: &sbv1.ProviderEvent{EventType: typ, EventId: "e-" + user, Source: "webhook"}},
	}
}

func (h *harness) publishResource(ev *sbv1.TriggerEvent) {
	h.t.Helper()
	subj, err := trigger.Subject(ev)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := envelope.NewMsg(subj, ev)
	if err != nil {
		h.t.Fatal(err)
	}
	h.publishMsg(m, ev.Id)
}

// TestAPIResourceRouting: an API Resource event naming its user runs for
// that user only — with the app-level credential (in the Authorization
// header the 127.0.0.1 listener sees) for an app-level resource, with the
// user's own credential for a user-level one — and records why nothing ran
// for a user the directory does not know, a user-level resource the user
// never connected, or an app-level resource with no credential stored.
func TestAPIResourceRouting(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(resourceDocs(h.lst.URL))
	h.user("ana", nil)
	h.user("bob", nil)
	h.credential("bob", "crm-1", "crmlab", func(cr *directory.Credential) {
		cr.Secret = map[string]any{"apiKey": "bob-crm-key"}
	})

	t.Run("app-level resource without a credential fails its step", func(t *testing.T) {
		h := h.on(t)
		ev := resourceEvent("tasklab", "task.created", "ana")
		h.publishResource(ev)
		r := h.finished(runs.ID(ev.Id, "tasklab-created", "ana", ""))
		if r.Status != runs.StatusFailed || len(r.Steps) == 0 || !strings.Contains(r.Steps[0].Error, "app-level resource tasklab has no credential") {
			t.Fatalf("run %s: %+v", r.Status, r.Steps)
		}
		if n := len(h.lst.at("/tasklab")); n != 0 {
			t.Fatalf("%d calls without a credential", n)
		}
	})

	if _, err := h.dir.SetAppCredential(h.ctx(), project, "tasklab", &directory.AppCredential{
		Secret: map[string]any{"accessToken": "app-token"}, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	t.Run("app-level resource runs for the named user with the app credential", func(t *testing.T) {
		h := h.on(t)
		ev := resourceEvent("tasklab", "task.created", "ana")
		h.publishResource(ev)
		r := h.finished(runs.ID(ev.Id, "tasklab-created", "ana", ""))
		if r.Status != runs.StatusSucceeded || r.User != "ana" || r.Credential != "" {
			t.Fatalf("run %+v", r)
		}
		var mine []call
		for _, c := range h.lst.waitCalls(t, "/tasklab", 1) {
			if c.Body["event"] == ev.Id {
				mine = append(mine, c)
			}
		}
		if len(mine) != 1 || mine[0].Auth != "Bearer app-token" || mine[0].Body["user"] != "ana" {
			t.Fatalf("calls %+v", mine)
		}
		cs := candidates(h.decision(ev.Id))
		if len(cs) != 1 || cs[0].User != "ana" || cs[0].Outcome != runs.OutcomeRan {
			t.Fatalf("candidates %+v", cs)
		}
	})

	t.Run("a user the directory does not know is recorded", func(t *testing.T) {
		h := h.on(t)
		ev := resourceEvent("tasklab", "task.created", "mallory")
		h.publishResource(ev)
		cs := candidates(h.decision(ev.Id))
		if len(cs) != 1 || cs[0].Outcome != runs.OutcomeSkipped || cs[0].Reason != runs.ReasonUnknownUser || cs[0].User != "mallory" {
			t.Fatalf("candidates %+v", cs)
		}
	})

	t.Run("a user disabled for the workflow does not run", func(t *testing.T) {
		h := h.on(t)
		h.user("cy", func(u *directory.User) { u.Workflows = map[string]bool{"tasklab-created": false} })
		ev := resourceEvent("tasklab", "task.created", "cy")
		h.publishResource(ev)
		cs := candidates(h.decision(ev.Id))
		if len(cs) != 1 || cs[0].Reason != runs.ReasonNotEnabled {
			t.Fatalf("candidates %+v", cs)
		}
	})

	t.Run("user-level resource runs with the user's own credential", func(t *testing.T) {
		h := h.on(t)
		ev := resourceEvent("crmlab", "deal.created", "bob")
		h.publishResource(ev)
		r := h.finished(runs.ID(ev.Id, "crmlab-created", "bob", "crm-1"))
		if r.Status != runs.StatusSucceeded {
			t.Fatalf("run %+v", r)
		}
		calls := h.lst.waitCalls(t, "/crmlab", 1)
		if calls[len(calls)-1].Body["user"] != "bob" {
			t.Fatalf("calls %+v", calls)
		}
	})

	t.Run("user-level resource the user never connected is recorded", func(t *testing.T) {
		h := h.on(t)
		ev := resourceEvent("crmlab", "deal.created", "ana")
		h.publishResource(ev)
		cs := candidates(h.decision(ev.Id))
		if len(cs) != 1 || cs[0].Reason != runs.ReasonNoCredential || cs[0].User != "ana" {
			t.Fatalf("candidates %+v", cs)
		}
	})
}

package decide_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

const resourceDocs = `kind: Integration
id: tasklab
resource: true
level: app
webhook: {verification: {preset: standard-webhooks}, eventType: body.type, userId: body.user}
---
kind: Integration
id: crmlab
resource: true
webhook: {verification: {preset: standard-webhooks}, eventType: body.type, userId: body.user}
---
kind: Workflow
id: task
trigger: {type: integration, integration: tasklab, event: task.created}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: ana-only
trigger: {type: integration, integration: tasklab, event: task.created, filter: 'user.id == "ana"'}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: deal
trigger: {type: integration, integration: crmlab, event: deal.created}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
`

// TestResourceUserRouting: an API Resource event naming its user runs for
// that connected user only — once, without a credential, for an app-level
// resource (the user's enablement decides); once per credential of the
// resource for a user-level one — and every other case says why not.
func TestResourceUserRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, dir := applied(ctx, t, resourceDocs)
	user := func(u string, fn func(*directory.User)) {
		t.Helper()
		if _, _, err := dir.UpdateUser(ctx, project, u, func(us *directory.User) error {
			if fn != nil {
				fn(us)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cred := func(u, c string, status string) {
		t.Helper()
		if _, _, err := dir.UpdateCredential(ctx, project, u, c, func(cr *directory.Credential, _ bool) error {
			cr.Integration, cr.Status = "crmlab", status
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	user("ana", nil)
	user("bo", func(u *directory.User) { u.Workflows = map[string]bool{"task": false} })
	cred("bo", "c1", directory.CredentialValid)
	cred("bo", "c2", directory.CredentialInvalid)

	d, err := decide.New(decide.Options{Config: cat, Directory: directoryReader{dir}, Integrations: cat, Accounts: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(resource, name, user string) *sbv1.TriggerEvent {
		return &sbv1.TriggerEvent{Id: "evt-" + resource + user, Project: project, Kind: sbv1.Kind_API_RESOURCE, Name: name, Integration: resource, User: user,
			Payload: []byte(`{}`), Detail: &sbv1.TriggerEvent_Provider{Provider: &sbv1.ProviderEvent{EventType: name, EventId: "1", Source: "webhook"}}}
	}
	tests := []struct {
		name string
		ev   *sbv1.TriggerEvent
		want []string // "workflow/user/credential outcome reason"
	}{
		{"app-level: the named user, no credential", ev("tasklab", "task.created", "ana"), []string{"ana-only/ana/ ran ", "task/ana/ ran "}},
		{"app-level: the user's enablement and the filter", ev("tasklab", "task.created", "bo"), []string{"ana-only/bo/ skipped filter", "task/bo/ skipped not_enabled"}},
		{"app-level: unknown user", ev("tasklab", "task.created", "zed"), []string{"ana-only/zed/ skipped unknown_user", "task/zed/ skipped unknown_user"}},
		{"app-level: no user named", ev("tasklab", "task.created", ""), []string{"ana-only// skipped tenant_unknown", "task// skipped tenant_unknown"}},
		{"user-level: each credential of the user", ev("crmlab", "deal.created", "bo"), []string{"deal/bo/c1 ran ", "deal/bo/c2 skipped credential_invalid"}},
		{"user-level: a user who never connected it", ev("crmlab", "deal.created", "ana"), []string{"deal/ana/ skipped no_credential"}},
		{"user-level: unknown user", ev("crmlab", "deal.created", "zed"), []string{"deal/zed/ skipped unknown_user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands, err := d.Decide(ctx, tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cands {
				got = append(got, c.Workflow+"/"+c.User+"/"+c.Credential+" "+c.Outcome+" "+c.Reason)
				if c.Outcome == runs.OutcomeRan && c.RunID != runs.ID(tt.ev.Id, c.Workflow, c.User, c.Credential) {
					t.Errorf("%s ran with run id %q", c.Workflow, c.RunID)
				}
				if c.Outcome == runs.OutcomeSkipped && c.Message == "" {
					t.Errorf("%s skipped without a message", c.Workflow)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("candidates:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("an app-level item naming no user says so", func(t *testing.T) {
		cands, err := d.Decide(ctx, ev("tasklab", "task.created", ""))
		if err != nil || len(cands) == 0 || !strings.Contains(cands[0].Message, "webhook.userId") {
			t.Fatalf("candidates %+v (%v)", cands, err)
		}
	})
}

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

const integrationDocs = `kind: Workflow
id: new-contact
trigger: {type: integration, integration: hubspot, event: contact.creation}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: big-deals
trigger: {type: integration, integration: hubspot, event: deal.creation, filter: 'trigger.payload.amount > 1000'}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: email-changed
trigger: {type: integration, integration: hubspot, event: contact.propertyChange, params: {propertyName: email}}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: settings-filter
enabledByDefault: false
trigger: {type: integration, integration: hubspot, event: contact.creation, filter: 'credential.settings.pipeline == "sales"'}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
`

// TestIntegrationDecider: an app-level event runs for every credential of
// its account, a per-credential one for that credential only, and every
// candidate that does not run says which rule stopped it.
func TestIntegrationDecider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, dir := applied(ctx, t, integrationDocs)
	cred := func(u, c, acct string, fn func(*directory.Credential)) {
		t.Helper()
		if _, _, err := dir.UpdateCredential(ctx, project, u, c, func(cr *directory.Credential, _ bool) error {
			cr.Integration, cr.ProviderAccountID = "hubspot", acct
			if fn != nil {
				fn(cr)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cred("alice", "h1", "62515", func(cr *directory.Credential) {
		cr.Settings = map[string]any{"pipeline": "sales"}
		cr.Workflows = map[string]bool{"settings-filter": true}
	})
	cred("bob", "h2", "62515", nil)
	cred("carol", "h3", "62515", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })
	cred("dave", "h4", "62515", func(cr *directory.Credential) { cr.Workflows = map[string]bool{"new-contact": false} })
	cred("erin", "h5", "777", nil)

	d, err := decide.New(decide.Options{Config: cat, Directory: directoryReader{dir}, Integrations: cat, Accounts: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(name, acct, payload string, mod ...func(*sbv1.TriggerEvent)) *sbv1.TriggerEvent {
		e := &sbv1.TriggerEvent{Id: "evt-" + name + acct, Project: project, Kind: sbv1.Kind_INTEGRATION, Name: name, Integration: "hubspot",
			Payload: []byte(payload), Detail: &sbv1.TriggerEvent_Provider{Provider: &sbv1.ProviderEvent{
				EventType: name, EventId: "1", ProviderAccountId: acct, Source: "webhook"}}}
		for _, m := range mod {
			m(e)
		}
		return e
	}
	tests := []struct {
		name string
		ev   *sbv1.TriggerEvent
		want []string // "workflow/user/credential outcome reason"
	}{
		{"account fan-out", ev("contact.creation", "62515", `{}`), []string{
			"new-contact/alice/h1 ran ", "new-contact/bob/h2 ran ", "new-contact/carol/h3 skipped credential_invalid", "new-contact/dave/h4 skipped not_enabled",
			"settings-filter/alice/h1 ran ", "settings-filter/bob/h2 skipped not_enabled", "settings-filter/carol/h3 skipped credential_invalid", "settings-filter/dave/h4 skipped not_enabled",
		}},
		{"unknown account", ev("contact.creation", "999", `{}`), []string{
			"new-contact// skipped no_credential_for_account", "settings-filter// skipped no_credential_for_account"}},
		{"no tenant", ev("contact.creation", "", `{}`), []string{
			"new-contact// skipped tenant_unknown", "settings-filter// skipped tenant_unknown"}},
		{"no workflow for the event", ev("company.creation", "62515", `{}`), []string{"// skipped no_workflow"}},
		{"filter true", ev("deal.creation", "777", `{"amount": 5000}`), []string{"big-deals/erin/h5 ran "}},
		{"filter false", ev("deal.creation", "777", `{"amount": 5}`), []string{"big-deals/erin/h5 skipped filter"}},
		{"filter error", ev("deal.creation", "777", `{"amount": "x"}`), []string{"big-deals/erin/h5 skipped filter_error"}},
		{"params match", ev("contact.propertyChange", "777", `{"propertyName": "email"}`), []string{"email-changed/erin/h5 ran "}},
		{"params mismatch", ev("contact.propertyChange", "777", `{"propertyName": "phone"}`), []string{"email-changed/erin/h5 skipped params_mismatch"}},
		{"per-credential URL", ev("contact.creation", "", `{}`, func(e *sbv1.TriggerEvent) { e.User, e.Credential = "bob", "h2" }), []string{
			"new-contact/bob/h2 ran ", "settings-filter/bob/h2 skipped not_enabled"}},
		{"an API Resource's event is routed alike", ev("contact.creation", "777", `{}`, func(e *sbv1.TriggerEvent) { e.Kind = sbv1.Kind_API_RESOURCE }), []string{
			"new-contact/erin/h5 ran ", "settings-filter/erin/h5 skipped not_enabled"}},
		{"per-credential URL, credential gone", ev("contact.creation", "", `{}`, func(e *sbv1.TriggerEvent) { e.User, e.Credential = "bob", "zz" }), []string{
			"new-contact/bob/zz skipped credential_not_found", "settings-filter/bob/zz skipped credential_not_found"}},
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
				if c.Outcome == runs.OutcomeRan && c.RunID == "" {
					t.Errorf("%s ran without a run id", c.Workflow)
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
	t.Run("check", func(t *testing.T) {
		bad := ev("contact.creation", "1", `{}`)
		bad.Detail = nil
		if err := d.Check(bad); err == nil || !strings.Contains(err.Error(), "provider detail") {
			t.Fatalf("Check = %v", err)
		}
	})
}

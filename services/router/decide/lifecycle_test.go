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

const lifecycleDocs = `kind: Workflow
id: welcome
trigger: {type: integration_enabled, integration: hubspot}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: opt-in
enabledByDefault: false
trigger: {type: integration_enabled, integration: hubspot}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: reconnect-mail
trigger: {type: lifecycle, event: credential.invalid, integration: hubspot}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: goodbye
trigger: {type: lifecycle, event: integration.disabled, integration: hubspot}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: slack-welcome
trigger: {type: integration_enabled, integration: slack}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
`

// TestLifecycleDecider: a lifecycle event runs each workflow of its event
// and integration once, for the event's user and credential, when the
// workflow is enabled for it — whatever the credential's status.
func TestLifecycleDecider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, dir := applied(ctx, t, lifecycleDocs)
	cred := func(u, c string, fn func(*directory.Credential)) {
		t.Helper()
		if _, _, err := dir.UpdateCredential(ctx, project, u, c, func(cr *directory.Credential, _ bool) error {
			cr.Integration = "hubspot"
			if fn != nil {
				fn(cr)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cred("alice", "h1", func(cr *directory.Credential) { cr.Workflows = map[string]bool{"opt-in": true} })
	cred("bob", "h2", func(cr *directory.Credential) {
		cr.Status = directory.CredentialInvalid
		cr.Workflows = map[string]bool{"reconnect-mail": false}
	})
	cred("carol", "h3", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })

	d, err := decide.New(decide.Options{Config: cat, Directory: directoryReader{dir}, Integrations: cat, Accounts: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(kind sbv1.Kind, name, user, cred, payload string) *sbv1.TriggerEvent {
		return &sbv1.TriggerEvent{Id: "evt-" + name + user, Project: project, Kind: kind, Name: name, User: user, Credential: cred,
			Integration: "hubspot", Payload: []byte(payload),
			Detail: &sbv1.TriggerEvent_Lifecycle{Lifecycle: &sbv1.LifecycleTransition{Event: name, Revision: "u.p." + user + "@3"}}}
	}
	const en, lc = sbv1.Kind_INTEGRATION_ENABLED, sbv1.Kind_LIFECYCLE
	tests := []struct {
		name string
		ev   *sbv1.TriggerEvent
		want []string
	}{
		{"enabled: default and opted-in workflows", ev(en, "integration.enabled", "alice", "h1", `{}`), []string{"opt-in/alice/h1 ran ", "welcome/alice/h1 ran "}},
		{"enabled: opt-in not enabled", ev(en, "integration.enabled", "carol", "h3", `{}`), []string{"opt-in/carol/h3 skipped not_enabled", "welcome/carol/h3 ran "}},
		{"invalid runs on the INVALID credential", ev(lc, "credential.invalid", "carol", "h3", `{}`), []string{"reconnect-mail/carol/h3 ran "}},
		{"invalid, workflow turned off", ev(lc, "credential.invalid", "bob", "h2", `{}`), []string{"reconnect-mail/bob/h2 skipped not_enabled"}},
		{"credential gone", ev(lc, "credential.invalid", "alice", "zz", `{}`), []string{"reconnect-mail/alice/zz skipped credential_not_found"}},
		{"disabled: the removed credential's overrides", ev(lc, "integration.disabled", "gone", "h9", `{"workflows":{"goodbye":false}}`), []string{"goodbye/gone/h9 skipped not_enabled"}},
		{"disabled: default", ev(lc, "integration.disabled", "gone", "h9", `{}`), []string{"goodbye/gone/h9 ran "}},
		{"no workflow", ev(lc, "credential.refreshed", "alice", "h1", `{}`), []string{"/alice/h1 skipped no_workflow"}},
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
					t.Errorf("%s: run id %q", c.Workflow, c.RunID)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("candidates:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("check", func(t *testing.T) {
		bad := ev(lc, "credential.invalid", "alice", "", `{}`)
		if err := d.Check(bad); err == nil {
			t.Fatal("a lifecycle event without credential passed Check")
		}
	})
}

package router_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// TestDefect6CrossProjectRunInjection: a run message on one project's run
// subject whose envelope (or workflow header) names something else is
// dead-lettered with the reason, and the workflow it names does not run —
// a publisher allowed on sb.run.p.> must not run another project's
// workflow with that project's credentials.
func TestDefect6CrossProjectRunInjection(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(contactDocs(h.lst.URL))
	h.user("u1", nil)
	ctx := h.ctx()

	// Project p2 with a workflow that calls out with p2's credential.
	const p2 = "p2"
	_, rev, err := h.cat.UpdateProject(ctx, p2, func(*catalog.Project) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	h.waitRevision(rev)
	objs, err := workflow.Parse([]byte(`kind: AppEvent
name: Contact Created
---
kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: secret
integration: crm
trigger: {type: app_event, event: Contact Created}
steps:
  - {id: call, type: http, method: POST, url: "`+h.lst.URL+`/p2", auth: credential, json: {user: "{{ user.id }}"}}
`), p2)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err = h.cat.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	h.waitRevision(rev)
	if _, _, err := h.dir.UpdateUser(ctx, p2, "u1", func(*directory.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.dir.UpdateCredential(ctx, p2, "u1", "c1", func(cr *directory.Credential, _ bool) error {
		cr.Integration, cr.Secret = "crm", map[string]any{"accessToken": "tok-p2"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, subject, envProject, workflow, path, reason string
	}{
		{"envelope names another project", subjects.Run(project, "secret"), p2, "secret", "/p2", `envelope project "p2"`},
		{"header names another workflow", subjects.Run(project, "audit"), project, "to-crm", "/crm", `workflow "to-crm"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			ev := &sbv1.TriggerEvent{Id: envelope.NewID(), Project: tc.envProject, Kind: sbv1.Kind_APP_EVENT,
				Name: "Contact Created", User: "u1", Payload: []byte(`{}`), ReceivedAt: timestamppb.Now()}
			m, err := envelope.NewMsg(tc.subject, ev)
			if err != nil {
				t.Fatal(err)
			}
			runID := runs.ID(ev.Id, tc.workflow, "u1", "c1")
			m.Header.Set(router.HeaderRunID, runID)
			m.Header.Set(router.HeaderWorkflow, tc.workflow)
			m.Header.Set(router.HeaderUser, "u1")
			m.Header.Set(router.HeaderCredential, "c1")
			seq := h.publishMsg(m, runID)

			var dead *nats.Msg
			eventually(t, "the dead letter of run message "+strconv.FormatUint(seq, 10), func() (bool, string) {
				for _, dm := range h.stored(subjects.StreamDead, "sb.dead.>") {
					if dm.Header.Get(consume.HeaderDeadSequence) == strconv.FormatUint(seq, 10) &&
						dm.Header.Get(consume.HeaderDeadStream) == subjects.StreamRuns {
						dead = &nats.Msg{Subject: dm.Subject, Header: dm.Header, Data: dm.Data}
						return true, ""
					}
				}
				return false, "none yet; calls of " + tc.path + ": " + strconv.Itoa(len(h.lst.at(tc.path)))
			})
			if r := dead.Header.Get(consume.HeaderDeadReason); !strings.Contains(r, tc.reason) || !strings.Contains(r, "does not match") {
				t.Errorf("%s = %q, want it to say %q does not match", consume.HeaderDeadReason, r, tc.reason)
			}
			h.settled(subjects.StreamRuns, router.ExecutorDurable(project), seq)
			if n := len(h.lst.at(tc.path)); n != 0 {
				t.Errorf("%s was called %d times by a forged run", tc.path, n)
			}
			for _, p := range []string{project, p2} {
				for _, sm := range h.stored(subjects.StreamRunEvents, subjects.RunHistory(p)) {
					if strings.Contains(string(sm.Data), runID) {
						t.Errorf("the forged run has a snapshot in %s's history", p)
					}
				}
			}
		})
	}

	t.Run("a genuine run still runs", func(t *testing.T) {
		h := h.on(t)
		ev := appEvent("Contact Created", "u1", `{}`)
		h.publish(ev)
		if r := h.finished(runs.ID(ev.Id, "audit", "u1", "")); r.Status != runs.StatusSucceeded {
			t.Errorf("run: %s %s", r.Status, r.Error)
		}
	})
}

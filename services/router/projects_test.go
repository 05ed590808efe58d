package router_test

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// TestProjectCreatedLater: a project created while the router runs gets
// its own executor ("executor-<project>") and its runs execute.
func TestProjectCreatedLater(t *testing.T) {
	h := newHarness(t, router.Options{})
	const late = "late"
	ctx := h.ctx()
	_, rev, err := h.cat.UpdateProject(ctx, late, func(*catalog.Project) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	h.waitRevision(rev)
	objs, err := workflow.Parse([]byte(`kind: AppEvent
name: Hello
---
kind: Workflow
id: hello
trigger: {type: app_event, event: Hello}
steps:
  - {id: call, type: http, method: POST, url: "`+h.lst.URL+`/late", json: {event: "{{ trigger.id }}"}}
`), late)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err = h.cat.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	h.waitRevision(rev)
	if _, _, err := h.dir.UpdateUser(ctx, late, "u1", func(*directory.User) error { return nil }); err != nil {
		t.Fatal(err)
	}

	ev := &sbv1.TriggerEvent{Id: envelope.NewID(), Project: late, Kind: sbv1.Kind_APP_EVENT, Name: "Hello", User: "u1",
		Payload: []byte(`{}`), ReceivedAt: timestamppb.Now()}
	m, err := envelope.NewMsg(subjects.Trigger(late, subjects.KindAppEvent, "u1"), ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.JS.PublishMsg(ctx, m, jetstream.WithMsgID(ev.Id)); err != nil {
		t.Fatal(err)
	}
	runID := runs.ID(ev.Id, "hello", "u1", "")
	eventually(t, "run "+runID+" of project late to succeed", func() (bool, string) {
		for _, sm := range h.stored(subjects.StreamRunEvents, subjects.RunHistory(late)) {
			var r runs.Run
			if err := json.Unmarshal(sm.Data, &r); err == nil && r.ID == runID && r.Status.Terminal() {
				return r.Status == runs.StatusSucceeded, string(r.Status) + " " + r.Error
			}
		}
		return false, "not finished"
	})
	if _, err := h.srv.JS.Consumer(ctx, subjects.StreamRuns, router.ExecutorDurable(late)); err != nil {
		t.Errorf("consumer %s: %v", router.ExecutorDurable(late), err)
	}
	if n := len(h.lst.at("/late")); n != 1 {
		t.Errorf("/late was called %d times, want 1", n)
	}
}

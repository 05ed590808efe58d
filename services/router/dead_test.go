package router_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// TestUnroutableTrigger: a trigger that can never be routed is copied to
// DEAD with the reason, is not decided, and the router goes on routing.
func TestUnroutableTrigger(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(contactDocs(h.lst.URL))
	h.user("u1", nil)

	protoMsg := func(subject string, ev *sbv1.TriggerEvent) *nats.Msg {
		m, err := envelope.NewMsg(subject, ev)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	appSubject := subjects.Trigger(project, subjects.KindAppEvent, "u1")
	for _, tc := range []struct {
		name   string
		id     string
		msg    *nats.Msg
		reason string
	}{
		{name: "kind unspecified", id: "e-nokind",
			msg:    protoMsg(appSubject, &sbv1.TriggerEvent{Id: "e-nokind", Project: project, Name: "Contact Created", User: "u1"}),
			reason: "kind is required"},
		// Every kind of today's envelope has a decider; one from a newer
		// producer (an enum value this build does not know) has none.
		{name: "a kind without a decider", id: "e-newkind",
			msg: protoMsg(subjects.Trigger(project, subjects.KindAppEvent, "u1"), &sbv1.TriggerEvent{
				Id: "e-newkind", Project: project, Kind: sbv1.Kind(99), Name: "Contact Created", User: "u1"}),
			reason: "not implemented"},
		{name: "schedule without its tick", id: "e-schedule",
			msg: protoMsg(subjects.Trigger(project, subjects.KindSchedule, "w"), &sbv1.TriggerEvent{
				Id: "e-schedule", Project: project, Kind: sbv1.Kind_SCHEDULE, Name: "tick", User: "u1"}),
			reason: "without its tick"},
		{name: "app event without user", id: "e-nouser",
			msg:    protoMsg(appSubject, &sbv1.TriggerEvent{Id: "e-nouser", Project: project, Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created"}),
			reason: "without user"},
		{name: "request without its request", id: "e-noreq",
			msg: protoMsg(subjects.Trigger(project, subjects.KindRequest, "quote"), &sbv1.TriggerEvent{
				Id: "e-noreq", Project: project, Kind: sbv1.Kind_REQUEST, Workflow: "quote", User: "u1"}),
			reason: "without its request"},
		{name: "project other than the subject's", id: "e-escape",
			msg:    protoMsg(appSubject, &sbv1.TriggerEvent{Id: "e-escape", Project: "other", Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1"}),
			reason: "does not match subject project"},
		{name: "not JSON", id: "e-json", msg: func() *nats.Msg {
			m := nats.NewMsg(appSubject)
			m.Header.Set(envelope.HeaderContentType, envelope.ContentTypeJSON)
			m.Data = []byte(`{"kind": "APP_EVENT", `)
			return m
		}(), reason: "malformed envelope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			seq := h.publishMsg(tc.msg, tc.id)
			var dead *nats.Msg
			eventually(t, "the dead letter of trigger "+strconv.FormatUint(seq, 10), func() (bool, string) {
				for _, m := range h.stored(subjects.StreamDead, subjects.DeadTrigger(project)) {
					if m.Header.Get(consume.HeaderDeadSequence) == strconv.FormatUint(seq, 10) {
						dead = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
						return true, ""
					}
				}
				return false, "none yet"
			})
			if r := dead.Header.Get(consume.HeaderDeadReason); !strings.Contains(r, tc.reason) {
				t.Errorf("%s = %q, want it to say %q", consume.HeaderDeadReason, r, tc.reason)
			}
			if got := dead.Header.Get(consume.HeaderDeadStream); got != subjects.StreamTriggers {
				t.Errorf("%s = %q", consume.HeaderDeadStream, got)
			}
			if got := dead.Header.Get(consume.HeaderDeadSubject); got != tc.msg.Subject {
				t.Errorf("%s = %q, want %q", consume.HeaderDeadSubject, got, tc.msg.Subject)
			}
			if string(dead.Data) != string(tc.msg.Data) {
				t.Errorf("the dead letter does not carry the trigger's bytes")
			}
			h.routed(seq)
			if d := h.decisions(func(d runs.Decision) bool { return d.EventID == tc.id }); len(d) != 0 {
				t.Errorf("an unroutable trigger was decided: %+v", d)
			}
		})
	}

	t.Run("the router goes on", func(t *testing.T) {
		h := h.on(t)
		ev := appEvent("Contact Created", "u1", `{}`)
		h.publish(ev)
		if r := h.finished(runs.ID(ev.Id, "audit", "u1", "")); r.Status != runs.StatusSucceeded {
			t.Errorf("run after the dead letters: %s %s", r.Status, r.Error)
		}
	})
}

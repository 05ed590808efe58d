package router_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/services/router"
)

// TestFinishedRunNotRepeated: a run message that comes back as a first
// delivery after its run finished is acknowledged without running the
// run's steps again, whether the run succeeded or failed. The executor
// looks a first delivery up only when it may stand for a finished run
// (executor.go, suspect): a message stored before the router started (the
// server lost its consumer state in a crash and redelivers), or one whose
// trigger is older than half the dedupe window (published again after the
// window); the run-history read model answers for runs whose state has
// left RUN_STATE.
func TestFinishedRunNotRepeated(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: AppEvent
name: Once
---
kind: Workflow
id: once
trigger: {type: app_event, event: Once}
steps:
  - id: call
    type: http
    method: POST
    url: ` + h.lst.URL + `/once
    json: {event: "{{ trigger.id }}", user: "{{ user.id }}"}
`)
	// User "refused" gets 400, which fails the step (and the run) at once.
	h.user("ok", nil)
	h.user("refused", nil)
	h.lst.setStatus(func(c call, _ int) int {
		if c.Body["user"] == "refused" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})

	for _, tc := range []struct {
		name, user string
		status     runs.Status
		// restart: the copy is stored while no router runs, and a new one
		// gets it; old: the trigger is older than the dedupe window.
		restart, old bool
		gap          string
	}{
		{name: "succeeded, delivered again after a restart", user: "ok", status: runs.StatusSucceeded, restart: true},
		{name: "failed, delivered again after a restart", user: "refused", status: runs.StatusFailed, restart: true},
		{name: "succeeded, trigger older than the dedupe window", user: "ok", status: runs.StatusSucceeded, old: true},
		{name: "failed, trigger older than the dedupe window", user: "refused", status: runs.StatusFailed, old: true},
		{name: "succeeded, published again while the router runs", user: "ok", status: runs.StatusSucceeded,
			gap: "by design: a first delivery of a run message stored after this router started, with a " +
				"consumer that never went back and a recent trigger, is a run that never started, and is not " +
				"looked up; only a publisher outside Switchboard can store a second copy of a run under " +
				"another Msg-Id, and sb.run.> is not for outside publishers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gap != "" {
				t.Skip(tc.gap)
			}
			h := h.on(t)
			ev := appEvent("Once", tc.user, `{}`)
			if tc.old {
				past := timestamppb.New(time.Now().Add(-10 * time.Minute))
				ev.OccurredAt, ev.ReceivedAt = past, past
			}
			h.publish(ev)
			runID := runs.ID(ev.Id, "once", tc.user, "")
			first := h.finished(runID)
			if first.Status != tc.status {
				t.Fatalf("run %s %s, want %s", first.Status, first.Error, tc.status)
			}
			snaps := len(h.snapshots(runID))
			if n := len(h.callsOf("/once", ev.Id)); n != 1 {
				t.Fatalf("/once called %d times, want 1", n)
			}
			if tc.status == runs.StatusFailed {
				var dead int
				for _, m := range h.stored(subjects.StreamDead, subjects.DeadRun(project, "once")) {
					if m.Header.Get(router.HeaderRunID) == runID {
						dead++
						if r := deadReason(m); !strings.Contains(r, "HTTP 400") {
							t.Errorf("dead run's reason %q, want it to say HTTP 400", r)
						}
					}
				}
				if dead != 1 {
					t.Errorf("DEAD holds %d copies of the failed run, want 1", dead)
				}
			}

			// The same run message again, under a new Msg-Id: JetStream
			// stores it and the executor gets it as a first delivery.
			var orig *nats.Msg
			for _, m := range h.runMessages("once") {
				if m.Header.Get(router.HeaderRunID) == runID {
					orig = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
				}
			}
			if orig == nil {
				t.Fatalf("no RUNS message of run %s", runID)
			}
			again := nats.NewMsg(orig.Subject)
			for k, vs := range orig.Header {
				if k != wire.HeaderMsgID {
					again.Header[k] = vs
				}
			}
			again.Data = orig.Data
			if tc.restart {
				h.stopRouter()
			}
			seq := h.publishMsg(again, "again:"+runID)
			if tc.restart {
				h.startRouter()
			}
			h.settled(subjects.StreamRuns, router.ExecutorDurable(project), seq)

			if n := len(h.callsOf("/once", ev.Id)); n != 1 {
				t.Errorf("/once called %d times, want 1: the finished run ran again", n)
			}
			if n := len(h.snapshots(runID)); n != snaps {
				t.Errorf("%d snapshots of the run, %d before: it ran again", n, snaps)
			}
		})
	}
}

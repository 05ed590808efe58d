package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
)

// crashRouter stops the router without letting its in-flight work finish:
// the handlers are cancelled at once, so a step that is running stops
// half-way and nothing after it is stored, as in a crash.
func (h *harness) crashRouter() {
	h.t.Helper()
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_ = h.rt.svc.Stop(ctx) // "in-flight handlers cancelled" is the point
	h.rt.svc = nil
}

// loseConsumerState deletes the executor's durable while no router runs;
// the next router creates it again and the server delivers every RUNS
// message anew, each with NumDelivered 1 — what a server that lost its
// consumer state in a crash does.
func (h *harness) loseConsumerState() {
	h.t.Helper()
	if err := h.srv.JS.DeleteConsumer(h.ctx(), subjects.StreamRuns, router.ExecutorDurable(project)); err != nil {
		h.t.Fatal(err)
	}
}

// checkpoint is run id's state in RUN_STATE, if it has one.
func (h *harness) checkpoint(id string) (*runs.Run, error) {
	s, err := h.srv.JS.Stream(h.ctx(), subjects.StreamRunState)
	if err != nil {
		return nil, err
	}
	m, err := s.GetLastMsgForSubject(h.ctx(), subjects.RunState(project, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r runs.Run
	return &r, json.Unmarshal(m.Data, &r)
}

// TestDefect3AttemptsCountedAcrossRedelivery: a step that was running when
// the router went down, delivered again after the server lost the
// consumer's state (NumDelivered 1 again), runs as its second attempt and
// its history says so; the finished run, delivered once more the same way,
// runs nothing again.
func TestDefect3AttemptsCountedAcrossRedelivery(t *testing.T) {
	h := newHarness(t, router.Options{RunningDelay: 10 * time.Millisecond})
	h.apply(`kind: AppEvent
name: Slow
---
kind: Workflow
id: slow
trigger: {type: app_event, event: Slow}
steps:
  - {id: call, type: http, method: POST, url: "` + h.lst.URL + `/slow", json: {event: "{{ trigger.id }}"}}
`)
	h.user("u1", nil)
	// The first call hangs until the router is gone.
	release := make(chan struct{})
	h.lst.onCall = func(c call) {
		if len(h.lst.at("/slow")) == 1 {
			select {
			case <-release:
			case <-time.After(waitFor):
			}
		}
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	ev := appEvent("Slow", "u1", `{}`)
	h.publish(ev)
	runID := runs.ID(ev.Id, "slow", "u1", "")
	h.lst.waitCalls(t, "/slow", 1)
	eventually(t, "the step's attempt to be checkpointed as started", func() (bool, string) {
		cp, err := h.checkpoint(runID)
		if err != nil || cp == nil || cp.Pending == nil {
			return false, fmt.Sprintf("checkpoint %+v, %v", cp, err)
		}
		return cp.Pending.Step == "call" && cp.Pending.Attempts == 1, fmt.Sprintf("pending %+v", *cp.Pending)
	})

	h.crashRouter()
	close(release)
	h.loseConsumerState()
	h.startRouter()

	r := h.finished(runID)
	if r.Status != runs.StatusSucceeded {
		t.Fatalf("run %s %s", r.Status, r.Error)
	}
	if n := len(h.callsOf("/slow", ev.Id)); n != 2 {
		t.Errorf("/slow called %d times, want 2 (the interrupted attempt and its rerun)", n)
	}
	if len(r.Steps) != 1 || r.Steps[0].Attempts != 2 {
		t.Errorf("steps %+v, want one step with attempts 2", r.Steps)
	}
	if r.Deliveries < 2 {
		t.Errorf("deliveries %d, want at least 2", r.Deliveries)
	}

	t.Run("the finished run is not run again", func(t *testing.T) {
		h := h.on(t)
		snaps := len(h.snapshots(runID))
		h.stopRouter()
		h.loseConsumerState()
		h.startRouter()
		for _, m := range h.runMessages("slow") {
			h.settled(subjects.StreamRuns, router.ExecutorDurable(project), m.Sequence)
		}
		if n := len(h.callsOf("/slow", ev.Id)); n != 2 {
			t.Errorf("/slow called %d times, want still 2", n)
		}
		if n := len(h.snapshots(runID)); n != snaps {
			t.Errorf("%d snapshots, %d before: the run ran again", n, snaps)
		}
	})
}

// TestDefect3FinishedRunsNotRunAgainAfterConsumerLoss: every finished run —
// one step or several, succeeded or failed — delivered again as a first
// delivery (the consumer recreated from the stream's start) runs no step
// again. The executor finds it finished in RUN_STATE or, once its state
// left RUN_STATE, in the run history (executor.go, suspect).
func TestDefect3FinishedRunsNotRunAgainAfterConsumerLoss(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: AppEvent
name: Go
---
kind: Workflow
id: one
trigger: {type: app_event, event: Go}
steps:
  - {id: a, type: http, method: POST, url: "` + h.lst.URL + `/one", json: {event: "{{ trigger.id }}"}}
---
kind: Workflow
id: two
trigger: {type: app_event, event: Go}
steps:
  - {id: a, type: http, method: POST, url: "` + h.lst.URL + `/two", json: {event: "{{ trigger.id }}"}}
  - {id: b, type: http, method: POST, url: "` + h.lst.URL + `/two-b", json: {event: "{{ trigger.id }}"}}
`)
	h.user("u1", nil)
	var evs []string
	for range 3 {
		ev := appEvent("Go", "u1", `{}`)
		h.publish(ev)
		evs = append(evs, ev.Id)
	}
	for _, id := range evs {
		for _, w := range []string{"one", "two"} {
			if r := h.finished(runs.ID(id, w, "u1", "")); r.Status != runs.StatusSucceeded {
				t.Fatalf("run %s of %s: %s %s", w, id, r.Status, r.Error)
			}
		}
	}
	before := map[string]int{}
	for _, p := range []string{"/one", "/two", "/two-b"} {
		before[p] = len(h.lst.at(p))
	}

	h.stopRouter()
	h.loseConsumerState()
	h.startRouter()
	for _, w := range []string{"one", "two"} {
		for _, m := range h.runMessages(w) {
			h.settled(subjects.StreamRuns, router.ExecutorDurable(project), m.Sequence)
		}
	}
	for p, n := range before {
		if got := len(h.lst.at(p)); got != n {
			t.Errorf("%s called %d times, %d before the consumer was recreated", p, got, n)
		}
	}
}

package router_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/router"
)

// retryBackoff is the flaky step's backoff. The slot check below needs
// another run to finish within it, which takes milliseconds; it is long
// only so that a busy machine cannot turn the order around.
const retryBackoff = 2 * time.Second

// TestStepRetry: an http step answered 500 is retried after its backoff
// with the run's message handed back to JetStream (a second delivery), not
// by waiting inside the executor: with one slot, another run
// finishes during the backoff. The pending step is checkpointed, and the
// final state shows two attempts and no pending step.
func TestStepRetry(t *testing.T) {
	// One slot: a run waiting in it would stop every other run.
	h := newHarness(t, router.Options{Concurrency: 1})
	h.apply(`kind: AppEvent
name: Flaky
---
kind: AppEvent
name: Steady
---
kind: Workflow
id: flaky
trigger: {type: app_event, event: Flaky}
steps:
  - id: call
    type: http
    method: POST
    url: ` + h.lst.URL + `/flaky
    json: {event: "{{ trigger.id }}"}
    retry: {attempts: 3, backoff: ` + retryBackoff.String() + `}
---
kind: Workflow
id: steady
trigger: {type: app_event, event: Steady}
steps:
  - id: call
    type: http
    method: POST
    url: ` + h.lst.URL + `/steady
    json: {event: "{{ trigger.id }}"}
`)
	h.user("u1", nil)
	h.lst.setStatus(func(c call, n int) int {
		if c.Path == "/flaky" && n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	// The steady event is published as the flaky step's first attempt is
	// answered, so its run competes for the one slot with the flaky run's
	// wait for its retry.
	steady := appEvent("Steady", "u1", `{}`)
	var once sync.Once
	ctx := h.ctx()
	h.lst.mu.Lock()
	h.lst.onCall = func(c call) {
		if c.Path != "/flaky" {
			return
		}
		once.Do(func() {
			m, err := envelope.NewMsg(triggerSubject(steady), steady)
			if err == nil {
				_, err = h.srv.JS.PublishMsg(ctx, m, jetstream.WithMsgID(steady.Id))
			}
			if err != nil {
				t.Errorf("publish the steady event: %v", err)
			}
		})
	}
	h.lst.mu.Unlock()

	flaky := appEvent("Flaky", "u1", `{}`)
	h.publish(flaky)
	flakyRun := runs.ID(flaky.Id, "flaky", "u1", "")
	steadyRun := runs.ID(steady.Id, "steady", "u1", "")

	r := h.finished(flakyRun)
	s := h.finished(steadyRun)
	if s.Status != runs.StatusSucceeded {
		t.Errorf("steady run: %s %s", s.Status, s.Error)
	}
	if r.Status != runs.StatusSucceeded || len(r.Steps) != 1 || r.Pending != nil {
		t.Fatalf("final state %+v, want succeeded with one step and no pending step", r)
	}
	if st := r.Steps[0]; st.Attempts != 2 || st.Status != runs.StepSucceeded {
		t.Errorf("step %+v, want succeeded on attempt 2", st)
	}
	if r.Deliveries != 2 {
		t.Errorf("deliveries %d, want 2: the retry is a redelivery of the run's message", r.Deliveries)
	}

	// The history log holds the checkpoint taken between the attempts.
	var pending *runs.PendingStep
	for _, s := range h.snapshots(flakyRun) {
		if s.Pending != nil {
			pending = s.Pending
		}
	}
	switch {
	case pending == nil:
		t.Errorf("no snapshot with a pending step among %+v", h.snapshots(flakyRun))
	case pending.Step != "call" || pending.Attempts != 1 || !strings.Contains(pending.Error, "HTTP 500") ||
		pending.RetryAt.Sub(pending.StartedAt) < retryBackoff:
		t.Errorf("pending step %+v, want attempt 1 of call failed with HTTP 500, retried %s later", pending, retryBackoff)
	}

	// The steady run used the one slot while the flaky one waited for its
	// retry: it finished before the retry was due. (Holding the slot for
	// the backoff would still run steady before the retry, but only once
	// the backoff is over.)
	if pending != nil && !s.FinishedAt.Before(pending.RetryAt) {
		t.Errorf("the steady run finished at %s, not before the flaky step's retry at %s: the waiting run held the only slot",
			s.FinishedAt.Format(time.RFC3339Nano), pending.RetryAt.Format(time.RFC3339Nano))
	}
	var order []string
	h.lst.mu.Lock()
	for _, c := range h.lst.calls {
		order = append(order, c.Path)
	}
	h.lst.mu.Unlock()
	if want := []string{"/flaky", "/steady", "/flaky"}; !slices.Equal(order, want) {
		t.Errorf("listener calls %v, want %v", order, want)
	}
}

package e2e

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

func rqIdemDocs(listener string) string {
	return `kind: Workflow
id: rq-idem
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 201
    headers: {X-Order: "{{ trigger.request.body.order }}"}
    json: {order: "{{ trigger.request.body.order }}", run: "{{ run.id }}"}
---
kind: Workflow
id: rq-idem-off
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 201
    json: {run: "{{ run.id }}"}
---
kind: AppEvent
name: Rq Idem Ping
---
kind: Workflow
id: rq-idem-event
trigger: {type: app_event, event: Rq Idem Ping}
steps:
  - id: notify
    type: http
    method: POST
    url: ` + listener + `/ping
    json: {n: "{{ trigger.payload.n }}", run: "{{ run.id }}"}
    retry: {attempts: 2, backoff: 100ms}
`
}

// TestRequestIdempotency sends the same request trigger 50 times at once
// with one Idempotency-Key (one run, one stored trigger, every caller told
// the same run id; the repeats get the original response: status, headers
// and body), reuses the key with another body (422), repeats an App
// Event with a key (same event id, Idempotent-Replayed, one run), and
// retries a key whose request the router refused once the cause is fixed
// (a new run, not a replay of the refusal).
func TestRequestIdempotency(t *testing.T) {
	t.Parallel()
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	rqSetup(t, a, key, rqIdemDocs(l.URL))
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + token

	t.Run("50 concurrent identical request triggers make one run", func(t *testing.T) {
		t.Parallel()
		const n = 50
		url := a.base + "/v1/projects/dev/workflows/rq-idem/trigger"
		body := []byte(`{"order":"o-1"}`)
		answers := make([]response, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				answers[i], errs[i] = rqDo(ctx, "POST", url, body, "Authorization", bearer, "Idempotency-Key", "order-o-1")
			}()
		}
		close(start)
		wg.Wait()

		runIDs := map[string]int{}
		replayed, originals := 0, 0
		for i, r := range answers {
			if errs[i] != nil {
				t.Fatalf("call %d: %v", i, errs[i])
			}
			switch {
			case r.Header.Get("Idempotent-Replayed") == "true":
				replayed++
				// The original response, as the run recorded it.
				id := r.Header.Get("X-Switchboard-Run-Id")
				runIDs[id]++
				if got := rqObject(t, r); r.Status != http.StatusCreated || got["run"] != id || got["order"] != "o-1" || r.Header.Get("X-Order") != "o-1" {
					t.Errorf("replayed call %d: %s (X-Order %q), want the original 201 with run %s, order o-1 and X-Order o-1", i, r, r.Header.Get("X-Order"), id)
				}
			default:
				originals++
				if r.Status != http.StatusCreated {
					t.Errorf("original call %d: %s, want the response step's 201", i, r)
					continue
				}
				id := r.Header.Get("X-Switchboard-Run-Id")
				runIDs[id]++
				if got := rqObject(t, r); got["run"] != id || got["order"] != "o-1" {
					t.Errorf("original call %d: body %s, want run %s and order o-1", i, r.Body, id)
				}
			}
		}
		if originals != 1 || replayed != n-1 {
			t.Errorf("%d original answers and %d with Idempotent-Replayed: true, want 1 and %d", originals, replayed, n-1)
		}
		if len(runIDs) != 1 {
			t.Fatalf("the callers were told %d different run ids: %v", len(runIDs), runIDs)
		}
		var runID string
		for id := range runIDs {
			runID = id
		}
		if !runs.ValidID(runID) {
			t.Fatalf("run id %q", runID)
		}
		// One trigger stored (every answer came after its publish, so the
		// count is final), one run in the history.
		if got := rqSubjectMsgs(t, sys.JS, subjects.StreamTriggers, subjects.Trigger(dev.Project, subjects.KindRequest, "rq-idem")); got != 1 {
			t.Errorf("%d request triggers stored for rq-idem, want 1", got)
		}
		if run := waitRun(t, a, key, runID); run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", runID, run.Status, run.Error)
		}
		list := rqListRuns(t, a, key, "rq-idem")
		if len(list) != 1 || list[0].ID != runID {
			t.Fatalf("runs of rq-idem: %+v, want only %s", list, runID)
		}

		// A later repeat is still answered from the key.
		r := rqCall(t, "POST", url, body, "Authorization", bearer, "Idempotency-Key", "order-o-1")
		if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" || rqObject(t, r)["run"] != runID ||
			r.Header.Get("X-Switchboard-Run-Id") != runID || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("repeat after the run: %s (replayed %q), want the original 201 of %s", r, r.Header.Get("Idempotent-Replayed"), runID)
		}
		// Asked for an async answer, the repeat is the 202 with the run id.
		r = rqCall(t, "POST", url, body, "Authorization", bearer, "Idempotency-Key", "order-o-1", "Prefer", "respond-async")
		if r.Status != http.StatusAccepted || r.Header.Get("Idempotent-Replayed") != "true" || rqObject(t, r)["runId"] != runID {
			t.Errorf("async repeat: %s, want 202 replayed with %s", r, runID)
		}

		// The same key with another body, query or user is refused.
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u2", key, map[string]any{"metadata": map[string]any{}})
		for _, c := range []struct {
			name, query string
			body        []byte
			hdr         []string
		}{
			{"other body", "", []byte(`{"order":"o-2"}`), []string{"Authorization", bearer}},
			{"other query", "?x=1", body, []string{"Authorization", bearer}},
		} {
			hdr := append(c.hdr, "Idempotency-Key", "order-o-1")
			r := rqCall(t, "POST", url+c.query, c.body, hdr...)
			e := expectError(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
			if e.Error.Field != "Idempotency-Key" {
				t.Errorf("%s: field %q, want Idempotency-Key", c.name, e.Error.Field)
			}
		}
		if got := rqSubjectMsgs(t, sys.JS, subjects.StreamTriggers, subjects.Trigger(dev.Project, subjects.KindRequest, "rq-idem")); got != 1 {
			t.Errorf("%d request triggers stored for rq-idem after the refusals, want 1", got)
		}
		// Keys are scoped per user: another user's request with the same
		// key is a request of its own.
		r = rqCall(t, "POST", url, body, "Authorization", "Bearer "+key, "X-Switchboard-User", "u2", "Idempotency-Key", "order-o-1")
		if r.Status != http.StatusCreated || r.Header.Get("X-Switchboard-Run-Id") == runID || r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("same key, other user: %s, want a new run", r)
		}
		// Another key is another request.
		r = rqCall(t, "POST", url, body, "Authorization", bearer, "Idempotency-Key", "order-o-1-bis")
		if r.Status != http.StatusCreated || r.Header.Get("X-Switchboard-Run-Id") == runID {
			t.Errorf("another key: %s, want a new run", r)
		}
	})

	t.Run("a request the router refused frees its key", func(t *testing.T) {
		t.Parallel()
		url := a.base + "/v1/projects/dev/workflows/rq-idem-off/trigger"
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3", key, map[string]any{"metadata": map[string]any{}})
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3/workflows/rq-idem-off", key, map[string]any{"enabled": false})
		hdr := []string{"Authorization", "Bearer " + key, "X-Switchboard-User", "u3", "Idempotency-Key", "off-1"}
		expectError(t, rqCall(t, "POST", url, []byte(`{}`), hdr...), http.StatusForbidden, "workflow_not_enabled")
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3/workflows/rq-idem-off", key, map[string]any{"enabled": true})
		// The directory is read through a cache: poll until the router sees
		// the enablement; every refused attempt frees the key again.
		var r response
		eventually(t, 20*time.Second, "the retry with the same key to run", func() (bool, string) {
			r = rqCall(t, "POST", url, []byte(`{}`), hdr...)
			return r.Status != http.StatusForbidden, r.String()
		})
		if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("retry after enabling: %s (replayed %q), want the response step's 201", r, r.Header.Get("Idempotent-Replayed"))
		}
		runID := r.Header.Get("X-Switchboard-Run-Id")
		again := rqCall(t, "POST", url, []byte(`{}`), hdr...)
		if again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" || rqObject(t, again)["run"] != runID {
			t.Errorf("repeat after the run: %s, want the original 201 of %s, replayed", again, runID)
		}
	})

	t.Run("App Event with an Idempotency-Key", func(t *testing.T) {
		t.Parallel()
		ev := map[string]any{"name": "Rq Idem Ping", "payload": map[string]any{"n": "ping-1"}}
		first := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", token, ev, "Idempotency-Key", "ping-1")
		if first.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("first call is marked replayed")
		}
		acc1 := accepted(t, first)
		if len(acc1.RunIDs) != 1 {
			t.Fatalf("first call started %v, want one run", acc1.RunIDs)
		}
		second := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events", token, ev, "Idempotency-Key", "ping-1")
		acc2 := accepted(t, second)
		if acc2.ID != acc1.ID || second.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("second call: %s (Idempotent-Replayed %q), want event %s replayed", second, second.Header.Get("Idempotent-Replayed"), acc1.ID)
		}
		// Also through the SDK path, which shares the key space.
		third := a.must(t, http.StatusAccepted, "POST", "/projects/dev/sdk/events/trigger", token, ev, "Idempotency-Key", "ping-1")
		if accepted(t, third).ID != acc1.ID || third.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("SDK path repeat: %s, want event %s replayed", third, acc1.ID)
		}
		// Same key, other payload.
		other := map[string]any{"name": "Rq Idem Ping", "payload": map[string]any{"n": "ping-2"}}
		expectError(t, a.call(t, "POST", "/v1/projects/dev/events", token, other, "Idempotency-Key", "ping-1"),
			http.StatusUnprocessableEntity, "idempotency_key_reused")

		if got := rqSubjectMsgs(t, sys.JS, subjects.StreamTriggers, subjects.Trigger(dev.Project, subjects.KindAppEvent, "u1")); got != 1 {
			t.Errorf("%d app events stored for u1, want 1", got)
		}
		if run := waitRun(t, a, key, acc1.RunIDs[0]); run.Status != runs.StatusSucceeded {
			t.Fatalf("run: %s (%s)", run.Status, run.Error)
		}
		if list := rqListRuns(t, a, key, "rq-idem-event"); len(list) != 1 {
			t.Errorf("runs of rq-idem-event: %d, want 1", len(list))
		}
		if hits := l.matching("n", "ping-1"); len(hits) != 1 {
			t.Errorf("the listener got %d calls, want 1", len(hits))
		}
	})
}

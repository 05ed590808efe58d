package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/router/decide"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestBoundedRecords runs what used to loop forever on a stock 1 MB NATS —
// the embedded server keeps nats-server's default max_payload — and checks
// each ends in a clear state, its listener called exactly once.
func TestBoundedRecords(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	if mp := sys.NC.MaxPayload(); mp > 1<<20 {
		t.Fatalf("the dev server's max_payload is %d: it must not hide the stock 1 MB limit", mp)
	}
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(sys.HTTPAddr)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", sys.APIKey, map[string]any{})
	boundedCases(t, a, sys.APIKey, token, sys.JS)
}

// boundedCases applies its workflows to project dev of a running system
// (user u1 exists, token is theirs) and runs the cases against it.
func boundedCases(t *testing.T, a api, key, token string, js jetstream.JetStream) {
	t.Helper()
	// One listener: /big answers 1.2 MB, anything else a small JSON.
	var bigCalls, postCalls atomic.Int64
	bigBody := `{"blob":"` + strings.Repeat("x", 1200*1000) + `"}`
	l := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/big" {
			bigCalls.Add(1)
			fmt.Fprint(w, bigBody)
			return
		}
		postCalls.Add(1)
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(l.Close)

	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, `
kind: AppEvent
name: Fetch Big
---
kind: AppEvent
name: Loop
---
kind: Workflow
id: rq-big-body
trigger: {type: request}
steps:
  - {id: post, type: http, method: POST, url: "`+l.URL+`/post", json: "{{ trigger.request.body }}"}
  - {id: answer, type: response, json: {size: "{{ len(trigger.request.body.pad) }}"}}
---
kind: Workflow
id: fetch-big
trigger: {type: app_event, event: Fetch Big}
steps:
  - {id: fetch, type: http, method: GET, url: "`+l.URL+`/big"}
---
kind: Workflow
id: loop
trigger: {type: app_event, event: Loop}
steps:
  - {id: again, type: emit, event: Loop, payload: {}}
`)

	t.Run("an 800 kB request body", func(t *testing.T) {
		body := rqJSON(t, map[string]any{"pad": strings.Repeat("p", 800*1000)})
		r := a.call(t, "POST", "/v1/projects/dev/workflows/rq-big-body/trigger", token, body)
		if r.Status != http.StatusOK || rqObject(t, r)["size"] != float64(800*1000) {
			t.Fatalf("sync call: %.200s, want 200 with size 800000", r)
		}
		run := waitRun(t, a, key, r.Header.Get("X-Switchboard-Run-Id"))
		if run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s", run.Status, run.Error)
		}
		step, _ := run.StepByID("post")
		ref, ok := blob.IsRef(step.Input)
		if !ok || ref.Size < 800*1000 || ref.Preview == "" {
			t.Fatalf("the step's 800 kB input is not a reference with a preview: %.300v", step.Input)
		}
		if n := postCalls.Load(); n != 1 {
			t.Fatalf("listener called %d times, want once", n)
		}
	})

	t.Run("a 1.2 MB step response", func(t *testing.T) {
		r := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events?wait=routed", token,
			map[string]any{"name": "Fetch Big", "payload": map[string]any{}})
		acc := accepted(t, r)
		if len(acc.RunIDs) != 1 {
			t.Fatalf("runs %v, want one", acc.RunIDs)
		}
		run := waitRun(t, a, key, acc.RunIDs[0])
		if run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s", run.Status, run.Error)
		}
		step, _ := run.StepByID("fetch")
		ref, ok := blob.IsRef(step.Output)
		if !ok || ref.Size < 1200*1000 || !strings.Contains(ref.Preview, "xxxx") {
			t.Fatalf("the 1.2 MB output is not a reference with a preview: %.300v", step.Output)
		}
		waitSettled(t, js)
		if n := bigCalls.Load(); n != 1 {
			t.Fatalf("listener called %d times, want once", n)
		}
	})

	t.Run("a workflow that emits its own event", func(t *testing.T) {
		a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events", token, map[string]any{"name": "Loop", "payload": map[string]any{}})
		// Hops 0 … MaxHops run; the trigger one hop deeper runs nothing.
		want := decide.DefaultMaxHops + 1
		var stopped runs.Decision
		eventually(t, 30*time.Second, "the emit chain to stop at the hop limit", func() (bool, string) {
			for _, d := range rqDecisions(t, js) {
				for _, c := range d.Candidates {
					if c.Workflow == "loop" && c.Reason == runs.ReasonHopLimit {
						stopped = d
						return true, ""
					}
				}
			}
			return false, "no decision with reason hop_limit yet"
		})
		// Nothing is left to run once the consumers settle; the read model
		// may still be applying what ran.
		waitSettled(t, js)
		eventually(t, 20*time.Second, fmt.Sprintf("%d runs of loop in the history", want), func() (bool, string) {
			n := len(rqListRuns(t, a, key, "loop"))
			if n > want {
				t.Fatalf("%d runs of loop, want %d: the chain did not stop", n, want)
			}
			return n == want, fmt.Sprintf("%d so far", n)
		})
		if !strings.Contains(stopped.Candidates[0].Message, "hops deep") {
			t.Errorf("hop limit message %q", stopped.Candidates[0].Message)
		}
	})
}

// waitSettled waits until the router and every executor have nothing
// pending or unacknowledged, so a count taken after it would show a loop.
func waitSettled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	eventually(t, 30*time.Second, "the consumers to settle", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range []struct{ stream, name string }{
			{subjects.StreamTriggers, router.RouterDurable(dev.Project)},
			{subjects.StreamRuns, router.ExecutorDurable(dev.Project)},
		} {
			cons, err := js.Consumer(ctx, c.stream, c.name)
			if err != nil {
				return false, err.Error()
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			if info.NumPending > 0 || info.NumAckPending > 0 || info.NumRedelivered > 0 {
				return false, fmt.Sprintf("%s: pending %d, ack pending %d, redelivered %d", c.name, info.NumPending, info.NumAckPending, info.NumRedelivered)
			}
		}
		return true, ""
	})
}

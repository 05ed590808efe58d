package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/fnworker"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/router"
)

func rqResumeDocs(listener string) string {
	return `kind: Workflow
id: rq-resume
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 202
    json: {run: "{{ run.id }}", accepted: true}
  - id: work
    type: function
    function: rq-block
    input: {order: "{{ trigger.request.body.order }}"}
    retry: {attempts: 3, backoff: 100ms}
  - id: notify
    type: http
    method: POST
    url: ` + listener + `/done
    json: {run: "{{ run.id }}", order: "{{ trigger.request.body.order }}", work: "{{ steps.work.ok }}"}
    retry: {attempts: 3, backoff: 100ms}
`
}

// TestRequestResume kills the router after the response step was answered
// but before the run finished: a new router resumes the run from its
// checkpoint, so the remaining steps complete exactly once and the caller is
// not answered twice.
func TestRequestResume(t *testing.T) {
	t.Parallel()
	st := rqStartStack(t)
	l := newListener(t)
	opts := router.Options{AckWait: 2 * time.Second}
	r1 := st.startRouter(t, opts)
	ing := st.startIngress(t, 0)
	key := st.apiKey
	rqSetup(t, ing, key, rqResumeDocs(l.URL))
	st.syncCatalogs(t)

	// The worker blocks its first call until released.
	release := make(chan struct{})
	calls := newRqCounter()
	svc, err := fnworker.Serve(rqConnect(t, st.ns.ClientURL()), fnworker.Options{Project: "dev", Functions: map[string]fnworker.Handler{
		"rq-block": func(ctx context.Context, _ fnworker.Request) (any, error) {
			calls.inc()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return map[string]any{"ok": true}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		_ = svc.Stop()
	})

	r := rqCall(t, "POST", ing.base+"/v1/projects/dev/workflows/rq-resume/trigger", []byte(`{"order":"o-9"}`),
		"Authorization", "Bearer "+st.token("u1"))
	if r.Status != http.StatusAccepted {
		t.Fatalf("sync call: %s, want the response step's 202", r)
	}
	runID := r.Header.Get("X-Switchboard-Run-Id")
	if got := rqObject(t, r); got["run"] != runID || got["accepted"] != true || !runs.ValidID(runID) {
		t.Fatalf("sync answer %s (run id header %q)", r.Body, runID)
	}

	// The run is inside the function step: kill the router. An expired
	// context makes Stop abandon in-flight runs for redelivery at once.
	rqWaitChan(t, calls.first, 10*time.Second, "the worker's first call")
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	r1.stop(expired)

	// The run is checkpointed after its response step and not finished.
	mid := rqWaitRunRecorded(t, ing, key, runID)
	if mid.Status.Terminal() {
		t.Fatalf("run %s is %s after the router was killed mid-run", runID, mid.Status)
	}
	if _, ok := mid.StepByID("reply"); !ok {
		t.Fatalf("the response step is not checkpointed: %+v", mid.Steps)
	}
	if len(l.all()) != 0 {
		t.Fatalf("the listener was called before the run resumed: %+v", l.all())
	}

	close(release)
	released = true
	st.startRouter(t, opts)

	run := waitRun(t, ing, key, runID)
	if run.Status != runs.StatusSucceeded {
		t.Fatalf("resumed run: %s (%s)", run.Status, run.Error)
	}
	hits := l.all()
	if len(hits) != 1 {
		t.Fatalf("the listener got %d calls, want exactly 1: %+v", len(hits), hits)
	}
	if hits[0].Body["run"] != runID || hits[0].Body["order"] != "o-9" || hits[0].Body["work"] != true {
		t.Errorf("listener got %s", hits[0].Raw)
	}
	if n := rqStepCount(run, "reply"); n != 1 {
		t.Errorf("the response step is recorded %d times, want 1: %+v", n, run.Steps)
	}
	if s, _ := run.StepByID("reply"); s.Attempts != 1 {
		t.Errorf("the response step ran %d times, want 1", s.Attempts)
	}
	for _, id := range []string{"work", "notify"} {
		if n := rqStepCount(run, id); n != 1 {
			t.Errorf("step %s recorded %d times, want 1: %+v", id, n, run.Steps)
		}
	}
	if run.Deliveries < 2 {
		t.Errorf("run deliveries %d, want at least 2 (it was redelivered to the new router)", run.Deliveries)
	}
	// First call abandoned with the killed router, second from the resumed run.
	if c := calls.get(); c != 2 {
		t.Errorf("the worker got %d calls, want 2", c)
	}
	// Nothing more happens afterwards (no further redelivery).
	r2 := rqCall(t, "POST", ing.base+"/v1/projects/dev/workflows/rq-resume/trigger", []byte(`{"order":"o-10"}`),
		"Authorization", "Bearer "+st.token("u1"))
	if r2.Status != http.StatusAccepted {
		t.Fatalf("second call on the new router: %s", r2)
	}
	l.waitFor(t, "order", "o-10", 1)
	if n := len(l.matching("order", "o-9")); n != 1 {
		t.Errorf("o-9 reached the listener %d times, want 1", n)
	}
}

// rqWaitRunRecorded polls until the run is in the history (any status).
func rqWaitRunRecorded(t testing.TB, a api, key, runID string) runs.Run {
	t.Helper()
	var run runs.Run
	eventually(t, 10*time.Second, "run "+runID+" in the history with its response step", func() (bool, string) {
		r := a.call(t, "GET", "/v1/projects/dev/runs/"+runID, key, nil)
		if r.Status != http.StatusOK {
			return false, r.String()
		}
		run = runs.Run{}
		r.decode(t, &run)
		_, ok := run.StepByID("reply")
		return ok, r.String()
	})
	return run
}

// TestRequestLongStepNotRedelivered runs a function step that takes longer
// than the executor's AckWait. The run message must not be redelivered
// while the step is still running (the router documents that "long steps
// extend it with InProgress"), or a second execution of the same run starts
// concurrently and repeats its side effects.
func TestRequestLongStepNotRedelivered(t *testing.T) {
	t.Parallel()
	st := rqStartStack(t)
	l := newListener(t)
	st.startRouter(t, router.Options{AckWait: time.Second})
	ing := st.startIngress(t, 0)
	key := st.apiKey
	rqSetup(t, ing, key, `kind: Workflow
id: rq-long
trigger: {type: request}
steps:
  - id: work
    type: function
    function: rq-long
    timeout: 10s
    retry: {attempts: 1}
  - id: notify
    type: http
    method: POST
    url: `+l.URL+`/long
    json: {run: "{{ run.id }}"}
    retry: {attempts: 1}
`)
	st.syncCatalogs(t)

	// A worker answering each call after 2.5s, calls handled concurrently
	// (a plain NATS responder: any language may serve the contract).
	calls := newRqCounter()
	nc := rqConnect(t, st.ns.ClientURL())
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	if _, err := nc.QueueSubscribe("sb.fn.dev.rq-long", "sb-fn", func(m *nats.Msg) {
		calls.inc()
		go func() {
			select {
			case <-time.After(2500 * time.Millisecond):
				_ = m.Respond([]byte(`{"ok":true}`))
			case <-done:
			}
		}()
	}); err != nil {
		t.Fatal(err)
	}

	r := rqCall(t, "POST", ing.base+"/v1/projects/dev/workflows/rq-long/trigger", []byte(`{}`), "Authorization", "Bearer "+st.token("u1"))
	if r.Status != http.StatusAccepted {
		t.Fatalf("trigger: %s", r)
	}
	runID, _ := rqObject(t, r)["runId"].(string)
	run := waitRun(t, ing, key, runID)
	// A redelivery would have called the worker again within the 2.5s the
	// first call took, so the count is final once the run has finished.
	c := calls.get()
	if c == 1 {
		if run.Status != runs.StatusSucceeded || run.Deliveries != 1 {
			t.Errorf("run: %s, deliveries %d (%s), want succeeded on the first delivery", run.Status, run.Deliveries, run.Error)
		}
		if n := len(l.all()); n != 1 {
			t.Errorf("the http step ran %d times, want 1", n)
		}
		return
	}
	// Let the duplicate executions finish, to show what they did.
	deadline := time.Now().Add(10 * time.Second)
	for len(l.all()) < c && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	final := rqGetRun(t, ing, key, runID)
	t.Errorf("the run was redelivered while its %s step was still running (AckWait 1s, step 2.5s): "+
		"the function was called %d times and the http step after it ran %d times for one run, want 1 each; "+
		"the run ended %s after %d deliveries (first seen %s)",
		"function", c, len(l.all()), final.Status, final.Deliveries, run.Status)
}

// rqGetRun reads a run as it is now.
func rqGetRun(t testing.TB, a api, key, runID string) runs.Run {
	t.Helper()
	var run runs.Run
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+runID, key, nil).decode(t, &run)
	return run
}

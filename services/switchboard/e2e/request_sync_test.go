package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/fnworker"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// rqSyncDocs are the workflows of TestRequestSync. listener is the URL the
// asynchronous workflow's http step posts to.
func rqSyncDocs(listener string) string {
	return `kind: Workflow
id: rq-echo
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 201
    headers: {X-Echo: "yes"}
    json:
      name: "{{ trigger.request.body.name }}"
      q: "{{ trigger.request.query.q }}"
      custom: "{{ trigger.request.headers['x-custom'] }}"
      method: "{{ trigger.request.method }}"
      user: "{{ user.id }}"
      run: "{{ run.id }}"
---
kind: Workflow
id: rq-headers
trigger: {type: request}
steps:
  - id: reply
    type: response
    json:
      headers: "{{ trigger.request.headers }}"
---
kind: Workflow
id: rq-body
trigger: {type: request}
steps:
  - id: reply
    type: response
    json:
      body: "{{ trigger.request.body }}"
---
kind: Workflow
id: rq-async
trigger: {type: request}
steps:
  - id: notify
    type: http
    method: POST
    url: ` + listener + `/async
    json: {run: "{{ run.id }}", n: "{{ trigger.request.body.n }}"}
    retry: {attempts: 2, backoff: 100ms}
---
kind: Workflow
id: rq-slow
trigger: {type: request, timeout: 1s}
steps:
  - id: work
    type: function
    function: rq-slow-a
    input: {n: "{{ trigger.request.body.n }}"}
    retry: {attempts: 1}
  - id: reply
    type: response
    json: {done: "{{ steps.work.done }}"}
---
kind: Workflow
id: rq-slow55
trigger: {type: request}
steps:
  - id: work
    type: function
    function: rq-slow-b
    retry: {attempts: 1}
  - id: reply
    type: response
    json: {done: "{{ steps.work.done }}"}
---
kind: Workflow
id: rq-get
trigger: {type: request, methods: [GET]}
steps:
  - id: reply
    type: response
    json: {q: "{{ trigger.request.query.q }}", method: "{{ trigger.request.method }}"}
---
kind: Workflow
id: rq-disabled
trigger: {type: request}
steps:
  - id: reply
    type: response
    json: {ok: true}
---
kind: AppEvent
name: Rq Sync Ping
---
kind: Workflow
id: rq-appev
trigger: {type: app_event, event: Rq Sync Ping}
steps:
  - id: notify
    type: http
    url: ` + listener + `/appev
`
}

// TestRequestSync drives request triggers end to end on a dev system: the
// synchronous answer of a response step, the asynchronous paths (no
// response step, Prefer: respond-async), the 542 timeout (workflow timeout
// and Prefer: wait=N), body parsing (form, multipart), methods, the drop-in
// path, 404/403/400 for the wrong workflow, a disabled one and a missing user.
func TestRequestSync(t *testing.T) {
	t.Parallel()
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	rqSetup(t, a, key, rqSyncDocs(l.URL))
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + token
	trigger := func(w string) string { return a.base + "/v1/projects/dev/workflows/" + w + "/trigger" }

	// The slow functions: one per workflow, since a micro endpoint handles
	// its requests one at a time.
	slowCalls := newRqCounter()
	slow := func(ctx context.Context, _ fnworker.Request) (any, error) {
		slowCalls.inc()
		select {
		case <-time.After(2500 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return map[string]any{"done": true}, nil
	}
	svc, err := fnworker.Serve(rqConnect(t, sys.NATSURL), fnworker.Options{Project: dev.Project,
		Functions: map[string]fnworker.Handler{"rq-slow-a": slow, "rq-slow-b": slow}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	t.Run("sync response step", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-echo")+"?q=hello", rqJSON(t, map[string]any{"name": "Ada"}),
			"Authorization", bearer, "X-Custom", "custom-value")
		if r.Status != http.StatusCreated {
			t.Fatalf("got %s, want 201 from the response step", r)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		if r.Header.Get("X-Echo") != "yes" {
			t.Errorf("header X-Echo = %q, want the response step's header", r.Header.Get("X-Echo"))
		}
		runID := r.Header.Get("X-Switchboard-Run-Id")
		if !runs.ValidID(runID) {
			t.Fatalf("X-Switchboard-Run-Id %q is not a run id (headers %v)", runID, r.Header)
		}
		got := rqObject(t, r)
		want := map[string]any{"name": "Ada", "q": "hello", "custom": "custom-value", "method": "POST", "user": "u1", "run": runID}
		if !rqJSONEqual(got, want) {
			t.Errorf("body %s, want %v", r.Body, want)
		}
		run := waitRun(t, a, key, runID)
		if run.Status != runs.StatusSucceeded || run.Workflow != "rq-echo" || run.User != "u1" {
			t.Fatalf("run %+v, want rq-echo for u1 succeeded", run)
		}
		if len(run.Steps) != 1 || run.Steps[0].ID != "reply" || run.Steps[0].Status != runs.StepSucceeded {
			t.Errorf("steps %+v, want the response step succeeded", run.Steps)
		}
	})

	t.Run("credential headers are not passed to the run", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-headers"), []byte(`{}`),
			"Authorization", bearer, "Cookie", "session=secret-cookie", "Proxy-Authorization", "Basic c2VjcmV0",
			"X-Visible", "v1")
		if r.Status != http.StatusOK {
			t.Fatalf("got %s, want 200", r)
		}
		var got struct {
			Headers map[string]any `json:"headers"`
		}
		r.decode(t, &got)
		for _, h := range []string{"authorization", "cookie", "proxy-authorization"} {
			if v, ok := got.Headers[h]; ok {
				t.Errorf("the run saw credential header %s = %v", h, v)
			}
		}
		if got.Headers["x-visible"] != "v1" {
			t.Errorf("the run's headers %v lack x-visible (lower-cased) = v1", got.Headers)
		}
		for k := range got.Headers {
			if k != strings.ToLower(k) {
				t.Errorf("header name %q is not lower-cased", k)
			}
		}
		// Nor does the stored run or its trigger carry them.
		runID := r.Header.Get("X-Switchboard-Run-Id")
		waitRun(t, a, key, runID)
		stored := a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+runID, key, nil)
		for _, secret := range []string{token, "secret-cookie", "c2VjcmV0"} {
			if strings.Contains(string(stored.Body), secret) {
				t.Errorf("the stored run contains the credential %q: %s", secret[:8], stored.Body)
			}
		}
	})

	t.Run("no response step answers 202 at once", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-async"), []byte(`{"n":"async-1"}`), "Authorization", bearer)
		if r.Status != http.StatusAccepted {
			t.Fatalf("got %s, want 202", r)
		}
		got := rqObject(t, r)
		runID, _ := got["runId"].(string)
		if !runs.ValidID(runID) || got["workflowId"] != "rq-async" || got["eventId"] == "" {
			t.Fatalf("202 body %s, want runId, eventId and workflowId", r.Body)
		}
		if run := waitRun(t, a, key, runID); run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", runID, run.Status, run.Error)
		}
		l.waitFor(t, "n", "async-1", 1)
	})

	t.Run("Prefer respond-async", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-echo"), []byte(`{"name":"Async"}`), "Authorization", bearer, "Prefer", "respond-async")
		if r.Status != http.StatusAccepted {
			t.Fatalf("got %s, want 202", r)
		}
		got := rqObject(t, r)
		runID, _ := got["runId"].(string)
		loc := r.Header.Get("Location")
		if !runs.ValidID(runID) || loc != "/v1/projects/dev/runs/"+runID {
			t.Fatalf("Location %q and body %s, want Location /v1/projects/dev/runs/<runId>", loc, r.Body)
		}
		run := rqWaitRunAt(t, a, key, loc)
		if run.ID != runID || run.Status != runs.StatusSucceeded {
			t.Fatalf("run at Location: %+v, want %s succeeded", run, runID)
		}
	})

	t.Run("workflow timeout answers 542 and the run continues", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		r := rqCall(t, "POST", trigger("rq-slow"), []byte(`{"n":1}`), "Authorization", bearer)
		elapsed := time.Since(start)
		if r.Status != 542 {
			t.Fatalf("got %s after %s, want 542", r, elapsed)
		}
		if elapsed < 900*time.Millisecond || elapsed > 2300*time.Millisecond {
			t.Errorf("542 after %s, want about the 1s timeout", elapsed)
		}
		got := rqObject(t, r)
		runID, _ := got["runId"].(string)
		if !runs.ValidID(runID) || got["workflowId"] != "rq-slow" || got["message"] == "" {
			t.Fatalf("542 body %s, want message, runId and workflowId", r.Body)
		}
		run := waitRun(t, a, key, runID)
		if run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s after the 542: %s (%s)", runID, run.Status, run.Error)
		}
		if s, ok := run.StepByID("reply"); !ok || s.Status != runs.StepSucceeded {
			t.Errorf("the response step did not run after the timeout: %+v", run.Steps)
		}
	})

	t.Run("Prefer wait=1 caps the wait", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		r := rqCall(t, "POST", trigger("rq-slow55"), []byte(`{}`), "Authorization", bearer, "Prefer", "wait=1")
		elapsed := time.Since(start)
		if r.Status != 542 {
			t.Fatalf("got %s after %s, want 542", r, elapsed)
		}
		if elapsed < 900*time.Millisecond || elapsed > 2300*time.Millisecond {
			t.Errorf("542 after %s, want about 1s (Prefer: wait=1)", elapsed)
		}
		got := rqObject(t, r)
		runID, _ := got["runId"].(string)
		if run := waitRun(t, a, key, runID); run.Status != runs.StatusSucceeded {
			t.Fatalf("run %s: %s (%s)", runID, run.Status, run.Error)
		}
	})

	t.Run("Prefer wait=N never lengthens the workflow's timeout", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		r := rqCall(t, "POST", trigger("rq-slow"), []byte(`{"n":2}`), "Authorization", bearer, "Prefer", "wait=10")
		elapsed := time.Since(start)
		if r.Status != 542 || elapsed < 900*time.Millisecond || elapsed > 2300*time.Millisecond {
			t.Fatalf("got %s after %s, want 542 after about rq-slow's 1s timeout (wait=10 only shortens)", r, elapsed)
		}
	})

	t.Run("form-urlencoded body", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-body"), []byte("name=Ann+Lee&tag=a&tag=b&empty="),
			"Authorization", bearer, "Content-Type", "application/x-www-form-urlencoded")
		if r.Status != http.StatusOK {
			t.Fatalf("got %s, want 200", r)
		}
		want := map[string]any{"body": map[string]any{"name": "Ann Lee", "tag": []any{"a", "b"}, "empty": ""}}
		if got := rqObject(t, r); !rqJSONEqual(got, want) {
			t.Errorf("form body seen by the run: %s, want %v", r.Body, want)
		}
	})

	t.Run("multipart body with a file", func(t *testing.T) {
		t.Parallel()
		file := []byte("hello, world\n\x00\x01binary")
		ct, body := rqMultipart(t, [][2]string{{"name", "Bob"}, {"tag", "x"}, {"tag", "y"}},
			rqFile{Field: "doc", Filename: "hello.txt", ContentType: "text/plain", Data: file})
		r := rqCall(t, "POST", trigger("rq-body"), body, "Authorization", bearer, "Content-Type", ct)
		if r.Status != http.StatusOK {
			t.Fatalf("got %s, want 200", r)
		}
		want := map[string]any{"body": map[string]any{
			"name": "Bob", "tag": []any{"x", "y"},
			"doc": map[string]any{"name": "hello.txt", "mimeType": "text/plain", "size": len(file),
				"data": base64.StdEncoding.EncodeToString(file)},
		}}
		if got := rqObject(t, r); !rqJSONEqual(got, want) {
			t.Errorf("multipart body seen by the run: %s, want %v", r.Body, want)
		}
	})

	t.Run("methods", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "GET", trigger("rq-get")+"?q=via-get", nil, "Authorization", bearer)
		if r.Status != http.StatusOK {
			t.Fatalf("GET on a GET workflow: %s, want 200", r)
		}
		if got := rqObject(t, r); got["q"] != "via-get" || got["method"] != "GET" {
			t.Errorf("GET answer %s, want q via-get and method GET", r.Body)
		}
		for _, c := range []struct{ method, w, allow string }{
			{"POST", "rq-get", "GET"},
			{"PUT", "rq-get", "GET"},
			{"GET", "rq-echo", "POST"},
			{"DELETE", "rq-echo", "POST"},
		} {
			r := rqCall(t, c.method, trigger(c.w), nil, "Authorization", bearer)
			expectError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
			if r.Header.Get("Allow") != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.w, r.Header.Get("Allow"), c.allow)
			}
		}
	})

	t.Run("drop-in SDK path", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", a.base+"/projects/dev/sdk/triggers/rq-echo?q=sdk", []byte(`{"name":"Sdk"}`), "Authorization", bearer)
		if r.Status != http.StatusCreated {
			t.Fatalf("got %s, want 201", r)
		}
		if got := rqObject(t, r); got["name"] != "Sdk" || got["q"] != "sdk" {
			t.Errorf("body %s, want name Sdk and q sdk", r.Body)
		}
		if run := waitRun(t, a, key, r.Header.Get("X-Switchboard-Run-Id")); run.Status != runs.StatusSucceeded {
			t.Errorf("run: %s (%s)", run.Status, run.Error)
		}
	})

	t.Run("no request-triggered workflow is 404", func(t *testing.T) {
		t.Parallel()
		for _, w := range []string{"rq-appev", "rq-does-not-exist"} {
			for _, url := range []string{trigger(w), a.base + "/projects/dev/sdk/triggers/" + w} {
				expectError(t, rqCall(t, "POST", url, []byte(`{}`), "Authorization", bearer), http.StatusNotFound, "workflow_not_found")
			}
		}
	})

	t.Run("workflow not enabled for the user is 403", func(t *testing.T) {
		t.Parallel()
		// Enabled by default: it runs.
		if r := rqCall(t, "POST", trigger("rq-disabled"), []byte(`{}`), "Authorization", bearer); r.Status != http.StatusOK {
			t.Fatalf("before disabling: %s, want 200", r)
		}
		// A second user, with the workflow turned off.
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u2", key, map[string]any{"metadata": map[string]any{}})
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u2/workflows/rq-disabled", key, map[string]any{"enabled": false})
		tok2, err := sys.Token("u2", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := rqCall(t, "POST", trigger("rq-disabled"), []byte(`{}`), "Authorization", "Bearer "+tok2)
		expectError(t, r, http.StatusForbidden, "workflow_not_enabled")
		r = rqCall(t, "POST", trigger("rq-disabled"), []byte(`{}`), "Authorization", "Bearer "+key, "X-Switchboard-User", "u2")
		expectError(t, r, http.StatusForbidden, "workflow_not_enabled")
		// The refusal has a decision record, and no run started for u2.
		d := rqWaitDecision(t, sys.JS, "rq-disabled", runs.ReasonNotEnabled)
		if d.User != "u2" || d.Kind != "REQUEST" {
			t.Errorf("decision record %+v, want user u2, kind REQUEST", d)
		}
		var list runList
		a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs?workflow=rq-disabled&user=u2", key, nil).decode(t, &list)
		if len(list.Runs) != 0 {
			t.Errorf("u2 has runs of a workflow not enabled for them: %+v", list.Runs)
		}
	})

	t.Run("API key with and without X-Switchboard-User", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-echo"), []byte(`{"name":"Key"}`), "Authorization", "Bearer "+key, "X-Switchboard-User", "u1")
		if r.Status != http.StatusCreated {
			t.Fatalf("API key + user: %s, want 201", r)
		}
		if got := rqObject(t, r); got["user"] != "u1" || got["name"] != "Key" {
			t.Errorf("body %s, want user u1", r.Body)
		}
		r = rqCall(t, "POST", trigger("rq-echo"), []byte(`{"name":"Key"}`), "Authorization", "Bearer "+key)
		expectError(t, r, http.StatusBadRequest, "missing_user")
		// A user token cannot act for another user.
		r = rqCall(t, "POST", trigger("rq-echo"), []byte(`{"name":"Key"}`), "Authorization", bearer, "X-Switchboard-User", "u2")
		if r.Status != http.StatusForbidden {
			t.Errorf("user token acting for another user: %s, want 403", r)
		}
		// No credentials at all.
		r = rqCall(t, "POST", trigger("rq-echo"), []byte(`{"name":"Key"}`))
		if r.Status != http.StatusUnauthorized {
			t.Errorf("no Authorization: %s, want 401", r)
		}
	})
}

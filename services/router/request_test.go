package router_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/router"
)

// requestDocs: quote answers from its response step and then calls the
// listener; crm-quote needs a crm credential and answers with its id.
func requestDocs(url string) string {
	return `kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: quote
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 201
    json: {item: "{{ trigger.request.body.item }}", user: "{{ user.id }}"}
  - id: notify
    type: http
    method: POST
    url: ` + url + `/quotes
    json: {event: "{{ trigger.id }}", item: "{{ trigger.request.body.item }}"}
---
kind: Workflow
id: crm-quote
integration: crm
trigger: {type: request}
steps:
  - id: reply
    type: response
    json: {credential: "{{ credential.id }}"}
`
}

// inbox subscribes to a fresh reply inbox on the router's connection, so
// that once the router acked a trigger every reply it sent before is
// already queued here (one connection delivers in order).
func (h *harness) inbox() (string, *nats.Subscription) {
	h.t.Helper()
	inbox := h.srv.NC.NewInbox()
	sub, err := h.srv.NC.SubscribeSync(inbox)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return inbox, sub
}

// nextReply waits for the next reply on sub.
func (h *harness) nextReply(sub *nats.Subscription) *runs.Reply {
	h.t.Helper()
	m, err := sub.NextMsg(waitFor)
	if err != nil {
		h.t.Fatalf("no reply on %s: %v", sub.Subject, err)
	}
	rep, err := runs.DecodeReply(m)
	if err != nil {
		h.t.Fatal(err)
	}
	return rep
}

// TestRequestTrigger: a request trigger's caller gets the run's response;
// one that asked not to wait (respond_async) first gets the decided reply
// with the run id; when nothing runs the caller gets the decided reply with
// the status and reason (a user with two usable credentials: 409) and no
// run starts.
func TestRequestTrigger(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(requestDocs(h.lst.URL))
	h.user("u1", nil)
	h.user("u-nocred", nil)
	h.credential("u-one", "a", "crm", nil)
	h.credential("u-one", "b", "crm", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })
	h.credential("u-two", "a", "crm", nil)
	h.credential("u-two", "b", "crm", nil)

	for _, tc := range []struct {
		name, workflow, user string
		// decided is the decided reply's status and error; 0 means a run
		// started and its id is in the reply.
		status int
		code   string
		// response is the run's answer when one runs.
		response     int
		responseBody string
		// reason is every candidate's skip reason when nothing runs.
		reason string
		// async is Prefer: respond-async: the caller waits for the
		// decision only.
		async bool
	}{
		{name: "runs and answers", workflow: "quote", user: "u1",
			response: http.StatusCreated, responseBody: `{"item":"pen","user":"u1"}`},
		{name: "runs, decided reply first for respond-async", workflow: "quote", user: "u1", async: true,
			response: http.StatusCreated, responseBody: `{"item":"pen","user":"u1"}`},
		{name: "the one usable credential", workflow: "crm-quote", user: "u-one",
			response: http.StatusOK, responseBody: `{"credential":"a"}`},
		{name: "two usable credentials", workflow: "crm-quote", user: "u-two",
			status: http.StatusConflict, code: runs.ReasonCredentialAmbiguous, reason: runs.ReasonCredentialAmbiguous},
		{name: "unknown workflow", workflow: "nope", user: "u1",
			status: http.StatusNotFound, code: runs.ReasonWorkflowNotFound, reason: runs.ReasonWorkflowNotFound},
		{name: "no credential", workflow: "crm-quote", user: "u-nocred",
			status: http.StatusForbidden, code: "workflow_not_enabled", reason: runs.ReasonNoCredential},
		{name: "unknown user", workflow: "quote", user: "ghost",
			status: http.StatusForbidden, code: "workflow_not_enabled", reason: runs.ReasonUnknownUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			inbox, sub := h.inbox()
			ev := requestEvent(tc.workflow, tc.user, `{"item":"pen"}`)
			ev.Reply = inbox
			ev.GetRequest().RespondAsync = tc.async
			seq := h.publish(ev)
			runID := runs.RequestRunID(ev.Id, tc.workflow, tc.user)

			if tc.status != 0 {
				decided := h.nextReply(sub)
				if !decided.Decided {
					t.Fatalf("first reply is not the decided one: %+v", decided)
				}
				if decided.Status != tc.status || decided.Error != tc.code || decided.Message == "" || decided.RunID != "" {
					t.Errorf("decided reply %+v, want status %d error %s with a message and no run", decided, tc.status, tc.code)
				}
				for _, c := range candidates(h.decision(ev.Id)) {
					if c.Outcome != runs.OutcomeSkipped || c.Reason != tc.reason {
						t.Errorf("candidate %+v, want skipped for %s", c, tc.reason)
					}
				}
				h.routed(seq)
				if m, err := sub.NextMsg(0); err == nil {
					t.Errorf("a reply after the decided one: %s %q", m.Header, m.Data)
				}
				if r, ok := h.lastRun(runID); ok {
					t.Errorf("a run started: %+v", r)
				}
				if ids := h.runsOfEvent(ev.Id); len(ids) != 0 {
					t.Errorf("runs queued in RUNS: %v", ids)
				}
				return
			}

			if tc.async {
				// The decided reply comes once the decision is stored.
				decided := h.nextReply(sub)
				if !decided.Decided || decided.RunID != runID || decided.Status != 0 || decided.Error != "" {
					t.Errorf("decided reply %+v, want run %s", decided, runID)
				}
			}
			// A synchronous caller knows the run id already (it is derived
			// from the event) and only waits for the response.
			resp := h.nextReply(sub)
			if resp.Decided || resp.RunID != runID || resp.Status != tc.response ||
				resp.Headers["Content-Type"] != "application/json" || !sameJSON(resp.Body, tc.responseBody) {
				t.Errorf("response %+v (body %s), want %d %s from run %s", resp, resp.Body, tc.response, tc.responseBody, runID)
			}
			r := h.finished(runID)
			if r.Status != runs.StatusSucceeded || r.Workflow != tc.workflow || r.User != tc.user || r.EventID != ev.Id {
				t.Errorf("run %+v", r)
			}
			pages := h.decision(ev.Id)
			if s := pages[0].Summary; s.Ran != 1 || pages[0].Name != tc.workflow {
				t.Errorf("decision %+v, want one run of %s", pages[0], tc.workflow)
			}
			if tc.workflow == "quote" {
				if calls := h.callsOf("/quotes", ev.Id); len(calls) != 1 || calls[0].Body["item"] != "pen" {
					t.Errorf("/quotes calls of the run: %+v", calls)
				}
			}
			h.routed(seq)
			if m, err := sub.NextMsg(0); err == nil {
				t.Errorf("a reply after the response: %s %q", m.Header, m.Data)
			}
		})
	}
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// TestRequestWithoutInbox: a request trigger nobody waits for (Prefer:
// respond-async) still runs to the end.
func TestRequestWithoutInbox(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(requestDocs(h.lst.URL))
	h.user("u1", nil)
	ev := requestEvent("quote", "u1", `{"item":"cup"}`)
	h.publish(ev)
	r := h.finished(runs.RequestRunID(ev.Id, "quote", "u1"))
	if r.Status != runs.StatusSucceeded || len(r.Steps) != 2 {
		t.Fatalf("run %+v", r)
	}
	if calls := h.callsOf("/quotes", ev.Id); len(calls) != 1 || calls[0].Body["item"] != "cup" {
		t.Errorf("/quotes calls of the run: %+v", calls)
	}
}

// TestRequestRetryKeepsItsDecision: a request's run executes in place, on
// the trigger message, so a step retried after a backoff brings the
// trigger back. The run was decided when it started (the caller has its
// id); coming back for the retry must resume that run, whatever changed in
// the directory meanwhile.
func TestRequestRetryKeepsItsDecision(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: crm-flaky
integration: crm
trigger: {type: request}
steps:
  - id: call
    type: http
    method: POST
    url: ` + h.lst.URL + `/crm-flaky
    auth: credential
    json: {event: "{{ trigger.id }}"}
    retry: {attempts: 3, backoff: ` + retryBackoff.String() + `}
  - id: reply
    type: response
    json: {credential: "{{ credential.id }}"}
`)
	h.credential("u1", "a", "crm", nil)
	h.lst.setStatus(func(c call, n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	inbox, sub := h.inbox()
	ev := requestEvent("crm-flaky", "u1", `{}`)
	ev.Reply = inbox
	h.publish(ev)
	runID := runs.RequestRunID(ev.Id, "crm-flaky", "u1")
	eventually(t, "the checkpoint of the failed first attempt", func() (bool, string) {
		r, ok := h.lastRun(runID)
		return ok && r.Pending != nil, fmt.Sprintf("%+v", r)
	})
	// During the backoff the user connects a second account.
	h.credential("u1", "b", "crm", nil)

	for {
		rep := h.nextReply(sub)
		if rep.Decided && rep.Error == "" {
			continue // the same decision, told again: harmless
		}
		if rep.Decided || rep.Status != http.StatusOK || !sameJSON(rep.Body, `{"credential":"a"}`) {
			t.Fatalf("reply %+v (body %s), want the run's response 200 with credential a", rep, rep.Body)
		}
		break
	}
	if r := h.finished(runID); r.Status != runs.StatusSucceeded || r.Credential != "a" {
		t.Errorf("run %s %s with credential %q, want succeeded with a", r.Status, r.Error, r.Credential)
	}
	for _, d := range h.decisions(func(d runs.Decision) bool { return d.EventID == ev.Id }) {
		if d.Summary.Ran != 1 {
			t.Errorf("a decision record of the event says %d runs: %+v", d.Summary.Ran, d.Candidates)
		}
	}
}

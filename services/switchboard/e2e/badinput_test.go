package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// badInputMaxBody is the body limit of the bad-input system.
const badInputMaxBody = 1024

// TestBadInput sends every client mistake of issue 2 to a dev system and
// checks the status, the JSON error code, and that nothing reached the
// TRIGGERS stream. No client mistake may produce a 500.
func TestBadInput(t *testing.T) {
	sys, _ := startDev(t, dev.Options{MaxBody: badInputMaxBody})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	setupWalkthrough(t, a, key, l)
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// A second project with its own signing key and API key.
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a.must(t, http.StatusOK, "PUT", "/v1/projects/other", sys.AdminToken,
		map[string]any{"name": "Other", "userTokenKeys": []string{auth.EncodePublicKeyPEM(&otherKey.PublicKey)}})
	var created struct{ Key string }
	a.must(t, http.StatusCreated, "POST", "/v1/projects/other/api-keys", sys.AdminToken, nil).decode(t, &created)
	otherToken, err := auth.MintUserToken(otherKey, "other", "u1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Tokens that must not authenticate.
	// A validly signed token whose user id is 5,000 bytes long: it once
	// built a subject over the server's control line limit, which closed
	// the process's NATS connection for good.
	longSub, err := auth.MintUserToken(sys.SigningKey, dev.Project, strings.Repeat("u", 5000), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := auth.MintUserToken(sys.SigningKey, dev.Project, "u1", time.Minute, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := auth.MintUserToken(otherKey, dev.Project, "u1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	valid := `{"name":"Contact Created","payload":{"email":"a@b.c"}}`
	big := `{"name":"Contact Created","payload":{"email":"a@b.c","pad":"` + strings.Repeat("x", 2*badInputMaxBody) + `"}}`

	type tc struct {
		name   string
		method string
		path   string
		token  string
		body   any // func() io.Reader for a fresh chunked body per call
		hdr    []string
		status int
		code   string
	}
	events := "/v1/projects/dev/events"
	sdk := "/projects/dev/sdk/events/trigger"
	cases := []tc{
		{"malformed JSON", "POST", events, token, `{"name":"Contact Created",`, nil, 400, "invalid_json"},
		{"malformed JSON on the SDK path", "POST", sdk, token, `{name:`, nil, 400, "invalid_json"},
		{"JSON that is not an object", "POST", events, token, `["Contact Created"]`, nil, 400, "invalid_json"},
		{"name of the wrong type", "POST", events, token, `{"name":42}`, nil, 400, "invalid_json"},
		{"bad occurredAt", "POST", events, token, `{"name":"Contact Created","occurredAt":"yesterday","payload":{"email":"a@b.c"}}`, nil, 400, "invalid_json"},
		{"empty body", "POST", events, token, ``, nil, 400, "invalid_json"},
		{"missing name", "POST", events, token, `{"payload":{"email":"a@b.c"}}`, nil, 400, "missing_field"},
		{"blank name", "POST", events, token, `{"name":"   ","payload":{}}`, nil, 400, "missing_field"},
		{"undeclared event", "POST", events, token, `{"name":"Contact Deleted","payload":{}}`, nil, 404, "unknown_event"},
		{"undeclared event on the SDK path", "POST", sdk, token, `{"name":"Nope"}`, nil, 404, "unknown_event"},
		{"payload failing the schema (missing email)", "POST", events, token, `{"name":"Contact Created","payload":{"mail":"a@b.c"}}`, nil, 400, "validation_failed"},
		{"payload failing the schema (wrong type)", "POST", events, token, `{"name":"Contact Created","payload":{"email":7}}`, nil, 400, "validation_failed"},
		{"payload failing the schema (not an object)", "POST", events, token, `{"name":"Contact Created","payload":"a@b.c"}`, nil, 400, "validation_failed"},
		{"body over the limit", "POST", events, token, big, nil, 413, "payload_too_large"},
		{"chunked body over the limit", "POST", events, token, func() io.Reader { return chunked(big) }, nil, 413, "payload_too_large"},
		{"chunked body over the limit on the SDK path", "POST", sdk, token, func() io.Reader { return chunked(big) }, nil, 413, "payload_too_large"},
		{"apply body over the limit", "POST", "/v1/projects/dev/apply", key, func() io.Reader { return chunked(strings.Repeat("# pad\n", badInputMaxBody)) }, nil, 413, "payload_too_large"},
		{"credential body over the limit", "PUT", "/v1/projects/dev/users/u1/credentials/c9", key, big, nil, 413, "payload_too_large"},
		{"missing token", "POST", events, "", valid, nil, 401, "unauthorized"},
		{"not a bearer token", "POST", events, "", valid, []string{"Authorization", "Basic dTE6cGFzcw=="}, 401, "unauthorized"},
		{"garbage token", "POST", events, "not.a.jwt", valid, nil, 401, "unauthorized"},
		{"expired token", "POST", events, expired, valid, nil, 401, "unauthorized"},
		{"signed token with a 5,000-byte user id", "POST", events, longSub, valid, nil, 401, "unauthorized"},
		{"signed token with a 5,000-byte user id on a request trigger", "POST", "/v1/projects/dev/workflows/quote/trigger", longSub, `{"item":"pen"}`, nil, 401, "unauthorized"},
		{"token signed by another key", "POST", events, forged, valid, nil, 401, "unauthorized"},
		{"unknown API key", "POST", events, "sk_" + strings.Repeat("a", 40), `{"name":"Contact Created","user":"u1","payload":{"email":"a@b.c"}}`, nil, 401, "unauthorized"},
		{"token of project other on dev", "POST", events, otherToken, valid, nil, 403, "forbidden"},
		{"token of project other on dev (SDK path)", "POST", sdk, otherToken, valid, nil, 403, "forbidden"},
		{"token of dev on project other", "POST", "/v1/projects/other/events", token, valid, nil, 403, "forbidden"},
		{"API key of project other on dev", "POST", events, created.Key, `{"name":"Contact Created","user":"u1","payload":{"email":"a@b.c"}}`, nil, 403, "forbidden"},
		{"user token acting for another user", "POST", events, token, `{"name":"Contact Created","user":"u2","payload":{"email":"a@b.c"}}`, nil, 403, "forbidden"},
		{"API key call without user", "POST", events, key, valid, nil, 400, "missing_user"},
		{"API key call without user on the SDK path", "POST", sdk, key, valid, nil, 400, "missing_user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := streamMsgs(t, sys.JS, subjects.StreamTriggers)
			body := c.body
			if f, ok := body.(func() io.Reader); ok {
				body = f()
			}
			r := a.call(t, c.method, c.path, c.token, body, c.hdr...)
			expectError(t, r, c.status, c.code)
			if after := streamMsgs(t, sys.JS, subjects.StreamTriggers); after != before {
				t.Errorf("TRIGGERS went from %d to %d messages: the rejected event was published", before, after)
			}
		})
	}

	t.Run("the same calls done right are accepted", func(t *testing.T) {
		// Guards the cases above against passing for the wrong reason.
		before := streamMsgs(t, sys.JS, subjects.StreamTriggers)
		a.must(t, http.StatusAccepted, "POST", events, token, valid)
		a.must(t, http.StatusAccepted, "POST", sdk, token, valid)
		a.must(t, http.StatusAccepted, "POST", events, key, `{"name":"Contact Created","user":"u1","payload":{"email":"a@b.c"}}`)
		a.must(t, http.StatusAccepted, "POST", events, key, valid, "X-Switchboard-User", "u1")
		if after := streamMsgs(t, sys.JS, subjects.StreamTriggers); after != before+4 {
			t.Errorf("TRIGGERS went from %d to %d messages, want +4", before, after)
		}
	})

	t.Run("apply with invalid documents changes nothing", func(t *testing.T) {
		docs := `kind: AppEvent
name: Invoice Paid
---
kind: Workflow
id: invoice-to-crm
integration: crm
trigger: {type: app_event, event: Invoice Paid}
steps:
  - id: post
    type: http
    method: POST
    url: ` + l.URL + `/invoices
    json: {id: "{{ trigger.payload.id }}"}
---
kind: Workflow
id: broken-expression
trigger: {type: app_event, event: Invoice Paid}
steps:
  - id: post
    type: http
    url: ` + l.URL + `/x
    json: {id: "{{ trigger.payload.( }}"}
---
kind: Workflow
id: Not A Valid Id
trigger: {type: app_event, event: Invoice Paid}
steps: []
---
kind: Gadget
id: what
`
		r := a.call(t, "POST", "/v1/projects/dev/apply", key, docs)
		e := expectError(t, r, 400, "invalid_documents")
		var details []struct {
			Index    int    `json:"index"`
			Kind     string `json:"kind"`
			Name     string `json:"name"`
			Problems []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"problems"`
		}
		if err := json.Unmarshal(e.Error.Details, &details); err != nil {
			t.Fatalf("details are not a list of document errors: %s", r)
		}
		indexes := map[int]bool{}
		for _, d := range details {
			indexes[d.Index] = true
			if len(d.Problems) == 0 || d.Problems[0].Message == "" {
				t.Errorf("document %d has no problem listed: %s", d.Index, r)
			}
		}
		if len(details) != 3 || !indexes[2] || !indexes[3] || !indexes[4] {
			t.Errorf("want one error for each of documents 2, 3 and 4, got %s", r)
		}
		for _, p := range []string{"/v1/projects/dev/workflows/invoice-to-crm", "/v1/projects/dev/workflows/broken-expression"} {
			expectError(t, a.call(t, "GET", p, key, nil), 404, "workflow_not_found")
		}
		// The event declared in the rejected apply was not stored either.
		expectError(t, a.call(t, "POST", events, token, `{"name":"Invoice Paid","payload":{}}`), 404, "unknown_event")

		// A workflow naming an event that is declared nowhere.
		r = a.call(t, "POST", "/v1/projects/dev/apply", key, `kind: Workflow
id: orphan
trigger: {type: app_event, event: Never Declared}
steps:
  - {id: s, type: http, url: "`+l.URL+`"}
`)
		expectError(t, r, 400, "invalid_documents")
		expectError(t, a.call(t, "GET", "/v1/projects/dev/workflows/orphan", key, nil), 404, "workflow_not_found")

		for _, body := range []string{"", "{", "[]", "null", "kind: [", "\t- : -"} {
			r := a.call(t, "POST", "/v1/projects/dev/apply", key, body)
			expectError(t, r, 400, "invalid_documents")
		}
		// Applying is for the server side only.
		expectError(t, a.call(t, "POST", "/v1/projects/dev/apply", token, documents(l.URL)), 403, "forbidden")
	})

	t.Run("no client mistake is a 500", func(t *testing.T) {
		type call struct {
			method, path, token string
			body                any
		}
		calls := []call{
			{"GET", "/v1/projects/dev/runs?status=bogus", key, nil},
			{"GET", "/v1/projects/dev/runs?limit=0", key, nil},
			{"GET", "/v1/projects/dev/runs?limit=abc", key, nil},
			{"GET", "/v1/projects/dev/runs?since=yesterday", key, nil},
			{"GET", "/v1/projects/dev/runs?cursor=%00%01garbage", key, nil},
			{"GET", "/v1/projects/dev/runs?cursor=" + strings.Repeat("A", 300), key, nil},
			{"GET", "/v1/projects/dev/runs?user=u2", token, nil},
			{"GET", "/v1/projects/dev/runs/run_doesnotexist", key, nil},
			{"GET", "/v1/projects/dev/runs/..%2F..%2Fetc", key, nil},
			{"GET", "/v1/projects/dev/events/nope", key, nil},
			{"GET", "/v1/projects/nope/runs", key, nil},
			{"GET", "/v1/projects/dev/workflows/nope", key, nil},
			{"DELETE", "/v1/projects/dev/workflows/nope", key, nil},
			{"DELETE", "/v1/projects/dev/workflows/Bad%20Id", key, nil},
			{"GET", "/v1/projects/dev/workflows", token, nil},
			{"PUT", "/v1/projects/dev/users/u1", key, `[]`},
			{"PUT", "/v1/projects/dev/users/u1", key, `{"metadata":7}`},
			{"PUT", "/v1/projects/dev/users/u1", key, `{"metadata":`},
			{"PUT", "/v1/projects/dev/users/u2", token, `{}`},
			{"PUT", "/v1/projects/dev/users/" + strings.Repeat("u", 300), key, `{}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c9", key, `{}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c9", key, `{"integration":"Not Valid"}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c9", key, `{"integration":"crm","secret":"x"}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c9", key, `{"integration":"crm","status":"MAYBE"}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c9", key, `{"integration":"crm","providerAccountId":5}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c1", key, `{"integration":"other"}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/nope/workflows/" + workflowID, key, `{"enabled":false}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c1/workflows/nope", key, `{"enabled":false}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c1/workflows/" + workflowID, key, `{}`},
			{"PUT", "/v1/projects/dev/users/u1/credentials/c1/workflows/" + workflowID, key, `{"enabled":"yes"}`},
			{"PUT", "/v1/projects/dev/users/u1/workflows/" + workflowID, key, `{"enabled":false}`},
			{"DELETE", "/v1/projects/dev/users/u1/credentials/nope", key, nil},
			{"PUT", "/v1/projects/Bad%20Project", sys.AdminToken, `{}`},
			{"PUT", "/v1/projects/x", sys.AdminToken, `{"userTokenKeys":["not a pem"]}`},
			{"PUT", "/v1/projects/x", sys.AdminToken, `{"userTokenKeys":"x"}`},
			{"PUT", "/v1/projects/x", key, `{}`},
			{"PUT", "/v1/projects/x", "", `{}`},
			{"POST", "/v1/projects/nope/api-keys", sys.AdminToken, nil},
			{"POST", "/v1/projects/dev/api-keys", token, nil},
			{"POST", "/v1/projects/nope/events", sys.AdminToken, valid},
			{"POST", "/v1/projects/dev/events", sys.AdminToken, valid},
			{"POST", "/v1/projects/dev/events", token, `{"name":"` + strings.Repeat("n", 300) + `"}`},
			{"POST", "/v1/projects/dev/events?wait=routed", token, `{"name":"Contact Created"}`},
			{"GET", "/v1/projects/dev/events", key, nil},
			{"PATCH", "/v1/projects/dev/apply", key, nil},
			{"POST", "/v1/nothing/here", key, nil},
		}
		before := streamMsgs(t, sys.JS, subjects.StreamTriggers)
		for _, c := range calls {
			r := a.call(t, c.method, c.path, c.token, c.body)
			if r.Status >= 500 || r.Status < 400 {
				t.Errorf("%s %s %v: got %s, want a 4xx client error", c.method, c.path, c.body, r)
				continue
			}
			if r.errCode() == "" {
				t.Errorf("%s %s: %d without a JSON error code: %s", c.method, c.path, r.Status, r.Body)
			}
		}
		if after := streamMsgs(t, sys.JS, subjects.StreamTriggers); after != before {
			t.Errorf("TRIGGERS went from %d to %d messages", before, after)
		}
	})

	t.Run("odd but acceptable input is not a 500 and gets routed", func(t *testing.T) {
		// Input a lenient server may accept; if it does, the event must be
		// stored and routed like any other, never fail with a 500.
		type odd struct {
			name  string
			token string
			body  string
			hdr   []string
		}
		good := `{"name":"Contact Created","payload":{"email":"a@b.c"}}`
		cases := []odd{
			{"invalid UTF-8 inside the payload", token, "{\"name\":\"Contact Created\",\"payload\":{\"email\":\"\xff\xfe\"}}", nil},
			{"invalid UTF-8 in the user field", key, "{\"name\":\"Contact Created\",\"user\":\"u\xff1\",\"payload\":{\"email\":\"a@b.c\"}}", nil},
			{"invalid UTF-8 in X-Switchboard-Credential", token, good, []string{"X-Switchboard-Credential", "c\xff1"}},
			{"invalid UTF-8 in X-Switchboard-User", key, good, []string{"X-Switchboard-User", "u\xff1"}},
			{"invalid UTF-8 in traceparent", token, good, []string{"traceparent", "00-\xff-01"}},
			{"a user id with dots and spaces", key, `{"name":"Contact Created","user":"jane.doe @example.com","payload":{"email":"a@b.c"}}`, nil},
			{"an unknown credential", token, good, []string{"X-Switchboard-Credential", "nope"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := a.call(t, "POST", "/v1/projects/dev/events", c.token, c.body, c.hdr...)
				switch {
				case r.Status >= 500:
					t.Fatalf("got %s, want a 4xx or a 202", r)
				case r.Status == http.StatusAccepted:
					getDecision(t, a, key, accepted(t, r).ID)
				case r.errCode() == "":
					t.Errorf("%d without a JSON error code: %s", r.Status, r.Body)
				}
			})
		}
	})

	t.Run("bad envelopes on NATS are dead-lettered and the router keeps going", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dead, err := sys.JS.Stream(ctx, subjects.StreamDead)
		if err != nil {
			t.Fatal(err)
		}
		subj := subjects.Trigger(dev.Project, subjects.KindAppEvent, "u1")
		poison := []struct {
			name, contentType, data, reason string
			subject                         string // default subj
		}{
			{"no name", "application/json", `{"kind":"APP_EVENT","user":"u1"}`, "name", ""},
			{"no user", "application/json", `{"kind":"APP_EVENT","name":"Contact Created"}`, "user", ""},
			{"no kind", "application/json", `{"name":"Contact Created","user":"u1"}`, "kind", ""},
			{"not JSON", "application/json", `this is not json`, "json", ""},
			{"not JSON, no content type", "", `hello`, "not JSON", ""},
			{"bad protobuf", "application/protobuf", "\xff\xff\xff\xff", "protobuf", ""},
			{"unknown content type", "text/plain", `{"kind":"APP_EVENT"}`, "Content-Type", ""},
			{"unknown field", "application/json", `{"kind":"APP_EVENT","name":"Contact Created","user":"u1","bogus":1}`, "bogus", ""},
			{"unknown kind", "application/json", `{"kind":"NOPE","name":"Contact Created","user":"u1"}`, "NOPE", ""},
			{"payload not JSON", "application/json", `{"kind":"APP_EVENT","name":"Contact Created","user":"u1","payload":"bm90IGpzb24="}`, "payload", ""},
			{"envelope of another project", "application/json", `{"kind":"APP_EVENT","project":"other","name":"Contact Created","user":"u1"}`, "project", ""},
			{"request trigger without workflow", "application/json", `{"kind":"REQUEST","name":"x","user":"u1"}`, "workflow", ""},
			{"subject without a key", "application/json", `{"kind":"APP_EVENT","name":"Contact Created","user":"u1"}`, "subject", "sb.trigger.dev.app_event"},
		}
		for _, p := range poison {
			t.Run(p.name, func(t *testing.T) {
				beforeDead := streamMsgs(t, sys.JS, subjects.StreamDead)
				subject := subj
				if p.subject != "" {
					subject = p.subject
				}
				m := nats.NewMsg(subject)
				if p.contentType != "" {
					m.Header.Set("Content-Type", p.contentType)
				}
				m.Data = []byte(p.data)
				ack, err := sys.JS.PublishMsg(ctx, m)
				if err != nil {
					t.Fatal(err)
				}
				var dm *jetstream.RawStreamMsg
				eventually(t, 20*time.Second, "the message in DEAD", func() (bool, string) {
					info, err := dead.Info(ctx)
					if err != nil || info.State.Msgs <= beforeDead {
						return false, "DEAD has not grown"
					}
					dm, err = dead.GetMsg(ctx, info.State.LastSeq)
					return err == nil, fmt.Sprint(err)
				})
				if got := dm.Header.Get("Sb-Dead-Subject"); got != subject || string(dm.Data) != p.data {
					t.Fatalf("last DEAD message is from %q with data %q, want ours", got, dm.Data)
				}
				reason := dm.Header.Get("Sb-Dead-Reason")
				if reason == "" || !strings.Contains(strings.ToLower(reason), strings.ToLower(p.reason)) {
					t.Errorf("Sb-Dead-Reason %q, want a reason mentioning %q", reason, p.reason)
				}
				if want := subjects.DeadTrigger(dev.Project); p.subject == "" && dm.Subject != want {
					t.Errorf("dead-lettered on %q, want %q", dm.Subject, want)
				}
				if ack.Stream != subjects.StreamTriggers {
					t.Errorf("published to %s", ack.Stream)
				}
			})
		}

		// The router is still consuming: a good envelope after the bad
		// ones runs.
		const email = "after-poison@example.com"
		m := nats.NewMsg(subj)
		m.Header.Set("Content-Type", "application/json")
		m.Data = []byte(`{"kind":"APP_EVENT","name":"Contact Created","user":"u1","payload":{"email":"` + email + `"}}`)
		if _, err := sys.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := l.waitFor(t, "email", email, 1)[0]
		runID, _ := got.Body["run"].(string)
		if run := waitRun(t, a, key, runID); run.Status != runs.StatusSucceeded {
			t.Fatalf("run after the poison messages: %s (%s)", run.Status, run.Error)
		}
		// Nothing is left pending for the router: the poison messages were
		// terminated, not left for redelivery.
		eventually(t, 20*time.Second, "the router consumer to have nothing pending", func() (bool, string) {
			c, err := sys.JS.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable(dev.Project))
			if err != nil {
				return false, err.Error()
			}
			info, err := c.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			return info.NumPending == 0 && info.NumAckPending == 0,
				"pending " + jsonString(info.NumPending) + ", ack pending " + jsonString(info.NumAckPending)
		})
	})
}

// chunked returns a reader over s that the HTTP client must send chunked
// (it is not a type whose length the client knows).
func chunked(s string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(s); i += 256 {
			if _, err := io.WriteString(pw, s[i:min(i+256, len(s))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

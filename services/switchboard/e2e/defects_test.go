package e2e

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// Tests named after the defects of the hardening issue that an outside
// probe found in a running system. Each one failed on the code before its
// fix; the unit-level tests of the same rules live with their packages
// (pkg/access, pkg/workflow).

// TestDefect1LongUserIDKeepsNATS: a validly signed token with a 5,000-char
// `sub` once built a subject over nats-server's 4,096-byte control line; the
// server closed the connection, nats.go gave up on it, and every role of
// the process was off NATS until a restart. Every place an outside id
// enters must refuse it with a clear 4xx, and the process must stay
// connected and keep working.
func TestDefect1LongUserIDKeepsNATS(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	setupWalkthrough(t, a, key, l)

	long := strings.Repeat("u", 5000)
	longSub, err := auth.MintUserToken(sys.SigningKey, dev.Project, long, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	event := `{"name":"Contact Created","payload":{"email":"a@b.c"}}`
	for _, tc := range []struct {
		name, method, path, token, body string
		hdr                             []string
		status                          int
		code                            string
	}{
		{"token with a 5,000-byte sub", "POST", "/v1/projects/dev/events", longSub, event, nil, 401, "unauthorized"},
		{"token with a 5,000-byte sub on the SDK path", "POST", "/projects/dev/sdk/events/trigger", longSub, event, nil, 401, "unauthorized"},
		{"token with a 5,000-byte sub on a request trigger", "POST", "/v1/projects/dev/workflows/quote/trigger", longSub, `{}`, nil, 401, "unauthorized"},
		{"API key acting for a 5,000-byte user (body)", "POST", "/v1/projects/dev/events", key,
			`{"name":"Contact Created","user":"` + long + `","payload":{"email":"a@b.c"}}`, nil, 400, "invalid_id"},
		{"API key acting for a 5,000-byte user (header)", "POST", "/v1/projects/dev/events", key, event,
			[]string{"X-Switchboard-User", long}, 400, "invalid_id"},
		{"5,000-byte credential header", "POST", "/v1/projects/dev/events", key, event,
			[]string{"X-Switchboard-User", "u1", "X-Switchboard-Credential", long}, 400, "invalid_id"},
		{"5,000-byte user id in a path", "PUT", "/v1/projects/dev/users/" + long, key, `{}`, nil, 400, "invalid_id"},
		{"5,000-byte credential id in a path", "PUT", "/v1/projects/dev/users/u1/credentials/" + long, key,
			`{"integration":"crm","secret":{"accessToken":"x"}}`, nil, 400, "invalid_id"},
		{"5,000-byte event name", "POST", "/v1/projects/dev/events", key,
			`{"name":"` + strings.Repeat("n", 5000) + `","user":"u1","payload":{}}`, nil, 400, "invalid_field"},
		{"5,000-byte workflow id", "POST", "/v1/projects/dev/workflows/" + strings.Repeat("w", 5000) + "/trigger", key, `{}`,
			[]string{"X-Switchboard-User", "u1"}, 404, "workflow_not_found"},
		{"5,000-byte Idempotency-Key", "POST", "/v1/projects/dev/events", key, event,
			[]string{"X-Switchboard-User", "u1", "Idempotency-Key", strings.Repeat("k", 5000)}, 400, "invalid_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, a.call(t, tc.method, tc.path, tc.token, tc.body, tc.hdr...), tc.status, tc.code)
		})
	}

	// The process kept its NATS connection (a fatal close would show as
	// CLOSED; a reconnecting one would fail the event below)…
	if st := sys.NC.Status(); st != nats.CONNECTED {
		t.Fatalf("NATS connection is %v after the long ids", st)
	}
	// …and the whole path still works: an event is accepted and runs.
	acc := accepted(t, a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events", key,
		`{"name":"Contact Created","user":"u1","payload":{"email":"after@long.ids"}}`))
	l.waitFor(t, "event", acc.ID, 1)
}

// TestDefect4SchemaRefOutsideDocument: an AppEvent schema with a `$ref` to
// file:///… made the server read local files at apply time. A reference
// outside the schema's own document is an apply-time error through the API,
// and nothing of the rejected apply is stored.
func TestDefect4SchemaRefOutsideDocument(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	for _, ref := range []string{"file:///etc/passwd", "file:///etc/shadow", "/etc/hostname", "https://127.0.0.1:1/s.json", "other.json#/x"} {
		t.Run(ref, func(t *testing.T) {
			doc := "kind: AppEvent\nname: Probe\nschema: {\"$ref\": \"" + ref + "\"}\n"
			r := a.call(t, "POST", "/v1/projects/dev/apply", sys.APIKey, doc)
			expectError(t, r, http.StatusBadRequest, "invalid_documents")
			if !strings.Contains(r.String(), "points outside the schema") {
				t.Fatalf("the error does not say why: %s", r)
			}
		})
	}
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, a.call(t, "POST", "/v1/projects/dev/events", token, `{"name":"Probe","payload":{}}`), 404, "unknown_event")
}

// TestDefect9ApplyRefusesUnsafeSteps: a response step could answer 1xx (a
// 101 hung the connection) or set framing headers (the body was lost), and
// apply accepted file:// and gopher:// step URLs. All are refused at apply,
// naming the field; the same workflow done right is accepted.
func TestDefect9ApplyRefusesUnsafeSteps(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	wf := func(steps string) string {
		return "kind: Workflow\nid: probe\ntrigger: {type: request}\nsteps: [" + steps + "]\n"
	}
	for _, tc := range []struct{ name, steps, field string }{
		{"response status 101", `{id: r, type: response, status: 101}`, "steps[0].status"},
		{"response status 600", `{id: r, type: response, status: 600}`, "steps[0].status"},
		{"response Content-Length", `{id: r, type: response, headers: {Content-Length: "5"}, body: "hello world"}`, "steps[0].headers.Content-Length"},
		{"response Transfer-Encoding", `{id: r, type: response, headers: {Transfer-Encoding: chunked}, body: "x"}`, "steps[0].headers.Transfer-Encoding"},
		{"file step URL", `{id: s, type: http, url: "file:///etc/passwd"}`, "steps[0].url"},
		{"gopher step URL", `{id: s, type: http, url: "gopher://127.0.0.1:70/1"}`, "steps[0].url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call(t, "POST", "/v1/projects/dev/apply", sys.APIKey, wf(tc.steps))
			expectError(t, r, http.StatusBadRequest, "invalid_documents")
			if !strings.Contains(r.String(), `"field":"`+tc.field+`"`) {
				t.Fatalf("no problem on %s: %s", tc.field, r)
			}
			expectError(t, a.call(t, "GET", "/v1/projects/dev/workflows/probe", sys.APIKey, nil), 404, "workflow_not_found")
		})
	}
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", sys.APIKey,
		wf(`{id: s, type: http, url: "https://example.com/x"}, {id: r, type: response, status: 201, headers: {X-A: b}}`))
}

// TestDefect10MemoryDefaults: RSS followed five times the live heap
// (GOGC=400 and no limit), and RUN_EVENTS kept one subject per run and per
// decision, so the server's per-subject index grew with every run retained
// for 30 days. The binaries now default to a soft memory limit, and the
// history stream has a fixed set of subjects per project however many runs
// it holds.
func TestDefect10MemoryDefaults(t *testing.T) {
	t.Run("runtime defaults", func(t *testing.T) {
		old := debug.SetMemoryLimit(-1)
		oldGC := debug.SetGCPercent(100)
		t.Cleanup(func() { debug.SetMemoryLimit(old); debug.SetGCPercent(oldGC) })
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv("GOGC", "")
		service.TuneRuntime()
		if got := debug.SetMemoryLimit(-1); got != service.DefaultMemoryLimit {
			t.Fatalf("memory limit %d, want the default %d", got, service.DefaultMemoryLimit)
		}
		if got := debug.SetGCPercent(service.DefaultGCPercent); got != service.DefaultGCPercent {
			t.Fatalf("GOGC %d, want %d", got, service.DefaultGCPercent)
		}
	})

	t.Run("history subjects do not grow per run", func(t *testing.T) {
		sys, _ := startDev(t, dev.Options{})
		a := newAPI(sys.HTTPAddr)
		l := newListener(t)
		setupWalkthrough(t, a, sys.APIKey, l)
		const events = 200
		last := ""
		for i := range events {
			acc := accepted(t, a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events", sys.APIKey,
				fmt.Sprintf(`{"name":"Contact Created","user":"u1","payload":{"email":"m%d@x.y"}}`, i)))
			last = acc.ID
		}
		l.waitFor(t, "event", last, 1)
		eventually(t, 20*time.Second, "every run delivered", func() (bool, string) {
			n := len(l.all())
			return n >= events, fmt.Sprintf("%d of %d deliveries", n, events)
		})
		// A delivery comes before its run's final snapshot is stored: wait
		// for the stream to hold a decision and a final snapshot per event.
		var state jetstream.StreamState
		eventually(t, 20*time.Second, "every run recorded", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := sys.JS.Stream(ctx, subjects.StreamRunEvents)
			if err != nil {
				return false, err.Error()
			}
			info, err := s.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			state = info.State
			return state.Msgs >= 2*events, fmt.Sprintf("%d messages", state.Msgs)
		})
		// One run subject and one decision subject per project; the dev
		// system has one project with traffic.
		if state.NumSubjects > 4 {
			t.Fatalf("RUN_EVENTS holds %d messages on %d subjects after %d runs; want a fixed handful of subjects",
				state.Msgs, state.NumSubjects, events)
		}
	})
}

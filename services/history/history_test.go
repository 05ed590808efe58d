package history_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/history"
)

const (
	project    = "acme"
	adminToken = "adm_history_test"
	eventName  = "Contact Created"
)

const documents = `kind: AppEvent
name: Contact Created
---
kind: Workflow
id: wf
enabledByDefault: true
trigger: {type: app_event, event: Contact Created}
steps:
  - id: call
    type: http
    method: POST
    url: http://127.0.0.1:9/
`

// fixture is a started history role on a real NATS and bbolt file, behind
// a real HTTP server on 127.0.0.1, with project acme, its API key and a
// user-token signing key.
type fixture struct {
	base   string
	js     jetstream.JetStream
	apiKey string
	signer *rsa.PrivateKey
	svc    *history.Service
	nc     *nats.Conn
}

func start(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	dir := brokertest.Directory(t, srv.JS)
	f := &fixture{js: srv.JS, nc: srv.NC}
	var err error
	if f.signer, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.apiKey, err = auth.GenerateAPIKey(); err != nil {
		t.Fatal(err)
	}
	_, rev, err := cat.UpdateProject(ctx, project, func(p *catalog.Project) error {
		p.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&f.signer.PublicKey)}
		p.APIKeys = []catalog.APIKey{{ID: "k", Hash: auth.HashAPIKey(f.apiKey), Prefix: f.apiKey[:10], CreatedAt: time.Now()}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := workflow.Parse([]byte(documents), project)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2"} {
		if _, _, err = dir.UpdateUser(ctx, project, u, func(*directory.User) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	pub, err := trigger.New(ctx, trigger.Options{JS: srv.JS})
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = history.New(history.Options{
		NC: srv.NC, JS: srv.JS, Triggers: pub, Catalog: cat, Path: t.TempDir() + "/sub/history.db",
		Access: access.New(access.Options{Catalog: cat, AdminToken: adminToken}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(nil)
	f.svc.Register(e)
	hs, err := httpx.Listen("127.0.0.1:0", e)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve() }()
	// Cleanups run last-in first-out: HTTP stops, then the role, then (the
	// brokertest cleanups registered earlier) NATS.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("http shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := f.svc.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	f.base = "http://" + hs.Addr()
	return f
}

func (f *fixture) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.MintUserToken(f.signer, project, user, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publish stores a RUN_EVENTS record as the router does.
func (f *fixture) publish(t *testing.T, subject, kind string, v any) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Header.Set(runs.HeaderRecord, kind)
	var err error
	if m.Data, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := f.js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// routed records an app event for user that started workflow wf (or
// another workflow id) and the run's final snapshot; it returns the run.
func (f *fixture) routed(t *testing.T, user, wf string, status runs.Status) runs.Run {
	t.Helper()
	ev := &sbv1.TriggerEvent{Id: envelope.NewID(), Project: project, Kind: sbv1.Kind_APP_EVENT, Name: eventName,
		User: user, Payload: []byte(`{"email":"` + user + `@example.com"}`)}
	trigger, err := envelope.MarshalJSON(ev)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	run := runs.Run{ID: runs.ID(ev.Id, wf, user, ""), Project: project, Workflow: wf, User: user, EventID: ev.Id,
		Status: status, Seq: 2, CreatedAt: now, StartedAt: now, FinishedAt: now,
		Steps: []runs.Step{{ID: "call", Type: "http", Status: runs.StepSucceeded, Attempts: 1}}}
	f.publish(t, subjects.Decisions(project), runs.RecordDecision, runs.Decision{
		EventID: ev.Id, Project: project, Kind: subjects.KindAppEvent, Name: eventName, User: user,
		Trigger: trigger, ReceivedAt: now, DecidedAt: now,
		Candidates: []runs.Candidate{{Workflow: wf, User: user, Outcome: runs.OutcomeRan, RunID: run.ID}},
	})
	f.waitApplied(t, f.publish(t, subjects.RunHistory(project), runs.RecordRun, run))
	return run
}

func (f *fixture) waitApplied(t *testing.T, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.svc.Store().WaitSeq(ctx, seq); err != nil {
		t.Fatalf("read model did not reach seq %d: %v", seq, err)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

func (r response) errCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (f *fixture) call(t *testing.T, method, path, token string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestQueries(t *testing.T) {
	f := start(t)
	r1 := f.routed(t, "u1", "wf", runs.StatusSucceeded)
	r2 := f.routed(t, "u2", "wf", runs.StatusFailed)
	u1, u2 := f.token(t, "u1"), f.token(t, "u2")

	listed := func(t *testing.T, r response) []string {
		var page struct {
			Runs []runs.Run `json:"runs"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatalf("not a run page: %s", r)
		}
		var out []string
		for _, run := range page.Runs {
			out = append(out, run.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code                      string   // error code, for errors
		runs                      []string // listed run ids (newest first), for lists
		check                     func(t *testing.T, r response)
	}{
		{name: "list with the API key", path: "/runs", token: f.apiKey, status: 200, runs: []string{r2.ID, r1.ID}},
		{name: "list by workflow", path: "/runs?workflow=wf", token: f.apiKey, status: 200, runs: []string{r2.ID, r1.ID}},
		{name: "list by status", path: "/runs?status=failed", token: f.apiKey, status: 200, runs: []string{r2.ID}},
		{name: "list of another workflow is empty", path: "/runs?workflow=other", token: f.apiKey, status: 200},
		{name: "a user token lists its own runs", path: "/runs", token: u1, status: 200, runs: []string{r1.ID}},
		{name: "a user token cannot list another user's", path: "/runs?user=u2", token: u1, status: 403, code: "forbidden"},
		{name: "bad limit", path: "/runs?limit=0", token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "bad status", path: "/runs?status=done", token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "bad since", path: "/runs?since=yesterday", token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "bad cursor", path: "/runs?cursor=nope", token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "no token", path: "/runs", status: 401, code: "unauthorized"},
		{name: "get a run", path: "/runs/" + r1.ID, token: f.apiKey, status: 200, check: func(t *testing.T, r response) {
			var got runs.Run
			if err := json.Unmarshal(r.body, &got); err != nil || got.ID != r1.ID || got.Status != runs.StatusSucceeded || len(got.Steps) != 1 {
				t.Fatalf("run %s", r)
			}
			// The snapshot carries no trigger; the read model adds the
			// decision's.
			if ev, err := envelope.DecodeJSON(got.Trigger); err != nil || ev.User != "u1" || ev.Name != eventName {
				t.Fatalf("run trigger %s: %v", got.Trigger, err)
			}
		}},
		{name: "a user gets their own run", path: "/runs/" + r1.ID, token: u1, status: 200},
		{name: "another user's run does not exist for a user", path: "/runs/" + r1.ID, token: u2, status: 404, code: "run_not_found"},
		{name: "missing run", path: "/runs/run_missing", token: f.apiKey, status: 404, code: "run_not_found"},
		{name: "get an event's decision", path: "/events/" + r1.EventID, token: f.apiKey, status: 200, check: func(t *testing.T, r response) {
			var d runs.Decision
			if err := json.Unmarshal(r.body, &d); err != nil || d.EventID != r1.EventID || len(d.Candidates) != 1 ||
				d.Candidates[0].RunID != r1.ID || d.Candidates[0].Outcome != runs.OutcomeRan {
				t.Fatalf("decision %s", r)
			}
		}},
		{name: "another user's event does not exist for a user", path: "/events/" + r1.EventID, token: u2, status: 404, code: "event_not_found"},
		{name: "missing event", path: "/events/evt_missing", token: f.apiKey, status: 404, code: "event_not_found"},
		{name: "unknown project", path: "/../nope/runs", token: adminToken, status: 404, code: "project_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			path := "/v1/projects/" + project + tc.path
			if rest, ok := strings.CutPrefix(tc.path, "/../"); ok {
				path = "/v1/projects/" + rest
			}
			r := f.call(t, method, path, tc.token)
			if r.status != tc.status {
				t.Fatalf("got %s, want status %d", r, tc.status)
			}
			if tc.code != "" && r.errCode() != tc.code {
				t.Fatalf("got %s, want code %s", r, tc.code)
			}
			if tc.status == 200 && strings.HasPrefix(tc.path, "/runs") && !strings.HasPrefix(tc.path, "/runs/") {
				if got := listed(t, r); !slices.Equal(got, tc.runs) {
					t.Fatalf("listed %v, want %v", got, tc.runs)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// decideReplays stands in for the router, which this module cannot start:
// it answers every republished trigger that waits on an inbox as the router
// would, with the run a replay of workflow wf starts, or no run for any
// other workflow. The real decision is tested with the router (e2e).
func decideReplays(t *testing.T, nc *nats.Conn, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := js.OrderedConsumer(ctx, subjects.StreamTriggers, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		ev, err := envelope.Decode(m.Data(), m.Headers().Get(envelope.HeaderContentType))
		if err != nil || ev.Reply == "" {
			return
		}
		rep := runs.Reply{Decided: true, Message: "no app_event workflow " + ev.Workflow}
		if ev.Workflow == "wf" {
			rep = runs.Reply{Decided: true, RunIDs: []string{runs.ID(ev.Id, ev.Workflow, ev.User, ev.Credential)}}
		}
		rm, err := rep.Msg(ev.Reply)
		if err == nil {
			_ = nc.PublishMsg(rm)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
}

func TestReplay(t *testing.T) {
	f := start(t)
	decideReplays(t, f.nc, f.js)
	done := f.routed(t, "u1", "wf", runs.StatusFailed)
	gone := f.routed(t, "u1", "removed-since", runs.StatusFailed)
	// A run whose decision record is not in the history.
	orphan := runs.Run{ID: "run_orphan", Project: project, Workflow: "wf", User: "u1", EventID: "evt_unknown",
		Status: runs.StatusFailed, Seq: 1, CreatedAt: time.Now()}
	f.waitApplied(t, f.publish(t, subjects.RunHistory(project), runs.RecordRun, orphan))

	for _, tc := range []struct {
		name, run, token string
		status           int
		code             string
	}{
		{name: "replay with the API key", run: done.ID, token: f.apiKey, status: http.StatusAccepted},
		{name: "a user token may not replay", run: done.ID, token: f.token(t, "u1"), status: http.StatusForbidden, code: "forbidden"},
		{name: "missing run", run: "run_missing", token: f.apiKey, status: http.StatusNotFound, code: "run_not_found"},
		{name: "trigger no longer in the history", run: orphan.ID, token: f.apiKey, status: http.StatusConflict, code: "trigger_not_found"},
		{name: "workflow no longer there", run: gone.ID, token: f.apiKey, status: http.StatusConflict, code: "replay_not_possible"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(t, http.MethodPost, "/v1/projects/"+project+"/runs/"+tc.run+"/replay", tc.token)
			if r.status != tc.status || (tc.code != "" && r.errCode() != tc.code) {
				t.Fatalf("got %s, want %d %s", r, tc.status, tc.code)
			}
			if tc.status != http.StatusAccepted {
				return
			}
			var acc history.ReplayAccepted
			if err := json.Unmarshal(r.body, &acc); err != nil || acc.ReplayOf != tc.run || acc.RunID == "" || acc.EventID == "" {
				t.Fatalf("replay answer %s", r)
			}
			if loc := r.header.Get("Location"); loc != "/v1/projects/"+project+"/runs/"+acc.RunID {
				t.Fatalf("Location %q", loc)
			}
			// The trigger envelope is republished for the router: the same
			// event, named for the one workflow, linked to the old run.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := f.js.Stream(ctx, subjects.StreamTriggers)
			if err != nil {
				t.Fatal(err)
			}
			m, err := st.GetLastMsgForSubject(ctx, subjects.Trigger(project, subjects.KindAppEvent, "u1"))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := envelope.Decode(m.Data, m.Header.Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Id != acc.EventID || ev.ReplayOf != tc.run || ev.Workflow != "wf" || ev.User != "u1" ||
				ev.Name != eventName || string(ev.Payload) != `{"email":"u1@example.com"}` || !strings.HasPrefix(ev.Reply, "_INBOX.") {
				t.Fatalf("republished envelope %v", ev)
			}
			if m.Header.Get(jetstream.MsgIDHeader) != ev.Id {
				t.Fatalf("Nats-Msg-Id %q, want the event id %q", m.Header.Get(jetstream.MsgIDHeader), ev.Id)
			}
			if want := runs.ID(ev.Id, "wf", "u1", ""); acc.RunID != want {
				t.Fatalf("new run id %s, want %s (as the router will derive it)", acc.RunID, want)
			}
		})
	}
}

// TestStopThenStartResumes stops the role (closing the file cleanly) and
// starts a new one on the same file: what it held is served at once.
func TestStopThenStartResumes(t *testing.T) {
	f := start(t)
	run := f.routed(t, "u1", "wf", runs.StatusSucceeded)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.Store().GetRun(project, run.ID); err != nil || got.Status != runs.StatusSucceeded {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	if r := f.call(t, http.MethodGet, "/v1/projects/"+project+"/runs/"+run.ID, f.apiKey); r.status != http.StatusOK {
		t.Fatalf("after restart: %s", r)
	}
}

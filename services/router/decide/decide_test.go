package decide_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

const project = "p"

// docs: workflows on three app events and two request workflows.
//
//	Contact Created: audit (no integration), to-crm (crm)
//	Signup:          opt-in (no integration), crm-opt-in (crm), both off by default
//	Greeting:        greet (no integration)
//	requests:        quote (no integration), crm-quote (crm)
const docs = `kind: AppEvent
name: Contact Created
---
kind: AppEvent
name: Signup
---
kind: AppEvent
name: Greeting
---
kind: AppEvent
name: Nothing
---
kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: audit
trigger: {type: app_event, event: Contact Created}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: to-crm
integration: crm
trigger: {type: app_event, event: Contact Created}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: opt-in
enabledByDefault: false
trigger: {type: app_event, event: Signup}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: crm-opt-in
integration: crm
enabledByDefault: false
trigger: {type: app_event, event: Signup}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: greet
trigger: {type: app_event, event: Greeting}
steps: [{id: s, type: emit, event: Nothing, payload: {}}]
---
kind: Workflow
id: quote
trigger: {type: request}
steps: [{id: r, type: response, json: {ok: true}}]
---
kind: Workflow
id: crm-quote
integration: crm
trigger: {type: request}
steps: [{id: r, type: response, json: {ok: true}}]
`

// directoryReader is the decide.Directory the router gives its deciders,
// over the real directory: not found is ok false, anything else an error.
type directoryReader struct{ dir *directory.Directory }

func (d directoryReader) User(ctx context.Context, p, u string) (*directory.User, bool, error) {
	us, err := d.dir.User(ctx, p, u)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, false, nil
	}
	return us, err == nil, err
}

func (d directoryReader) Credentials(ctx context.Context, p, u string) ([]*directory.Credential, error) {
	return d.dir.Credentials(ctx, p, u)
}

// failing is a directory whose reads fail as storage can (the error is
// not "not found"), for the calls named.
type failing struct {
	decide.Directory
	user, creds bool
}

var errStorage = errors.New("storage unavailable")

func (f failing) User(ctx context.Context, p, u string) (*directory.User, bool, error) {
	if f.user {
		return nil, false, errStorage
	}
	return f.Directory.User(ctx, p, u)
}

func (f failing) Credentials(ctx context.Context, p, u string) ([]*directory.Credential, error) {
	if f.creds {
		return nil, errStorage
	}
	return f.Directory.Credentials(ctx, p, u)
}

// world is the real catalog with docs applied and the real directory with
// the users below, on an embedded NATS.
//
//	u1:     c1, c2 valid; c3 invalid; c4 off for to-crm; m1 of another integration
//	u-bare: no credentials
//	u-off:  audit off and opt-in on for the user; y on for crm-opt-in
//	u-one:  a valid, b invalid
func world(t *testing.T) (*catalog.Catalog, decide.Directory) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cat, dir := applied(ctx, t, docs)
	cred := func(u, c, integration string, fn func(*directory.Credential)) {
		t.Helper()
		_, _, err := dir.UpdateCredential(ctx, project, u, c, func(cr *directory.Credential, _ bool) error {
			cr.Integration = integration
			if fn != nil {
				fn(cr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	user := func(u string, fn func(*directory.User)) {
		t.Helper()
		_, _, err := dir.UpdateUser(ctx, project, u, func(us *directory.User) error {
			if fn != nil {
				fn(us)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	invalid := func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid }
	cred("u1", "c1", "crm", nil)
	cred("u1", "c2", "crm", nil)
	cred("u1", "c3", "crm", invalid)
	cred("u1", "c4", "crm", func(cr *directory.Credential) { cr.Workflows = map[string]bool{"to-crm": false} })
	cred("u1", "m1", "mail", nil)
	user("u-bare", nil)
	user("u-off", func(us *directory.User) { us.Workflows = map[string]bool{"audit": false, "opt-in": true} })
	cred("u-off", "y", "crm", func(cr *directory.Credential) { cr.Workflows = map[string]bool{"crm-opt-in": true} })
	cred("u-one", "a", "crm", nil)
	cred("u-one", "b", "crm", invalid)
	// The directory's own writes are visible to its reads at once.
	return cat, directoryReader{dir}
}

func newDeciders(t *testing.T, cat *catalog.Catalog, dir decide.Directory, maxHops uint32) *decide.Deciders {
	t.Helper()
	d, err := decide.New(decide.Options{Config: cat, Directory: dir, MaxHops: maxHops})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func appEvent(name, user string) *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{Id: "evt-" + strings.ReplaceAll(name, " ", "") + "-" + user, Project: project,
		Kind: sbv1.Kind_APP_EVENT, Name: name, User: user}
}

func request(w, user string) *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{Id: "req-" + w + "-" + user, Project: project, Kind: sbv1.Kind_REQUEST,
		Workflow: w, User: user, Detail: &sbv1.TriggerEvent_Request{Request: &sbv1.Request{Method: http.MethodPost}}}
}

// want describes a candidate: outcome "ran" gets its run id filled in.
type want struct {
	workflow, credential, reason string
}

func ran(w, cred string) want             { return want{workflow: w, credential: cred} }
func skipped(w, cred, reason string) want { return want{w, cred, reason} }

func TestDecide(t *testing.T) {
	cat, dir := world(t)
	d := newDeciders(t, cat, dir, 0)
	with := func(ev *sbv1.TriggerEvent, f func(*sbv1.TriggerEvent)) *sbv1.TriggerEvent { f(ev); return ev }

	for _, tc := range []struct {
		name string
		ev   *sbv1.TriggerEvent
		want []want
		// requestRun: the one run of a request gets the request's run id.
		requestRun bool
	}{
		{name: "one run per workflow and usable credential", ev: appEvent("Contact Created", "u1"), want: []want{
			ran("audit", ""), ran("to-crm", "c1"), ran("to-crm", "c2"),
			skipped("to-crm", "c3", runs.ReasonCredentialInvalid), skipped("to-crm", "c4", runs.ReasonNotEnabled)}},
		{name: "unknown user", ev: appEvent("Contact Created", "ghost"), want: []want{
			skipped("audit", "", runs.ReasonUnknownUser), skipped("to-crm", "", runs.ReasonUnknownUser)}},
		{name: "no credential", ev: appEvent("Contact Created", "u-bare"), want: []want{
			ran("audit", ""), skipped("to-crm", "", runs.ReasonNoCredential)}},
		{name: "named credential", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Credential = "c2" }),
			want: []want{ran("audit", ""), ran("to-crm", "c2")}},
		{name: "named credential unknown", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Credential = "zz" }),
			want: []want{ran("audit", ""), skipped("to-crm", "zz", runs.ReasonCredentialUnknown)}},
		{name: "named credential of another integration", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Credential = "m1" }),
			want: []want{ran("audit", ""), skipped("to-crm", "m1", runs.ReasonCredentialUnknown)}},
		{name: "disabled for the user", ev: appEvent("Contact Created", "u-off"), want: []want{
			skipped("audit", "", runs.ReasonNotEnabled), ran("to-crm", "y")}},
		{name: "off by default", ev: appEvent("Signup", "u1"), want: []want{
			skipped("crm-opt-in", "c1", runs.ReasonNotEnabled), skipped("crm-opt-in", "c2", runs.ReasonNotEnabled),
			skipped("crm-opt-in", "c3", runs.ReasonCredentialInvalid), skipped("crm-opt-in", "c4", runs.ReasonNotEnabled),
			skipped("opt-in", "", runs.ReasonNotEnabled)}},
		{name: "off by default, turned on", ev: appEvent("Signup", "u-off"), want: []want{
			ran("crm-opt-in", "y"), ran("opt-in", "")}},
		{name: "no workflow listens", ev: appEvent("Nothing", "u1"), want: []want{}},
		{name: "replay of one workflow", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Workflow = "audit" }),
			want: []want{ran("audit", "")}},
		{name: "replay of an unknown workflow", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Workflow = "gone" }),
			want: []want{skipped("gone", "", runs.ReasonWorkflowNotFound)}},
		{name: "replay of a workflow on another event", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Workflow = "opt-in" }),
			want: []want{skipped("opt-in", "", runs.ReasonWorkflowNotFound)}},
		{name: "replay of a request workflow as an app event", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Workflow = "quote" }),
			want: []want{skipped("quote", "", runs.ReasonWorkflowNotFound)}},
		{name: "request", ev: request("quote", "u1"), requestRun: true, want: []want{ran("quote", "")}},
		{name: "request with one usable credential", ev: request("crm-quote", "u-one"), requestRun: true, want: []want{
			ran("crm-quote", "a"), skipped("crm-quote", "b", runs.ReasonCredentialInvalid)}},
		{name: "request with several usable credentials", ev: request("crm-quote", "u1"), want: []want{
			skipped("crm-quote", "c1", runs.ReasonCredentialAmbiguous), skipped("crm-quote", "c2", runs.ReasonCredentialAmbiguous),
			skipped("crm-quote", "c3", runs.ReasonCredentialInvalid), skipped("crm-quote", "c4", runs.ReasonCredentialAmbiguous)}},
		{name: "request naming one of several credentials", ev: with(request("crm-quote", "u1"), func(ev *sbv1.TriggerEvent) { ev.Credential = "c4" }),
			requestRun: true, want: []want{ran("crm-quote", "c4")}},
		{name: "request of an unknown workflow", ev: request("gone", "u1"), want: []want{
			skipped("gone", "", runs.ReasonWorkflowNotFound)}},
		{name: "request of an app event workflow", ev: request("audit", "u1"), want: []want{
			skipped("audit", "", runs.ReasonWorkflowNotFound)}},
		{name: "request of an unknown user", ev: request("quote", "ghost"), want: []want{
			skipped("quote", "", runs.ReasonUnknownUser)}},
		{name: "request without a credential", ev: request("crm-quote", "u-bare"), want: []want{
			skipped("crm-quote", "", runs.ReasonNoCredential)}},
		{name: "at the hop limit", ev: with(appEvent("Contact Created", "u-off"), func(ev *sbv1.TriggerEvent) { ev.Hops = decide.DefaultMaxHops }),
			want: []want{skipped("audit", "", runs.ReasonNotEnabled), ran("to-crm", "y")}},
		{name: "above the hop limit", ev: with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Hops = decide.DefaultMaxHops + 1 }),
			// What would have run stops; other reasons stay as they are.
			want: []want{skipped("audit", "", runs.ReasonHopLimit), skipped("to-crm", "c1", runs.ReasonHopLimit),
				skipped("to-crm", "c2", runs.ReasonHopLimit), skipped("to-crm", "c3", runs.ReasonCredentialInvalid),
				skipped("to-crm", "c4", runs.ReasonNotEnabled)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Decide(context.Background(), tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("candidates are nil, want a list (empty when nothing matches)")
			}
			check(t, tc.ev, got, tc.want, tc.requestRun)
		})
	}
}

// check compares candidates with want, run ids and messages included.
func check(t *testing.T, ev *sbv1.TriggerEvent, got []runs.Candidate, want []want, requestRun bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d candidates, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Workflow != w.workflow || g.Credential != w.credential || g.User != ev.User {
			t.Errorf("candidate %d is %s/%s/%s, want %s/%s/%s", i, g.Workflow, g.User, g.Credential, w.workflow, ev.User, w.credential)
		}
		if w.reason == "" {
			id := runs.ID(ev.Id, w.workflow, ev.User, w.credential)
			if requestRun {
				id = runs.RequestRunID(ev.Id, w.workflow, ev.User)
			}
			if g.Outcome != runs.OutcomeRan || g.RunID != id || g.Reason != "" {
				t.Errorf("candidate %d: %+v, want ran as %s", i, g, id)
			}
			continue
		}
		if g.Outcome != runs.OutcomeSkipped || g.Reason != w.reason || g.RunID != "" || g.Message == "" {
			t.Errorf("candidate %d: %+v, want skipped for %s with a message", i, g, w.reason)
		}
	}
}

// TestDecideMessages: the messages of the reasons that need explaining say
// what the caller can do.
func TestDecideMessages(t *testing.T) {
	cat, dir := world(t)
	d := newDeciders(t, cat, dir, 3)
	for _, tc := range []struct {
		name string
		ev   *sbv1.TriggerEvent
		want string
	}{
		{"ambiguous names the credentials and the header", request("crm-quote", "u1"),
			"3 usable crm credentials (c1, c2, c4): choose one with the X-Switchboard-Credential header"},
		{"hop limit names depth and limit", func() *sbv1.TriggerEvent { ev := appEvent("Greeting", "u1"); ev.Hops = 4; return ev }(),
			"4 hops deep (limit 3)"},
		{"invalid credential names its status", appEvent("Contact Created", "u1"), "status is INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cands, err := d.Decide(context.Background(), tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cands {
				if strings.Contains(c.Message, tc.want) {
					return
				}
			}
			t.Errorf("no candidate message says %q: %+v", tc.want, cands)
		})
	}
}

// TestDecideHopLimitOption: MaxHops replaces the default limit.
func TestDecideHopLimitOption(t *testing.T) {
	cat, dir := world(t)
	for _, tc := range []struct {
		name    string
		maxHops uint32
		hops    uint32
		ran     bool
	}{
		{"default limit, at it", 0, decide.DefaultMaxHops, true},
		{"default limit, above it", 0, decide.DefaultMaxHops + 1, false},
		{"limit 1, at it", 1, 1, true},
		{"limit 1, above it", 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := appEvent("Greeting", "u1")
			ev.Hops = tc.hops
			cands, err := newDeciders(t, cat, dir, tc.maxHops).Decide(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			w := ran("greet", "")
			if !tc.ran {
				w = skipped("greet", "", runs.ReasonHopLimit)
			}
			check(t, ev, cands, []want{w}, false)
		})
	}
}

// TestDecideLookupFailure: a directory read that fails is an error (the
// trigger is decided again later), never a skipped candidate; reads a
// decision does not need are not made.
func TestDecideLookupFailure(t *testing.T) {
	cat, dir := world(t)
	for _, tc := range []struct {
		name        string
		user, creds bool
		ev          *sbv1.TriggerEvent
		fails       bool
	}{
		{"user read fails", true, false, appEvent("Contact Created", "u1"), true},
		{"credentials read fails", false, true, appEvent("Contact Created", "u1"), true},
		{"request: credentials read fails", false, true, request("crm-quote", "u-one"), true},
		{"credentials not needed without an integration", false, true, appEvent("Greeting", "u1"), false},
		{"nothing read when no workflow listens", true, true, appEvent("Nothing", "u1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeciders(t, cat, failing{Directory: dir, user: tc.user, creds: tc.creds}, 0)
			cands, err := d.Decide(context.Background(), tc.ev)
			if !tc.fails {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				return
			}
			if !errors.Is(err, errStorage) || errors.Is(err, decide.ErrUnroutable) {
				t.Fatalf("Decide = %+v, %v; want the storage error, not unroutable", cands, err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cat, dir := world(t)
	d := newDeciders(t, cat, dir, 0)
	with := func(ev *sbv1.TriggerEvent, f func(*sbv1.TriggerEvent)) *sbv1.TriggerEvent { f(ev); return ev }
	for _, tc := range []struct {
		name string
		ev   *sbv1.TriggerEvent
		err  string // "" for routable
	}{
		{"app event", appEvent("Contact Created", "u1"), ""},
		{"request", request("quote", "u1"), ""},
		{"kind unspecified", with(appEvent("Contact Created", "u1"), func(ev *sbv1.TriggerEvent) { ev.Kind = sbv1.Kind_KIND_UNSPECIFIED }),
			"kind is required"},
		{"integration", &sbv1.TriggerEvent{Kind: sbv1.Kind_INTEGRATION, Name: "x", User: "u1"}, "not implemented: routing of INTEGRATION triggers"},
		{"integration enabled", &sbv1.TriggerEvent{Kind: sbv1.Kind_INTEGRATION_ENABLED, User: "u1"}, "not implemented: routing of INTEGRATION_ENABLED triggers"},
		{"schedule", &sbv1.TriggerEvent{Kind: sbv1.Kind_SCHEDULE, Workflow: "w"}, "not implemented: routing of SCHEDULE triggers"},
		{"api resource", &sbv1.TriggerEvent{Kind: sbv1.Kind_API_RESOURCE}, "not implemented: routing of API_RESOURCE triggers"},
		{"lifecycle", &sbv1.TriggerEvent{Kind: sbv1.Kind_LIFECYCLE, User: "u1"}, "not implemented: routing of LIFECYCLE triggers"},
		{"a kind the envelope does not know", &sbv1.TriggerEvent{Kind: sbv1.Kind(99)}, "not implemented"},
		{"app event without name", appEvent("", "u1"), "app event without name"},
		{"app event without user", appEvent("Contact Created", ""), "app event without user"},
		{"request without workflow", request("", "u1"), "request trigger without workflow or user"},
		{"request without user", request("quote", ""), "request trigger without workflow or user"},
		{"request without its request", with(request("quote", "u1"), func(ev *sbv1.TriggerEvent) { ev.Detail = nil }),
			"request trigger without its request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Check(tc.ev)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, decide.ErrUnroutable) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Check = %v, want ErrUnroutable saying %q", err, tc.err)
			}
			// Decide refuses what Check refuses, before any lookup.
			if _, err := d.Decide(context.Background(), tc.ev); !errors.Is(err, decide.ErrUnroutable) {
				t.Errorf("Decide = %v, want ErrUnroutable", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	cat, dir := world(t)
	for _, tc := range []struct {
		name string
		opts decide.Options
		ok   bool
	}{
		{"config and directory", decide.Options{Config: cat, Directory: dir}, true},
		{"no config", decide.Options{Directory: dir}, false},
		{"no directory", decide.Options{Config: cat}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decide.New(tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestRequestAnswer(t *testing.T) {
	cand := func(outcome, reason, msg string) runs.Candidate {
		return runs.Candidate{Workflow: "w", User: "u", Outcome: outcome, Reason: reason, Message: msg}
	}
	for _, tc := range []struct {
		name   string
		cands  []runs.Candidate
		status int // 0: a run starts, no answer
		code   string
		msg    []string
	}{
		{name: "a run starts", cands: []runs.Candidate{cand(runs.OutcomeRan, "", "")}},
		{name: "a run starts beside skipped credentials", cands: []runs.Candidate{
			cand(runs.OutcomeSkipped, runs.ReasonCredentialInvalid, "bad"), cand(runs.OutcomeRan, "", "")}},
		{name: "workflow not found", cands: []runs.Candidate{cand(runs.OutcomeSkipped, runs.ReasonWorkflowNotFound, "no request workflow \"w\"")},
			status: http.StatusNotFound, code: runs.ReasonWorkflowNotFound, msg: []string{`no request workflow "w"`}},
		{name: "ambiguous", cands: []runs.Candidate{
			cand(runs.OutcomeSkipped, runs.ReasonCredentialAmbiguous, "choose one"), cand(runs.OutcomeSkipped, runs.ReasonCredentialAmbiguous, "choose one")},
			status: http.StatusConflict, code: runs.ReasonCredentialAmbiguous, msg: []string{"choose one"}},
		{name: "not enabled", cands: []runs.Candidate{cand(runs.OutcomeSkipped, runs.ReasonNotEnabled, "off for this credential")},
			status: http.StatusForbidden, code: "workflow_not_enabled",
			msg: []string{"workflow w is not enabled for user u", "not_enabled: off for this credential"}},
		{name: "every reason listed", cands: []runs.Candidate{
			cand(runs.OutcomeSkipped, runs.ReasonCredentialInvalid, "status is INVALID"), cand(runs.OutcomeSkipped, runs.ReasonNotEnabled, "off")},
			status: http.StatusForbidden, code: "workflow_not_enabled",
			msg: []string{"credential_invalid: status is INVALID; not_enabled: off"}},
		{name: "unknown user", cands: []runs.Candidate{cand(runs.OutcomeSkipped, runs.ReasonUnknownUser, "not connected")},
			status: http.StatusForbidden, code: "workflow_not_enabled", msg: []string{"unknown_user: not connected"}},
		{name: "hop limit", cands: []runs.Candidate{cand(runs.OutcomeSkipped, runs.ReasonHopLimit, "too deep")},
			status: http.StatusForbidden, code: "workflow_not_enabled", msg: []string{"hop_limit: too deep"}},
		{name: "no candidates", cands: nil,
			status: http.StatusForbidden, code: "workflow_not_enabled", msg: []string{"no workflow matches"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, rejected := decide.RequestAnswer("w", "u", tc.cands)
			if tc.status == 0 {
				if rejected {
					t.Fatalf("rejected with %+v, want a run to start", a)
				}
				return
			}
			if !rejected || a.Status != tc.status || a.Code != tc.code {
				t.Fatalf("answer %+v (rejected %v), want %d %s", a, rejected, tc.status, tc.code)
			}
			for _, m := range tc.msg {
				if !strings.Contains(a.Message, m) {
					t.Errorf("message %q does not say %q", a.Message, m)
				}
			}
		})
	}
}

// applied is an embedded NATS whose catalog holds docs (applied and seen)
// and whose directory is empty.
func applied(ctx context.Context, t *testing.T, docs string) (*catalog.Catalog, *directory.Directory) {
	t.Helper()
	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	objs, err := workflow.Parse([]byte(docs), project)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := cat.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	return cat, brokertest.Directory(t, srv.JS)
}

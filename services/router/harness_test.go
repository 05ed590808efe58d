package router_test

// The harness every router test runs on: a real embedded nats-server with
// every stream and bucket provisioned (brokertest), the real catalog and
// directory following their buckets, a started router.Service, and a local
// HTTP listener for the http steps. Tests observe the router only from
// outside: what it writes to the streams (the history log in RUN_EVENTS,
// RUNS, DEAD), what it answers on core NATS, and the calls the listener
// gets.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/egress"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/testlog"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// project is the one project every harness creates.
const project = "p"

// waitFor bounds every wait for a condition. It is a deadline for a
// condition that holds within milliseconds on a healthy machine, not a
// performance threshold: it only keeps a broken router from hanging the
// test run.
const waitFor = 20 * time.Second

type harness struct {
	t   *testing.T
	srv *brokertest.Server
	cat *catalog.Catalog
	dir *directory.Directory
	rt  *routerProc
	lst *listener
	// hist is the history read model the harness runs.
	hist *history.Store
}

// routerProc is the router the harness runs, which a test may stop and
// start again (a restart); shared by every subtest's copy of the harness.
type routerProc struct {
	opts router.Options
	mu   sync.Mutex
	svc  *router.Service // nil while stopped
}

// newHarness starts NATS, the catalog with project p in it, the directory,
// the listener, the run-history read model and a router with opts (NC, JS,
// Catalog, Directory, Triggers, Blobs, HTTPClient and Logger are filled
// in). The project exists before the router starts, so its executor is
// there from the first run on.
func newHarness(t *testing.T, opts router.Options) *harness {
	t.Helper()
	h := &harness{t: t, srv: brokertest.Start(t)}
	h.cat = brokertest.Catalog(t, h.srv.JS)
	h.dir = brokertest.Directory(t, h.srv.JS)
	h.lst = newListener(t)
	ctx := h.ctx()
	_, rev, err := h.cat.UpdateProject(ctx, project, func(*catalog.Project) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	h.waitRevision(rev)

	opts.NC, opts.JS, opts.Catalog, opts.Directory = h.srv.NC, h.srv.JS, h.cat, h.dir
	budgets := wire.FromConn(h.srv.NC)
	if opts.Triggers, err = trigger.New(ctx, trigger.Options{JS: h.srv.JS, Budgets: budgets}); err != nil {
		t.Fatal(err)
	}
	if opts.Blobs, err = blob.Open(ctx, blob.Options{JS: h.srv.JS, Budgets: budgets}); err != nil {
		t.Fatal(err)
	}
	// Loopback only: the listener is on 127.0.0.1, and the guard for every
	// other address class stays on as in production.
	opts.HTTPClient = egress.NewClient(egress.Options{AllowLoopback: true})
	opts.Logger = testLogger(t)
	h.startHistory()
	h.rt = &routerProc{opts: opts}
	h.startRouter()
	// Registered after brokertest's cleanups, so it runs before them: the
	// router stops while NATS is still up.
	t.Cleanup(h.stopRouter)
	return h
}

// startRouter starts a router with the harness's options, as a process
// starting (again) would.
func (h *harness) startRouter() {
	h.t.Helper()
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	if h.rt.svc != nil {
		h.t.Fatal("the router is running already")
	}
	svc, err := router.New(h.rt.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := svc.Start(h.ctx()); err != nil {
		h.t.Fatal(err)
	}
	h.rt.svc = svc
}

// stopRouter stops the router, letting in-flight work finish.
func (h *harness) stopRouter() {
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	if h.rt.svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.rt.svc.Stop(ctx); err != nil {
		h.t.Errorf("router stop: %v", err)
	}
	h.rt.svc = nil
}

// startHistory runs the run-history read model beside the router, as every
// deployment does: it follows RUN_EVENTS and answers the executor's
// question whether a run already finished (pkg/history's ServeRunState).
func (h *harness) startHistory() {
	t := h.t
	store, err := history.Open(h.ctx(), history.Options{Path: filepath.Join(t.TempDir(), "history.db"), JS: h.srv.JS})
	if err != nil {
		t.Fatal(err)
	}
	h.hist = store
	ctx, stop := context.WithCancel(context.Background())
	if err := store.ServeRunState(ctx, h.srv.NC); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- store.Run(ctx) }()
	// Stopped after the router (cleanups run last-in first-out).
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("history: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("history close: %v", err)
		}
	})
}

// on is h for subtest t: failures and cleanups go to t.
func (h *harness) on(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// ctx is a context bounded by waitFor, cancelled when the test ends.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	h.t.Cleanup(cancel)
	return ctx
}

func (h *harness) waitRevision(rev uint64) {
	h.t.Helper()
	if err := h.cat.WaitRevision(h.ctx(), rev); err != nil {
		h.t.Fatal(err)
	}
}

// apply parses documents for project p and stores them, as POST …/apply
// does, and waits until the router's catalog copy has them.
func (h *harness) apply(docs string) {
	h.t.Helper()
	objs, err := workflow.Parse([]byte(docs), project)
	if err != nil {
		h.t.Fatalf("parse: %v", err)
	}
	rev, err := h.cat.Apply(h.ctx(), objs)
	if err != nil {
		h.t.Fatal(err)
	}
	h.waitRevision(rev)
}

// The connected users and credentials go to the store the router reads
// them from, pkg/directory; keeping every write behind these two helpers
// leaves one place to change should that move again.

// user creates (or changes) connected user id; fn may be nil.
func (h *harness) user(id string, fn func(*directory.User)) {
	h.t.Helper()
	_, rev, err := h.dir.UpdateUser(h.ctx(), project, id, func(u *directory.User) error {
		if fn != nil {
			fn(u)
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.waitDirectory(rev)
}

// credential connects credential id of user for integration, with a bearer
// token named after it ("tok-<id>"); fn may change it further.
func (h *harness) credential(user, id, integration string, fn func(*directory.Credential)) {
	h.t.Helper()
	_, rev, err := h.dir.UpdateCredential(h.ctx(), project, user, id, func(cr *directory.Credential, _ bool) error {
		cr.Integration = integration
		cr.Secret = map[string]any{"accessToken": "tok-" + id}
		if fn != nil {
			fn(cr)
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.waitDirectory(rev)
}

// waitDirectory waits until the directory the router reads reflects rev.
// Its own writes do at once; waiting anyway keeps the tests right should
// the router get a directory of its own.
func (h *harness) waitDirectory(rev uint64) {
	h.t.Helper()
	if err := h.dir.WaitRevision(h.ctx(), rev); err != nil {
		h.t.Fatal(err)
	}
}

// appEvent is an App Event envelope of project p with a fresh id.
func appEvent(name, user string, payload string) *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{
		Id: envelope.NewID(), Project: project, Kind: sbv1.Kind_APP_EVENT, Name: name, User: user,
		Payload: []byte(payload), OccurredAt: timestamppb.Now(), ReceivedAt: timestamppb.Now(),
	}
}

// requestEvent is a Request trigger envelope of workflow w with a JSON body.
func requestEvent(w, user, body string) *sbv1.TriggerEvent {
	return &sbv1.TriggerEvent{
		Id: envelope.NewID(), Project: project, Kind: sbv1.Kind_REQUEST, Workflow: w, User: user,
		ReceivedAt: timestamppb.Now(),
		Detail: &sbv1.TriggerEvent_Request{Request: &sbv1.Request{
			Method: http.MethodPost, Body: []byte(body), ContentType: "application/json",
		}},
	}
}

// triggerSubject is where ingress would publish ev.
func triggerSubject(ev *sbv1.TriggerEvent) string {
	switch ev.Kind {
	case sbv1.Kind_REQUEST:
		return subjects.Trigger(project, subjects.KindRequest, ev.Workflow)
	case sbv1.Kind_SCHEDULE:
		return subjects.Trigger(project, subjects.KindSchedule, "k")
	default:
		return subjects.Trigger(project, subjects.KindAppEvent, "k")
	}
}

// publish stores ev in TRIGGERS as ingress does (protobuf, Nats-Msg-Id =
// event id) and returns its stream sequence.
func (h *harness) publish(ev *sbv1.TriggerEvent) uint64 {
	h.t.Helper()
	m, err := envelope.NewMsg(triggerSubject(ev), ev)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.publishMsg(m, ev.Id)
}

// publishMsg stores m in its stream with Nats-Msg-Id id.
func (h *harness) publishMsg(m *nats.Msg, id string) uint64 {
	h.t.Helper()
	ack, err := h.srv.JS.PublishMsg(h.ctx(), m, jetstream.WithMsgID(id))
	if err != nil {
		h.t.Fatalf("publish %s: %v", m.Subject, err)
	}
	if ack.Duplicate {
		h.t.Fatalf("publish %s: Nats-Msg-Id %s was a duplicate", m.Subject, id)
	}
	return ack.Sequence
}

// eventually polls cond until it holds or waitFor passes; why says what
// was seen last, for the failure message.
func eventually(t testing.TB, what string, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", waitFor, what, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stored returns every message of stream whose subject matches filter
// (wildcards allowed), oldest first.
func (h *harness) stored(stream, filter string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	s, err := h.srv.JS.Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			h.t.Fatalf("get %s from %s: %v", filter, stream, err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// decision waits for every page of event id's decision record and returns
// them in page order.
func (h *harness) decision(id string) []runs.Decision {
	h.t.Helper()
	var pages []runs.Decision
	eventually(h.t, "the decision record of "+id, func() (bool, string) {
		pages = h.decisions(func(d runs.Decision) bool { return d.EventID == id })
		if len(pages) == 0 {
			return false, "no page yet"
		}
		// A decision written as it goes counts more pages in each later
		// record; its last record has the whole count.
		want := 0
		for _, p := range pages {
			want = max(want, p.Summary.Pages)
		}
		return len(pages) >= want, fmt.Sprintf("%d of %d pages", len(pages), want)
	})
	slices.SortFunc(pages, func(a, b runs.Decision) int { return a.Page - b.Page })
	return pages
}

// decisions returns the pages of every decision record stored so far that
// keep holds for.
func (h *harness) decisions(keep func(runs.Decision) bool) []runs.Decision {
	h.t.Helper()
	var out []runs.Decision
	for _, m := range h.stored(subjects.StreamRunEvents, subjects.Decisions(project)) {
		if got := m.Header.Get(runs.HeaderRecord); got != runs.RecordDecision {
			h.t.Fatalf("decision record with %s = %q", runs.HeaderRecord, got)
		}
		var d runs.Decision
		if err := json.Unmarshal(m.Data, &d); err != nil {
			h.t.Fatalf("decision record is not JSON: %v", err)
		}
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

// candidates is every candidate of a decision, across its pages.
func candidates(pages []runs.Decision) []runs.Candidate {
	var out []runs.Candidate
	for _, p := range pages {
		out = append(out, p.Candidates...)
	}
	return out
}

// lastRun is the run's latest snapshot on the history log (the highest
// Seq), if it has one.
func (h *harness) lastRun(id string) (*runs.Run, bool) {
	h.t.Helper()
	snaps := h.snapshots(id)
	if len(snaps) == 0 {
		return nil, false
	}
	last := slices.MaxFunc(snaps, func(a, b runs.Run) int { return a.Seq - b.Seq })
	return &last, true
}

// snapshots is every snapshot of run id on the history log, in stream
// order.
func (h *harness) snapshots(id string) []runs.Run {
	h.t.Helper()
	var out []runs.Run
	for _, m := range h.stored(subjects.StreamRunEvents, subjects.RunHistory(project)) {
		var r runs.Run
		if err := json.Unmarshal(m.Data, &r); err != nil {
			h.t.Fatalf("run snapshot is not JSON: %v", err)
		}
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// finished waits until run id has a final snapshot and returns it.
func (h *harness) finished(id string) *runs.Run {
	h.t.Helper()
	var r *runs.Run
	eventually(h.t, "run "+id+" to finish", func() (bool, string) {
		var ok bool
		if r, ok = h.lastRun(id); !ok {
			return false, "no snapshot"
		}
		return r.Status.Terminal(), "status " + string(r.Status)
	})
	return r
}

// settled waits until consumer durable on stream has acknowledged (or
// terminated) every message up to stream sequence seq: the handler is done
// with it and everything it stored before settling is in the streams.
func (h *harness) settled(stream, durable string, seq uint64) {
	h.t.Helper()
	eventually(h.t, fmt.Sprintf("%s to settle %s message %d", durable, stream, seq), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		c, err := h.srv.JS.Consumer(ctx, stream, durable)
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.AckFloor.Stream >= seq, fmt.Sprintf("ack floor %d, pending %d, unacked %d",
			info.AckFloor.Stream, info.NumPending, info.NumAckPending)
	})
}

// routed waits until the router is done with trigger seq.
func (h *harness) routed(seq uint64) {
	h.t.Helper()
	h.settled(subjects.StreamTriggers, router.RouterDurable(project), seq)
}

// runMessages is the RUNS messages of workflow w.
func (h *harness) runMessages(w string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	return h.stored(subjects.StreamRuns, subjects.Run(project, w))
}

// ---- the listener the http steps call -----------------------------------

// call is one request the listener got.
type call struct {
	Path string
	Auth string
	Body map[string]any
}

// listener is a real HTTP server on 127.0.0.1. It answers 200 {"ok":true}
// unless status says otherwise for call c, the n-th (from 1) of its path.
type listener struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []call
	status func(c call, n int) int
	// onCall, if set, runs for every call before it is answered.
	onCall func(c call)
}

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		c := call{Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
		_ = json.Unmarshal(raw, &c.Body)
		l.mu.Lock()
		l.calls = append(l.calls, c)
		n := 0
		for _, x := range l.calls {
			if x.Path == c.Path {
				n++
			}
		}
		status, onCall := http.StatusOK, l.onCall
		if l.status != nil {
			status = l.status(c, n)
		}
		l.mu.Unlock()
		if onCall != nil {
			onCall(c)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":` + strconv.FormatBool(status < 300) + `}`))
	}))
	t.Cleanup(l.Close)
	return l
}

// setStatus scripts the answers: see listener.status.
func (l *listener) setStatus(f func(c call, n int) int) {
	l.mu.Lock()
	l.status = f
	l.mu.Unlock()
}

// at returns the calls of path so far.
func (l *listener) at(path string) []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []call
	for _, c := range l.calls {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// waitCalls waits until path has had at least n calls and returns them.
func (l *listener) waitCalls(t testing.TB, path string, n int) []call {
	t.Helper()
	var got []call
	eventually(t, fmt.Sprintf("%d call(s) of %s", n, path), func() (bool, string) {
		got = l.at(path)
		return len(got) >= n, fmt.Sprintf("%d so far", len(got))
	})
	return got
}

// ---- logs ---------------------------------------------------------------

// testLogger sends warnings and errors to the test log until the test ends.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// deadReason is the reason header of a dead-lettered copy.
func deadReason(m *jetstream.RawStreamMsg) string { return m.Header.Get(consume.HeaderDeadReason) }

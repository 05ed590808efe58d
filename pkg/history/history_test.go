package history

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// ---- fixtures -------------------------------------------------------------

var base = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func openStore(t testing.TB, path string, js jetstream.JetStream, log *slog.Logger) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: path, JS: js, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// follow runs s.Run in the background; stop cancels it and checks it
// returned nil. Cleanup stops it too.
func follow(t testing.TB, s *Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitSeq(t testing.TB, s *Store, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitSeq(ctx, seq); err != nil {
		t.Fatalf("WaitSeq(%d): %v (at %d)", seq, err, s.LastSeq())
	}
}

func publishRaw(t testing.TB, js jetstream.JetStream, subject, record string, data []byte) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	if record != "" {
		m.Header.Set(runs.HeaderRecord, record)
	}
	m.Data = data
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pubRun(t testing.TB, js jetstream.JetStream, r runs.Run) uint64 {
	t.Helper()
	return publishRaw(t, js, subjects.RunHistory(r.Project), runs.RecordRun, mustJSON(t, r))
}

func pubDecision(t testing.TB, js jetstream.JetStream, d runs.Decision) uint64 {
	t.Helper()
	return publishRaw(t, js, subjects.Decisions(d.Project), runs.RecordDecision, mustJSON(t, d))
}

// mkRun builds a snapshot; the id is derived like the router does.
func mkRun(project, workflow, user string, status runs.Status, seq int, created time.Time) runs.Run {
	ev := fmt.Sprintf("evt-%s-%s-%s-%d", project, workflow, user, created.UnixNano())
	return runs.Run{
		ID: runs.ID(ev, workflow, user, ""), Project: project, Workflow: workflow, User: user,
		EventID: ev, Status: status, Seq: seq, CreatedAt: created,
		Steps: []runs.Step{{ID: "s1", Type: "http", Status: runs.StepSucceeded, Attempts: 1}},
	}
}

func ids(rs []*runs.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// listAll pages through f with a small page size.
func listAll(t testing.TB, s *Store, f Filter) []*runs.Run {
	t.Helper()
	var all []*runs.Run
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("paging does not end")
		}
		p, err := s.ListRuns(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Runs...)
		if p.NextCursor == "" {
			return all
		}
		f.Cursor = p.NextCursor
	}
}

// ---- tests ----------------------------------------------------------------

func TestDecisionThenSnapshot(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)

	received := base
	trigger := json.RawMessage(`{"kind":"app_event","name":"order.created"}`)
	runA := runs.ID("evt-1", "wf-a", "u1", "cred-1")
	runB := runs.ID("evt-1", "wf-b", "u1", "")
	d := runs.Decision{
		EventID: "evt-1", Project: "acme", Kind: subjects.KindAppEvent, Name: "order.created", User: "u1",
		Trigger: trigger, ReceivedAt: received, DecidedAt: received.Add(time.Millisecond),
		Candidates: []runs.Candidate{
			{Workflow: "wf-a", User: "u1", Credential: "cred-1", Outcome: runs.OutcomeRan, RunID: runA},
			{Workflow: "wf-b", Outcome: runs.OutcomeRan, RunID: runB}, // user from the decision
			{Workflow: "wf-c", User: "u1", Outcome: runs.OutcomeSkipped, Reason: runs.ReasonNotEnabled},
		},
	}
	waitSeq(t, s, pubDecision(t, js, d))

	gotD, err := s.GetDecision("acme", "evt-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(gotD.Candidates) != 3 || !gotD.ReceivedAt.Equal(received) {
		t.Fatalf("decision = %+v", gotD)
	}
	a, err := s.GetRun("acme", runA)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != runs.StatusQueued || a.Seq != 0 || !a.CreatedAt.Equal(received) ||
		a.Workflow != "wf-a" || a.User != "u1" || a.Credential != "cred-1" || a.EventID != "evt-1" ||
		a.Project != "acme" || !bytes.Equal(a.Trigger, trigger) {
		t.Fatalf("queued run = %+v", a)
	}
	if b, err := s.GetRun("acme", runB); err != nil || b.User != "u1" || b.Workflow != "wf-b" {
		t.Fatalf("queued run B = %+v, %v", b, err)
	}
	if p, _ := s.ListRuns(Filter{Project: "acme"}); len(p.Runs) != 2 {
		t.Fatalf("want 2 runs, got %v", ids(p.Runs))
	}

	// Another run created in between, then A's first snapshot with a later
	// CreatedAt: A keeps its position (first-seen CreatedAt).
	other := mkRun("acme", "wf-a", "u2", runs.StatusRunning, 1, received.Add(time.Second))
	pubRun(t, js, other)
	snap := runs.Run{
		ID: runA, Project: "acme", Workflow: "wf-a", User: "u1", Credential: "cred-1", EventID: "evt-1",
		Status: runs.StatusRunning, Seq: 1, Trigger: trigger,
		CreatedAt: received.Add(2 * time.Second), StartedAt: received.Add(2 * time.Second),
	}
	seq := pubRun(t, js, snap)
	// The decision again (redelivery) must not reset A to queued.
	seq2 := pubDecision(t, js, d)
	waitSeq(t, s, max(seq, seq2))

	a, err = s.GetRun("acme", runA)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != runs.StatusRunning || a.Seq != 1 || !a.CreatedAt.Equal(snap.CreatedAt) {
		t.Fatalf("after snapshot: %+v", a)
	}
	p, err := s.ListRuns(Filter{Project: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	// A and B share their CreatedAt; the run id breaks the tie (descending).
	if want := []string{other.ID, max(runA, runB), min(runA, runB)}; !slices.Equal(ids(p.Runs), want) {
		t.Fatalf("order = %v, want %v", ids(p.Runs), want)
	}
	for _, f := range []Filter{{Project: "acme", Workflow: "wf-a"}, {Project: "acme", User: "u1"}} {
		p, _ := s.ListRuns(f)
		n := 0
		for _, r := range p.Runs {
			if r.ID == runA {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%+v: run A listed %d times: %v", f, n, ids(p.Runs))
		}
	}
	if got, _ := s.ListRuns(Filter{Project: "acme", Status: runs.StatusQueued}); !slices.Equal(ids(got.Runs), []string{runB}) {
		t.Fatalf("queued = %v", ids(got.Runs))
	}

	// A snapshot without the trigger (the executor never repeats it): the
	// run still shows the trigger of the decision that started it.
	final := snap
	final.Trigger, final.Status, final.Seq = nil, runs.StatusSucceeded, 2
	waitSeq(t, s, pubRun(t, js, final))
	if a, err := s.GetRun("acme", runA); err != nil || a.Status != runs.StatusSucceeded || !bytes.Equal(a.Trigger, trigger) {
		t.Fatalf("finished run without its trigger: %+v %v", a, err)
	}
}

func TestStaleSnapshotIgnored(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)

	r := mkRun("acme", "wf", "u", runs.StatusRunning, 1, base)
	pubRun(t, js, r)
	r3 := r
	r3.Status, r3.Seq = runs.StatusSucceeded, 3
	pubRun(t, js, r3)
	r2 := r
	r2.Status, r2.Seq = runs.StatusRunning, 2
	waitSeq(t, s, pubRun(t, js, r2))

	got, err := s.GetRun("acme", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || got.Status != runs.StatusSucceeded {
		t.Fatalf("got seq %d status %s", got.Seq, got.Status)
	}
	if p, _ := s.ListRuns(Filter{Project: "acme", Status: runs.StatusRunning}); len(p.Runs) != 0 {
		t.Fatalf("status index kept a stale status: %v", ids(p.Runs))
	}
	if _, err := s.GetRun("acme", "run_missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
	if _, err := s.GetDecision("acme", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing decision: %v", err)
	}
}

// seedFilterFixture publishes 24 runs of project acme over 2 workflows, 3
// users and 3 statuses, one minute apart, plus a few of another project.
func seedFilterFixture(t *testing.T, js jetstream.JetStream) (all []runs.Run, last uint64) {
	wfs := []string{"wf-a", "wf-b"}
	users := []string{"u1", "u2", "u3"}
	statuses := []runs.Status{runs.StatusSucceeded, runs.StatusFailed, runs.StatusRunning}
	for i := range 24 {
		r := mkRun("acme", wfs[i%2], users[i%3], statuses[(i/2)%3], 1, base.Add(time.Duration(i)*time.Minute))
		all = append(all, r)
		last = pubRun(t, js, r)
	}
	for i := range 3 {
		last = pubRun(t, js, mkRun("other", "wf-a", "u1", runs.StatusSucceeded, 1, base.Add(time.Duration(i)*time.Minute)))
	}
	return all, last
}

func TestListFilters(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)
	all, last := seedFilterFixture(t, js)
	waitSeq(t, s, last)

	expect := func(keep func(r runs.Run) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				out = append(out, all[i].ID)
			}
		}
		return out
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		f    Filter
		keep func(r runs.Run) bool
	}{
		{"all", Filter{}, func(runs.Run) bool { return true }},
		{"workflow", Filter{Workflow: "wf-a"}, func(r runs.Run) bool { return r.Workflow == "wf-a" }},
		{"user", Filter{User: "u2"}, func(r runs.Run) bool { return r.User == "u2" }},
		{"workflow+user", Filter{Workflow: "wf-b", User: "u3"}, func(r runs.Run) bool { return r.Workflow == "wf-b" && r.User == "u3" }},
		{"status", Filter{Status: runs.StatusFailed}, func(r runs.Run) bool { return r.Status == runs.StatusFailed }},
		{"status+user", Filter{Status: runs.StatusRunning, User: "u1"}, func(r runs.Run) bool {
			return r.Status == runs.StatusRunning && r.User == "u1"
		}},
		{"since inclusive", Filter{Since: at(20)}, func(r runs.Run) bool { return !r.CreatedAt.Before(at(20)) }},
		{"until exclusive", Filter{Until: at(3)}, func(r runs.Run) bool { return r.CreatedAt.Before(at(3)) }},
		{"since+until+workflow", Filter{Workflow: "wf-a", Since: at(5), Until: at(15)}, func(r runs.Run) bool {
			return r.Workflow == "wf-a" && !r.CreatedAt.Before(at(5)) && r.CreatedAt.Before(at(15))
		}},
		{"since after until", Filter{Since: at(10), Until: at(5)}, func(runs.Run) bool { return false }},
		{"unknown workflow", Filter{Workflow: "nope"}, func(runs.Run) bool { return false }},
		{"unknown status", Filter{Status: "paused"}, func(runs.Run) bool { return false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Project = "acme"
			f.Limit = MaxLimit
			p, err := s.ListRuns(f)
			if err != nil {
				t.Fatal(err)
			}
			want := expect(tc.keep)
			if got := ids(p.Runs); !slices.Equal(got, want) {
				t.Fatalf("got  %v\nwant %v", got, want)
			}
			if p.NextCursor != "" {
				t.Fatalf("unexpected cursor on a complete page")
			}
			// Paged by 2, the same rows come back.
			f.Limit = 2
			if got := ids(listAll(t, s, f)); !slices.Equal(got, want) {
				t.Fatalf("paged got %v\nwant %v", got, want)
			}
		})
	}

	if _, err := s.ListRuns(Filter{}); !errors.Is(err, ErrBadFilter) {
		t.Fatalf("no project: %v", err)
	}
	p, err := s.ListRuns(Filter{Project: "acme", Limit: 100000})
	if err != nil || len(p.Runs) != len(all) {
		t.Fatalf("huge limit: %d runs, %v", len(p.Runs), err)
	}
	p, err = s.ListRuns(Filter{Project: "acme"})
	if err != nil || len(p.Runs) != 24 || p.NextCursor != "" {
		t.Fatalf("default limit: %d runs, cursor %q, %v", len(p.Runs), p.NextCursor, err)
	}
	if p, err := s.ListRuns(Filter{Project: "empty"}); err != nil || p.Runs == nil || len(p.Runs) != 0 {
		t.Fatalf("empty project: %+v, %v", p, err)
	}
}

func TestPaging(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)

	// 25 runs; groups of 5 share a CreatedAt, so ordering and cursors
	// depend on the run id tie-break.
	var last uint64
	want := map[string]bool{}
	for i := range 25 {
		r := mkRun("acme", "wf", fmt.Sprintf("u%d", i), runs.StatusSucceeded, 1, base.Add(time.Duration(i/5)*time.Second))
		want[r.ID] = true
		last = pubRun(t, js, r)
	}
	waitSeq(t, s, last)

	for _, f := range []Filter{{Project: "acme"}, {Project: "acme", Workflow: "wf"}} {
		t.Run(fmt.Sprintf("workflow=%q", f.Workflow), func(t *testing.T) {
			f.Limit = 10
			var pages [][]*runs.Run
			for {
				p, err := s.ListRuns(f)
				if err != nil {
					t.Fatal(err)
				}
				pages = append(pages, p.Runs)
				if p.NextCursor == "" {
					break
				}
				f.Cursor = p.NextCursor
			}
			if len(pages) != 3 || len(pages[0]) != 10 || len(pages[1]) != 10 || len(pages[2]) != 5 {
				t.Fatalf("page sizes: %d pages", len(pages))
			}
			seen := map[string]bool{}
			var prev *runs.Run
			for _, p := range pages {
				for _, r := range p {
					if seen[r.ID] {
						t.Fatalf("duplicate %s", r.ID)
					}
					seen[r.ID] = true
					if prev != nil && (r.CreatedAt.After(prev.CreatedAt) || r.CreatedAt.Equal(prev.CreatedAt) && r.ID > prev.ID) {
						t.Fatalf("order: %s after %s", r.ID, prev.ID)
					}
					prev = r
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("gap: saw %d of %d", len(seen), len(want))
			}
		})
	}

	// A run that is updated between pages does not move or repeat.
	p1, _ := s.ListRuns(Filter{Project: "acme", Limit: 10})
	upd := *p1.Runs[0]
	upd.Seq, upd.Status = 2, runs.StatusFailed
	waitSeq(t, s, pubRun(t, js, upd))
	p2, _ := s.ListRuns(Filter{Project: "acme", Limit: 10, Cursor: p1.NextCursor})
	for _, r := range p2.Runs {
		if r.ID == upd.ID {
			t.Fatal("updated run repeated on the next page")
		}
	}
}

func TestBadCursor(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)
	var last uint64
	for i := range 3 {
		pubRun(t, js, mkRun("acme", "wf", "u", runs.StatusSucceeded, 1, base.Add(time.Duration(i)*time.Second)))
		last = pubRun(t, js, mkRun("beta", "wf", "u", runs.StatusSucceeded, 1, base.Add(time.Duration(i)*time.Second)))
	}
	waitSeq(t, s, last)
	p, err := s.ListRuns(Filter{Project: "acme", Limit: 1})
	if err != nil || p.NextCursor == "" {
		t.Fatalf("want a cursor: %+v %v", p, err)
	}
	good := p.NextCursor
	raw, _ := base64.RawURLEncoding.DecodeString(good)

	tests := []struct {
		name   string
		f      Filter
		cursor string
	}{
		{"not base64", Filter{Project: "acme"}, "%%%not-base64%%%"},
		{"padded base64", Filter{Project: "acme"}, base64.URLEncoding.EncodeToString(raw)},
		{"garbage", Filter{Project: "acme"}, base64.RawURLEncoding.EncodeToString([]byte("garbage"))},
		{"only kind", Filter{Project: "acme"}, base64.RawURLEncoding.EncodeToString([]byte{kindProject})},
		{"truncated", Filter{Project: "acme"}, base64.RawURLEncoding.EncodeToString(raw[:len(raw)-len("run_")-24-2])},
		{"other project", Filter{Project: "beta"}, good},
		{"other index", Filter{Project: "acme", Workflow: "wf"}, good},
		{"other index user", Filter{Project: "acme", User: "u"}, good},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Cursor = tc.cursor
			if _, err := s.ListRuns(tc.f); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("err = %v, want ErrBadCursor", err)
			}
		})
	}
	// Status and time filters may change between pages.
	if _, err := s.ListRuns(Filter{Project: "acme", Status: runs.StatusFailed, Cursor: good}); err != nil {
		t.Fatal(err)
	}
}

func TestProjectIsolation(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)
	// "acme" is a prefix of "acme-2"; both have the same workflow and user.
	var last uint64
	byProject := map[string][]string{}
	for i, p := range []string{"acme", "acme-2", "acme", "acme-2", "acme_"} {
		r := mkRun(p, "wf", "u", runs.StatusSucceeded, 1, base.Add(time.Duration(i)*time.Second))
		byProject[p] = append([]string{r.ID}, byProject[p]...)
		pubRun(t, js, r)
	}
	d := runs.Decision{EventID: "evt-x", Project: "acme-2", ReceivedAt: base}
	last = pubDecision(t, js, d)
	waitSeq(t, s, last)

	for project, want := range byProject {
		for _, f := range []Filter{{Project: project}, {Project: project, Workflow: "wf"}, {Project: project, User: "u"}} {
			t.Run(fmt.Sprintf("%s/%s%s", project, f.Workflow, f.User), func(t *testing.T) {
				p, err := s.ListRuns(f)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(p.Runs), want) {
					t.Fatalf("got %v want %v", ids(p.Runs), want)
				}
				for _, r := range p.Runs {
					if r.Project != project {
						t.Fatalf("run of %s listed under %s", r.Project, project)
					}
				}
			})
		}
	}
	if _, err := s.GetRun("acme-2", byProject["acme"][0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-project GetRun: %v", err)
	}
	if _, err := s.GetDecision("acme", "evt-x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-project GetDecision: %v", err)
	}
	if _, err := s.GetDecision("acme-2", "evt-x"); err != nil {
		t.Fatal(err)
	}
}

// seedMixed publishes decisions, snapshots, stale snapshots and junk.
func seedMixed(t *testing.T, js jetstream.JetStream, n int) uint64 {
	var last uint64
	for i := range n {
		ev := fmt.Sprintf("evt-%d", i)
		project := []string{"acme", "beta"}[i%2]
		at := base.Add(time.Duration(i) * time.Second)
		id := runs.ID(ev, "wf", "u", "")
		last = pubDecision(t, js, runs.Decision{EventID: ev, Project: project, ReceivedAt: at, User: "u",
			Candidates: []runs.Candidate{{Workflow: "wf", User: "u", Outcome: runs.OutcomeRan, RunID: id}}})
		if i%3 == 0 {
			continue // stays queued
		}
		r := runs.Run{ID: id, Project: project, Workflow: "wf", User: "u", EventID: ev, Seq: 2,
			Status: runs.StatusSucceeded, CreatedAt: at.Add(time.Millisecond)}
		pubRun(t, js, r)
		r.Seq, r.Status = 1, runs.StatusRunning
		last = pubRun(t, js, r) // stale
		if i%5 == 0 {
			last = publishRaw(t, js, subjects.RunHistory(project), runs.RecordRun, []byte("{broken"))
		}
	}
	return last
}

func snapshotJSON(t *testing.T, s *Store) string {
	var b strings.Builder
	for _, f := range []Filter{
		{Project: "acme"}, {Project: "beta"}, {Project: "acme", Workflow: "wf"}, {Project: "beta", User: "u"},
		{Project: "acme", Status: runs.StatusQueued},
	} {
		f.Limit = 7
		for {
			p, err := s.ListRuns(f)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(mustJSON(t, p))
			b.WriteByte('\n')
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
		}
	}
	return b.String()
}

func TestRebuildFromStream(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, js, nil)
	stop := follow(t, s)
	last := seedMixed(t, js, 40)
	waitSeq(t, s, last)
	before := snapshotJSON(t, s)
	stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, path, js, nil)
	if s2.LastSeq() != 0 {
		t.Fatalf("fresh file at seq %d", s2.LastSeq())
	}
	follow(t, s2)
	waitSeq(t, s2, last)
	if after := snapshotJSON(t, s2); after != before {
		t.Fatalf("rebuilt history differs:\nbefore %s\nafter  %s", before, after)
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRestartContinues(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, js, nil)
	stop := follow(t, s)

	r := mkRun("acme", "wf", "u", runs.StatusRunning, 1, base)
	first := pubRun(t, js, r)
	last := pubRun(t, js, mkRun("acme", "wf", "u2", runs.StatusRunning, 1, base.Add(time.Second)))
	waitSeq(t, s, last)
	stop()
	s.Close()

	// While the store is down: r finishes, a new run appears.
	r2 := r
	r2.Seq, r2.Status = 2, runs.StatusSucceeded
	pubRun(t, js, r2)
	newest := mkRun("acme", "wf", "u3", runs.StatusQueued, 0, base.Add(time.Hour))
	end := pubRun(t, js, newest)

	logs := &logBuffer{}
	s2 := openStore(t, path, js, slog.New(slog.NewTextHandler(logs, nil)))
	if s2.LastSeq() != last {
		t.Fatalf("reopened at %d, want %d", s2.LastSeq(), last)
	}
	follow(t, s2)
	waitSeq(t, s2, end)
	if !strings.Contains(logs.String(), fmt.Sprintf("from=%d", last+1)) {
		t.Fatalf("did not resume from %d: %s", last+1, logs.String())
	}
	got, err := s2.GetRun("acme", r.ID)
	if err != nil || got.Status != runs.StatusSucceeded {
		t.Fatalf("run after restart: %+v %v", got, err)
	}
	p, _ := s2.ListRuns(Filter{Project: "acme"})
	if len(p.Runs) != 3 || p.Runs[0].ID != newest.ID {
		t.Fatalf("after restart: %v", ids(p.Runs))
	}
	// Re-applying an old sequence (with other content) changes nothing.
	stale := r
	stale.Seq, stale.Status = 9, runs.StatusFailed
	if err := s2.Apply(first, subjects.RunHistory("acme"), nil, mustJSON(t, stale)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s2.GetRun("acme", r.ID); got.Status != runs.StatusSucceeded {
		t.Fatalf("old sequence re-applied: %+v", got)
	}
	if s2.LastSeq() != end {
		t.Fatalf("LastSeq %d, want %d", s2.LastSeq(), end)
	}
}

func TestAgedOutMessages(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, js, nil)
	stop := follow(t, s)
	waitSeq(t, s, pubRun(t, js, mkRun("acme", "wf", "u", runs.StatusRunning, 1, base)))
	stop()
	s.Close()

	lost := mkRun("acme", "wf", "u1", runs.StatusRunning, 1, base.Add(time.Second))
	pubRun(t, js, lost)
	ctx := context.Background()
	st, err := js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	kept := mkRun("acme", "wf", "u2", runs.StatusRunning, 1, base.Add(2*time.Second))
	end := pubRun(t, js, kept)

	s2 := openStore(t, path, js, nil)
	follow(t, s2)
	waitSeq(t, s2, end)
	if _, err := s2.GetRun("acme", kept.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.GetRun("acme", lost.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purged run: %v", err)
	}
}

func TestStreamRecreatedRebuilds(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, js, nil)
	stop := follow(t, s)
	var last uint64
	for i := range 5 {
		last = pubRun(t, js, mkRun("acme", "wf", fmt.Sprintf("u%d", i), runs.StatusRunning, 1, base))
	}
	waitSeq(t, s, last)
	stop()
	s.Close()

	ctx := context.Background()
	if err := js.DeleteStream(ctx, subjects.StreamRunEvents); err != nil {
		t.Fatal(err)
	}
	if err := broker.Provision(ctx, js, broker.Limits{}); err != nil {
		t.Fatal(err)
	}
	fresh := mkRun("acme", "wf", "new", runs.StatusRunning, 1, base)
	pubRun(t, js, fresh)
	fresh2 := mkRun("acme", "wf", "new2", runs.StatusRunning, 1, base)
	end := pubRun(t, js, fresh2)

	s2 := openStore(t, path, js, nil)
	follow(t, s2)
	// The file was at 5, the stream at 2: poll until the rebuilt view shows.
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := s2.ListRuns(Filter{Project: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) == 2 && s2.LastSeq() == end {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not rebuilt: seq %d runs %v", s2.LastSeq(), ids(p.Runs))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		s2.WaitSeq(ctx, end)
		cancel()
	}
}

func TestMalformedSkipped(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	follow(t, s)

	good := mkRun("acme", "wf", "u", runs.StatusRunning, 1, base)
	noHeader := mkRun("acme", "wf", "u2", runs.StatusRunning, 1, base.Add(time.Second))
	noHeaderDecision := runs.Decision{EventID: "evt-nh", Project: "acme", ReceivedAt: base.Add(2 * time.Second),
		Candidates: []runs.Candidate{{Workflow: "wf", User: "u3", Outcome: runs.OutcomeRan, RunID: "run_nh"}}}
	steps := []struct {
		name    string
		subject string
		record  string
		data    []byte
	}{
		{"broken run", subjects.RunHistory("acme"), runs.RecordRun, []byte("{not json")},
		{"broken decision", subjects.Decisions("acme"), runs.RecordDecision, []byte(`{"candidates": 5}`)},
		{"run without id", "sb.history.acme.run", runs.RecordRun, []byte(`{"project":"acme"}`)},
		{"unknown kind", "sb.history.acme.other.x", "", []byte(`{}`)},
		{"unknown header", subjects.RunHistory("acme"), "weird", mustJSON(t, good)},
		{"empty", subjects.RunHistory("acme"), runs.RecordRun, nil},
		{"good", subjects.RunHistory("acme"), runs.RecordRun, mustJSON(t, good)},
		{"run without header", subjects.RunHistory("acme"), "", mustJSON(t, noHeader)},
		{"decision without header", subjects.Decisions("acme"), "", mustJSON(t, noHeaderDecision)},
	}
	var last uint64
	for _, st := range steps {
		last = publishRaw(t, js, st.subject, st.record, st.data)
	}
	waitSeq(t, s, last)
	if s.LastSeq() != last {
		t.Fatalf("LastSeq %d, want %d", s.LastSeq(), last)
	}
	for _, id := range []string{good.ID, noHeader.ID, "run_nh"} {
		if _, err := s.GetRun("acme", id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if _, err := s.GetDecision("acme", "evt-nh"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.ListRuns(Filter{Project: "acme"}); len(p.Runs) != 3 {
		t.Fatalf("runs: %v", ids(p.Runs))
	}
}

func TestApplyIdempotent(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), nil, nil)
	d := runs.Decision{EventID: "e", Project: "acme", ReceivedAt: base,
		Candidates: []runs.Candidate{{Workflow: "wf", User: "u", Outcome: runs.OutcomeRan, RunID: "run_1"}}}
	r := runs.Run{ID: "run_1", Project: "acme", Workflow: "wf", User: "u", Status: runs.StatusRunning, Seq: 1, CreatedAt: base}
	msgs := []struct {
		subject string
		data    []byte
	}{
		{subjects.Decisions("acme"), mustJSON(t, d)},
		{subjects.RunHistory("acme"), mustJSON(t, r)},
	}
	for round := range 2 {
		for i, m := range msgs {
			if err := s.Apply(uint64(i+1), m.subject, nil, m.data); err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(0, m.subject, nil, m.data); err != nil { // untracked re-apply
				t.Fatal(err)
			}
		}
		if s.LastSeq() != 2 {
			t.Fatalf("round %d: LastSeq %d", round, s.LastSeq())
		}
		p, err := s.ListRuns(Filter{Project: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) != 1 || p.Runs[0].Status != runs.StatusRunning {
			t.Fatalf("round %d: %+v", round, p.Runs)
		}
		for _, f := range []Filter{{Project: "acme", Workflow: "wf"}, {Project: "acme", User: "u"}} {
			if p, _ := s.ListRuns(f); len(p.Runs) != 1 {
				t.Fatalf("round %d %+v: %d runs", round, f, len(p.Runs))
			}
		}
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("Run without JetStream should fail")
	}
}

func TestReopenAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, nil, nil)
	if err := s.Apply(7, "sb.history.acme.run.run_1", nil, []byte(`{"id":"run_1","seq":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s2 := openStore(t, path, nil, nil)
	if s2.LastSeq() != 7 {
		t.Fatalf("LastSeq %d", s2.LastSeq())
	}
	if r, err := s2.GetRun("acme", "run_1"); err != nil || r.Project != "acme" {
		t.Fatalf("project from subject: %+v %v", r, err)
	}
	// WaitSeq returns once the store closes.
	errc := make(chan error, 1)
	go func() { errc <- s2.WaitSeq(context.Background(), 100) }()
	s2.Close()
	if err := <-errc; err == nil {
		t.Fatal("WaitSeq on a closed store returned nil")
	}
}

func TestCloseStopsRun(t *testing.T) {
	js := brokertest.Start(t).JS
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	waitSeq(t, s, pubRun(t, js, mkRun("acme", "wf", "u", runs.StatusRunning, 1, base)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
}

// ---- fuzz and benchmarks --------------------------------------------------

func FuzzCursor(f *testing.F) {
	s := openStore(f, filepath.Join(f.TempDir(), "h.db"), nil, nil)
	for i := range 5 {
		r := mkRun("acme", "wf", "u", runs.StatusSucceeded, 1, base.Add(time.Duration(i)*time.Second))
		if err := s.Apply(uint64(i+1), subjects.RunHistory("acme"), nil, mustJSON(f, r)); err != nil {
			f.Fatal(err)
		}
	}
	p, err := s.ListRuns(Filter{Project: "acme", Limit: 2})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.NextCursor)
	f.Add("")
	f.Add("cA")
	f.Add("!!!!")
	f.Add(encodeCursor(kindWorkflow, []byte("acme\x00wf\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00x")))
	f.Add(encodeCursor(kindProject, []byte("acme\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00r")))
	f.Fuzz(func(t *testing.T, cursor string) {
		for _, fl := range []Filter{{Project: "acme"}, {Project: "acme", Workflow: "wf"}, {Project: "acme", User: "u"}} {
			kind, _, prefix := fl.index()
			key, err := decodeCursor(cursor, kind, prefix)
			if err != nil {
				if !errors.Is(err, ErrBadCursor) {
					t.Fatalf("error not ErrBadCursor: %v", err)
				}
			} else if !bytes.HasPrefix(key, prefix) {
				t.Fatalf("accepted a cursor outside the prefix: %q", key)
			}
			fl.Cursor = cursor
			fl.Limit = 2
			p, err := s.ListRuns(fl)
			if err != nil && !errors.Is(err, ErrBadCursor) {
				t.Fatalf("ListRuns: %v", err)
			}
			if len(p.Runs) > 2 {
				t.Fatalf("limit exceeded: %d", len(p.Runs))
			}
		}
	})
}

// rawRecord is a message as it sits in the stream.
type rawRecord struct {
	subject, kind string
	data          []byte
}

// benchSnapshots is n first snapshots of n different runs: every record is
// a new run (the worst case for the write pattern).
func benchSnapshots(b testing.TB, n int) []rawRecord {
	out := make([]rawRecord, n)
	for i := range out {
		r := mkRun(fmt.Sprintf("p%d", i%4), fmt.Sprintf("wf%d", i%16), fmt.Sprintf("u%d", i%100),
			runs.StatusSucceeded, 1, base.Add(time.Duration(i)*time.Millisecond))
		r.Steps = append(r.Steps, runs.Step{ID: "s2", Type: "fn", Status: runs.StepSucceeded, Output: map[string]any{"ok": true, "n": i}})
		out[i] = rawRecord{subjects.RunHistory(r.Project), runs.RecordRun, mustJSON(b, r)}
	}
	return out
}

// benchLifecycle is n records of runs going through their life: a decision
// (queued row), a running and a succeeded snapshot, with about 50 runs in
// flight at any time.
func benchLifecycle(b testing.TB, n int) []rawRecord {
	out := make([]rawRecord, 0, n+3)
	const inFlight = 50
	var pending [][]rawRecord
	for i := 0; len(out) < n; i++ {
		at := base.Add(time.Duration(i) * time.Millisecond)
		project, wf, user := fmt.Sprintf("p%d", i%4), fmt.Sprintf("wf%d", i%16), fmt.Sprintf("u%d", i%100)
		ev := fmt.Sprintf("evt-%08d", i)
		id := runs.ID(ev, wf, user, "")
		d := runs.Decision{EventID: ev, Project: project, Kind: subjects.KindAppEvent, ReceivedAt: at, DecidedAt: at,
			Trigger:    json.RawMessage(`{"order":12345,"items":[1,2,3]}`),
			Candidates: []runs.Candidate{{Workflow: wf, User: user, Outcome: runs.OutcomeRan, RunID: id}}}
		out = append(out, rawRecord{subjects.Decisions(project), runs.RecordDecision, mustJSON(b, d)})
		r := runs.Run{ID: id, Project: project, Workflow: wf, User: user, EventID: ev, Trigger: d.Trigger,
			Status: runs.StatusRunning, Seq: 1, CreatedAt: at, StartedAt: at}
		running := rawRecord{subjects.RunHistory(project), runs.RecordRun, mustJSON(b, r)}
		r.Seq, r.Status, r.FinishedAt = 2, runs.StatusSucceeded, at.Add(time.Second)
		r.Steps = []runs.Step{
			{ID: "s1", Type: "http", Status: runs.StepSucceeded, Attempts: 1, Output: map[string]any{"status": 200}},
			{ID: "s2", Type: "fn", Status: runs.StepSucceeded, Attempts: 1, Output: map[string]any{"ok": true}},
		}
		pending = append(pending, []rawRecord{running, {subjects.RunHistory(project), runs.RecordRun, mustJSON(b, r)}})
		if len(pending) > inFlight {
			out = append(out, pending[0][0])
			pending[0] = pending[0][1:]
			if len(pending[0]) == 0 {
				pending = pending[1:]
			}
		}
	}
	return out[:n]
}

// BenchmarkApply measures decoding and applying records the way Run does
// under load (up to maxBatch records per transaction), and one record per
// transaction (Apply).
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		name  string
		gen   func(testing.TB, int) []rawRecord
		batch int
	}{
		{"new-runs/batch=1", benchSnapshots, 1},
		{"new-runs/batch=500", benchSnapshots, maxBatch},
		{"lifecycle/batch=500", benchLifecycle, maxBatch},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "h.db"), nil, nil)
			raw := bc.gen(b, b.N)
			batch := make([]record, 0, bc.batch)
			b.ResetTimer()
			for i := 0; i < len(raw); i += bc.batch {
				batch = batch[:0]
				for j := i; j < min(i+bc.batch, len(raw)); j++ {
					batch = append(batch, decodeRecord(uint64(j+1), raw[j].subject, nats.Header{runs.HeaderRecord: {raw[j].kind}}, raw[j].data))
				}
				if err := s.applyBatch(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkRun measures the follower end to end: b.N lifecycle records
// already in the stream, from Run's start until all are applied.
func BenchmarkRun(b *testing.B) {
	js := brokertest.Start(b).JS
	recs := benchLifecycle(b, b.N)
	var last uint64
	ctx := context.Background()
	for i, r := range recs {
		m := nats.NewMsg(r.subject)
		m.Header.Set(runs.HeaderRecord, r.kind)
		m.Data = r.data
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 || i == len(recs)-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				b.Fatal("publish stalled")
			}
		}
	}
	st, err := js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		b.Fatal(err)
	}
	last = st.CachedInfo().State.LastSeq
	s := openStore(b, filepath.Join(b.TempDir(), "h.db"), js, nil)
	b.ResetTimer()
	follow(b, s)
	waitSeq(b, s, last)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestUncleanFileIsRebuilt: commits are not fsynced while the store is
// open, so a file that was not closed cleanly (a crash) is not trusted: the
// next Open wipes it and the follower rebuilds the same history from the
// stream.
func TestUncleanFileIsRebuilt(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, path, js, nil)
	stop := follow(t, s)
	var last uint64
	for i := range 5 {
		last = pubRun(t, js, mkRun("acme", "wf", fmt.Sprintf("u%d", i), runs.StatusSucceeded, 2, base.Add(time.Duration(i)*time.Second)))
	}
	waitSeq(t, s, last)
	want := mustJSON(t, listAll(t, s, Filter{Project: "acme"}))
	stop()
	// Simulate a crash: the file is closed without the clean mark.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	s2, err := Open(context.Background(), Options{Path: path, JS: js, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if s2.LastSeq() != 0 || !strings.Contains(logs.String(), "not closed cleanly") {
		t.Fatalf("unclean file kept: LastSeq %d, logs %s", s2.LastSeq(), logs.String())
	}
	follow(t, s2)
	waitSeq(t, s2, last)
	if got := mustJSON(t, listAll(t, s2, Filter{Project: "acme"})); string(got) != string(want) {
		t.Fatalf("rebuilt history differs:\n got %s\nwant %s", got, want)
	}

	// After a clean Close the file is trusted again.
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t, path, js, nil)
	if s3.LastSeq() != last {
		t.Fatalf("clean file reopened at %d, want %d", s3.LastSeq(), last)
	}
}

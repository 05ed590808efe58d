package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/services/history"
)

// deadRun stores run r's dead letter as the executor does: the final
// snapshot, with the reason and run headers. It returns the DEAD sequence.
func (f *fixture) deadRun(t *testing.T, r runs.Run, reason string) uint64 {
	t.Helper()
	m := nats.NewMsg(subjects.DeadRun(r.Project, r.Workflow))
	m.Header.Set(wire.HeaderDeadReason, reason)
	m.Header.Set(wire.HeaderRunID, r.ID)
	m.Header.Set(wire.HeaderWorkflow, r.Workflow)
	m.Header.Set(runs.HeaderRecord, runs.RecordRun)
	var err error
	if m.Data, err = json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	return f.publishDead(t, m)
}

func (f *fixture) publishDead(t *testing.T, m *nats.Msg) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := f.js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func deadPage(t *testing.T, r response) history.DeadPage {
	t.Helper()
	var p history.DeadPage
	if err := json.Unmarshal(r.body, &p); err != nil || p.DeadLetters == nil {
		t.Fatalf("not a dead-letter page: %s", r)
	}
	return p
}

func seqs(p history.DeadPage) []uint64 {
	var out []uint64
	for _, d := range p.DeadLetters {
		out = append(out, d.Seq)
	}
	return out
}

func TestDeadLetters(t *testing.T) {
	f := start(t)
	decideReplays(t, f.nc, f.js)
	failed := f.routed(t, "u1", "wf", runs.StatusFailed)
	failed.Error = "step call: request failed"
	s1 := f.deadRun(t, failed, "step call failed after 3 attempts")
	// A trigger the router could not read, as pkg/consume copies it.
	tm := nats.NewMsg(subjects.DeadTrigger(project))
	tm.Header.Set(consume.HeaderDeadReason, "envelope: no name")
	tm.Header.Set(consume.HeaderDeadStream, subjects.StreamTriggers)
	tm.Header.Set(consume.HeaderDeadSequence, "7")
	tm.Header.Set(consume.HeaderDeadSubject, "sb.trigger.acme.app_event.u1")
	tm.Header.Set(consume.HeaderDeadDeliveries, "1")
	tm.Data = []byte(`{"kind":"APP_EVENT"}`)
	s2 := f.publishDead(t, tm)
	// Another project's dead letter is never listed or replayed here.
	other := failed
	other.Project = "other"
	sOther := f.deadRun(t, other, "elsewhere")
	gone := f.routed(t, "u2", "removed-since", runs.StatusFailed)
	s3 := f.deadRun(t, gone, "failed")
	u1 := f.token(t, "u1")

	t.Run("list", func(t *testing.T) {
		for _, tc := range []struct {
			name, query, token string
			status             int
			code               string
			seqs               []uint64
			next               bool
		}{
			{name: "every dead letter of the project, oldest first", token: f.apiKey, status: 200, seqs: []uint64{s1, s2, s3}},
			{name: "one workflow", query: "?workflow=wf", token: f.apiKey, status: 200, seqs: []uint64{s1}},
			{name: "a workflow without any", query: "?workflow=nope", token: f.apiKey, status: 200},
			{name: "first page", query: "?limit=2", token: f.apiKey, status: 200, seqs: []uint64{s1, s2}, next: true},
			{name: "next page", query: fmt.Sprintf("?limit=2&cursor=%d", s2+1), token: f.apiKey, status: 200, seqs: []uint64{s3}},
			{name: "newest first", query: "?order=newest", token: f.apiKey, status: 200, seqs: []uint64{s3, s2, s1}},
			{name: "newest first, one workflow", query: "?order=newest&workflow=wf", token: f.apiKey, status: 200, seqs: []uint64{s1}},
			{name: "newest first page", query: "?order=newest&limit=2", token: f.apiKey, status: 200, seqs: []uint64{s3, s2}, next: true},
			{name: "newest first next page", query: fmt.Sprintf("?order=newest&limit=2&cursor=%d", s2), token: f.apiKey, status: 200, seqs: []uint64{s1}},
			{name: "bad order", query: "?order=random", token: f.apiKey, status: 400, code: "invalid_field"},
			{name: "a wildcard is not a workflow", query: "?workflow=*", token: f.apiKey, status: 400, code: "invalid_field"},
			{name: "bad limit", query: "?limit=501", token: f.apiKey, status: 400, code: "invalid_field"},
			{name: "bad cursor", query: "?cursor=x", token: f.apiKey, status: 400, code: "invalid_field"},
			{name: "a user token may not list", token: u1, status: 403, code: "forbidden"},
			{name: "no token", status: 401, code: "unauthorized"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := f.call(t, http.MethodGet, "/v1/projects/"+project+"/dead"+tc.query, tc.token)
				if r.status != tc.status || (tc.code != "" && r.errCode() != tc.code) {
					t.Fatalf("got %s, want %d %s", r, tc.status, tc.code)
				}
				if tc.status != 200 {
					return
				}
				p := deadPage(t, r)
				if got := seqs(p); !slices.Equal(got, tc.seqs) {
					t.Fatalf("listed %v, want %v (other project's is %d)", got, tc.seqs, sOther)
				}
				if (p.NextCursor != "") != tc.next {
					t.Fatalf("nextCursor %q, want one: %v", p.NextCursor, tc.next)
				}
				// Following the cursor gives the rest.
				if tc.next {
					q, want := "?cursor=", []uint64{s3}
					if strings.Contains(tc.query, "newest") {
						q, want = "?order=newest&cursor=", []uint64{s1}
					}
					rest := deadPage(t, f.call(t, http.MethodGet, "/v1/projects/"+project+"/dead"+q+p.NextCursor, f.apiKey))
					if got := seqs(rest); !slices.Equal(got, want) {
						t.Fatalf("next page %v, want %v", got, want)
					}
				}
			})
		}
	})

	t.Run("what a dead letter shows", func(t *testing.T) {
		p := deadPage(t, f.call(t, http.MethodGet, "/v1/projects/"+project+"/dead", f.apiKey))
		run, trig := p.DeadLetters[0], p.DeadLetters[1]
		if run.Kind != "run" || run.Workflow != "wf" || run.RunID != failed.ID || run.User != "u1" || run.EventID != failed.EventID ||
			run.Status != runs.StatusFailed || run.Error != failed.Error || run.Reason != "step call failed after 3 attempts" ||
			!run.Replayable || run.Time.IsZero() || run.Origin != nil {
			t.Errorf("run dead letter %+v", run)
		}
		if trig.Kind != "trigger" || trig.Replayable || trig.Reason != "envelope: no name" || trig.Origin == nil ||
			trig.Origin.Stream != subjects.StreamTriggers || trig.Origin.Seq != 7 || trig.Origin.Deliveries != 1 || trig.Size != len(tm.Data) {
			t.Errorf("trigger dead letter %+v origin %+v", trig, trig.Origin)
		}
	})

	t.Run("replay", func(t *testing.T) {
		for _, tc := range []struct {
			name, seq, token string
			status           int
			code             string
		}{
			{name: "a dead run", seq: fmt.Sprint(s1), token: f.apiKey, status: http.StatusAccepted},
			{name: "a dead trigger has no run", seq: fmt.Sprint(s2), token: f.apiKey, status: http.StatusConflict, code: "not_replayable"},
			{name: "workflow no longer there", seq: fmt.Sprint(s3), token: f.apiKey, status: http.StatusConflict, code: "replay_not_possible"},
			{name: "another project's", seq: fmt.Sprint(sOther), token: f.apiKey, status: http.StatusNotFound, code: "dead_letter_not_found"},
			{name: "missing", seq: "999999", token: f.apiKey, status: http.StatusNotFound, code: "dead_letter_not_found"},
			{name: "not a sequence", seq: "abc", token: f.apiKey, status: http.StatusBadRequest, code: "invalid_field"},
			{name: "a user token may not replay", seq: fmt.Sprint(s1), token: u1, status: http.StatusForbidden, code: "forbidden"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := f.call(t, http.MethodPost, "/v1/projects/"+project+"/dead/"+tc.seq+"/replay", tc.token)
				if r.status != tc.status || (tc.code != "" && r.errCode() != tc.code) {
					t.Fatalf("got %s, want %d %s", r, tc.status, tc.code)
				}
				if tc.status != http.StatusAccepted {
					return
				}
				var acc history.ReplayAccepted
				if err := json.Unmarshal(r.body, &acc); err != nil || acc.ReplayOf != failed.ID || acc.RunID == "" {
					t.Fatalf("replay answer %s", r)
				}
				if loc := r.header.Get("Location"); loc != "/v1/projects/"+project+"/runs/"+acc.RunID {
					t.Fatalf("Location %q", loc)
				}
			})
		}
	})
}

func TestBulkReplay(t *testing.T) {
	f := start(t)
	decideReplays(t, f.nc, f.js)
	// Oldest first: the list (and the bulk walk) goes newest first.
	a := f.routed(t, "u1", "wf", runs.StatusFailed)
	b := f.routed(t, "u2", "wf", runs.StatusFailed)
	c := f.routed(t, "u1", "wf", runs.StatusSucceeded)
	gone := f.routed(t, "u1", "removed-since", runs.StatusFailed)

	bulk := func(t *testing.T, query, token string) (response, history.BulkReplay) {
		t.Helper()
		r := f.call(t, http.MethodPost, "/v1/projects/"+project+"/runs/replay"+query, token)
		var out history.BulkReplay
		if r.status == http.StatusOK {
			if err := json.Unmarshal(r.body, &out); err != nil {
				t.Fatalf("not a bulk replay answer: %s", r)
			}
		}
		return r, out
	}
	type result struct{ of, status, code string }
	results := func(out history.BulkReplay) []result {
		var got []result
		for _, r := range out.Results {
			res := result{of: r.ReplayOf, status: r.Status}
			if r.Error != nil {
				res.code = r.Error.Code
			}
			if (r.Status == "accepted") != (r.RunID != "" && r.EventID != "") {
				t.Errorf("result %+v: an accepted replay names its run and event, a failed one none", r)
			}
			got = append(got, res)
		}
		return got
	}
	for _, tc := range []struct {
		name, query string
		want        []result
		next        bool
	}{
		{name: "failed runs of wf, newest first", query: "?status=failed&workflow=wf",
			want: []result{{b.ID, "accepted", ""}, {a.ID, "accepted", ""}}},
		{name: "one user", query: "?user=u1&workflow=wf", want: []result{{c.ID, "accepted", ""}, {a.ID, "accepted", ""}}},
		{name: "a page", query: "?status=failed&limit=1", want: []result{{gone.ID, "failed", "replay_not_possible"}}, next: true},
		{name: "nothing matches", query: "?user=nobody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, out := bulk(t, tc.query, f.apiKey)
			if r.status != http.StatusOK {
				t.Fatalf("got %s", r)
			}
			if got := results(out); !slices.Equal(got, tc.want) {
				t.Fatalf("results %+v, want %+v", got, tc.want)
			}
			accepted := 0
			for _, w := range tc.want {
				if w.status == "accepted" {
					accepted++
				}
			}
			if out.Accepted != accepted || out.Failed != len(tc.want)-accepted {
				t.Fatalf("accepted %d failed %d, want %d and %d", out.Accepted, out.Failed, accepted, len(tc.want)-accepted)
			}
			if (out.NextCursor != "") != tc.next {
				t.Fatalf("nextCursor %q, want one: %v", out.NextCursor, tc.next)
			}
			if tc.next {
				// The next page continues after the first, not with the
				// runs the replays just created.
				_, rest := bulk(t, tc.query+"&cursor="+out.NextCursor, f.apiKey)
				if len(rest.Results) != 1 || rest.Results[0].ReplayOf != b.ID {
					t.Fatalf("next page %+v, want the replay of %s", rest.Results, b.ID)
				}
			}
		})
	}
	for _, tc := range []struct {
		name, query, token string
		status             int
		code               string
	}{
		{name: "over the bound", query: fmt.Sprintf("?limit=%d", history.MaxBulkReplay+1), token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "bad status", query: "?status=done", token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "bad cursor", query: "?cursor=nope", token: f.apiKey, status: 400, code: "invalid_field"},
		{name: "a user token may not replay", token: f.token(t, "u1"), status: 403, code: "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, _ := bulk(t, tc.query, tc.token); r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %s, want %d %s", r, tc.status, tc.code)
			}
		})
	}
}

func TestConsoleServed(t *testing.T) {
	f := start(t)
	for _, tc := range []struct {
		path, contentType string
		status            int
	}{
		{"/console", "text/html", 200},
		{"/console/", "text/html", 200},
		{"/console/console.js", "text/javascript", 200},
		{"/console/console.css", "text/css", 200},
		{"/console/nope.js", "", 404},
		{"/console/static/index.html", "", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := f.call(t, http.MethodGet, tc.path, "")
			if r.status != tc.status {
				t.Fatalf("got %d", r.status)
			}
			if tc.status != 200 {
				return
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			// The page handles an API key: its own scripts only.
			if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
}

// TestDeadLettersPaged walks a project's dead letters, interleaved with
// another project's, page by page in both orders: every one exactly once,
// in order, whatever the page size.
func TestDeadLettersPaged(t *testing.T) {
	f := start(t)
	var mine []uint64
	for i := range 23 {
		r := runs.Run{ID: runs.ID(fmt.Sprint(i), "wf", "u1", ""), Project: project, Workflow: "wf", User: "u1", Status: runs.StatusFailed}
		mine = append(mine, f.deadRun(t, r, "failed"))
		// Other projects' dead letters sit between ours, several in a row.
		for j := range i % 4 {
			r.Project, r.ID = "other", runs.ID(fmt.Sprint(i, j), "wf", "u1", "")
			f.deadRun(t, r, "elsewhere")
		}
	}
	newest := slices.Clone(mine)
	slices.Reverse(newest)
	for _, order := range []string{"oldest", "newest"} {
		want := mine
		if order == "newest" {
			want = newest
		}
		for _, limit := range []int{1, 4, 22, 23, 50} {
			t.Run(fmt.Sprintf("%s by %d", order, limit), func(t *testing.T) {
				var got []uint64
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(mine) {
						t.Fatalf("more pages than dead letters: %v", got)
					}
					p := deadPage(t, f.call(t, http.MethodGet, fmt.Sprintf("/v1/projects/%s/dead?order=%s&limit=%d&cursor=%s", project, order, limit, cursor), f.apiKey))
					if len(p.DeadLetters) > limit {
						t.Fatalf("a page of %d, limit %d", len(p.DeadLetters), limit)
					}
					got = append(got, seqs(p)...)
					if cursor = p.NextCursor; cursor == "" {
						break
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("walked %v, want %v", got, want)
				}
			})
		}
	}
}

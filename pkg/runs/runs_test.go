package runs_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
)

func TestIDDeterministic(t *testing.T) {
	a := runs.ID("evt1", "wf", "user", "cred")
	b := runs.ID("evt1", "wf", "user", "cred")
	if a != b {
		t.Fatalf("ID not deterministic: %q vs %q", a, b)
	}
	if len(a) != 28 || !strings.HasPrefix(a, "run_") {
		t.Errorf("ID = %q, want run_ + 24 characters", a)
	}
	if !runs.ValidID(a) {
		t.Errorf("ValidID(%q) = false", a)
	}
}

func TestIDDiffersPerInput(t *testing.T) {
	inputs := [][4]string{
		{"e", "w", "u", "c"},
		{"e2", "w", "u", "c"},
		{"e", "w2", "u", "c"},
		{"e", "w", "u2", "c"},
		{"e", "w", "u", "c2"},
		{"e", "w", "u", ""},
		// Field boundaries matter: shifting characters between fields
		// yields another id.
		{"ew", "", "u", "c"},
		{"", "ew", "u", "c"},
		{"e", "wu", "", "c"},
		{"e", "w", "uc", ""},
		{"", "", "", ""},
	}
	seen := map[string][4]string{}
	for _, in := range inputs {
		id := runs.ID(in[0], in[1], in[2], in[3])
		if prev, ok := seen[id]; ok {
			t.Errorf("ID%v = ID%v = %s", in, prev, id)
		}
		seen[id] = in
		if !runs.ValidID(id) {
			t.Errorf("ValidID(ID%v = %q) = false", in, id)
		}
	}
}

func TestValidID(t *testing.T) {
	good := runs.ID("e", "w", "u", "c")
	cases := []struct {
		in   string
		want bool
	}{
		{good, true},
		{"run_" + strings.Repeat("0", 24), true},
		{"run_" + strings.Repeat("v", 24), true},
		{"", false},
		{"run_", false},
		{good[:27], false},
		{good + "0", false},
		{"RUN_" + good[4:], false},
		{"job_" + good[4:], false},
		{"run_" + strings.Repeat("w", 24), false},
		{"run_" + strings.Repeat("A", 24), false},
		{"run_" + strings.Repeat("0", 23) + ".", false},
		{"run_" + strings.Repeat("0", 23) + "*", false},
		{"run_" + strings.Repeat("0", 22) + "é", false},
	}
	for _, c := range cases {
		if got := runs.ValidID(c.in); got != c.want {
			t.Errorf("ValidID(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestStatusTerminal(t *testing.T) {
	cases := map[runs.Status]bool{
		runs.StatusQueued: false, runs.StatusRunning: false, runs.StatusSucceeded: true, runs.StatusFailed: true,
	}
	for s, want := range cases {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}

func TestStepByID(t *testing.T) {
	r := &runs.Run{Steps: []runs.Step{{ID: "a", Attempts: 1}, {ID: "b", Attempts: 2}}}
	s, ok := r.StepByID("b")
	if !ok || s.Attempts != 2 {
		t.Fatalf("StepByID(b) = %+v, %v", s, ok)
	}
	s.Status = runs.StepSucceeded
	if r.Steps[1].Status != runs.StepSucceeded {
		t.Error("StepByID does not return a pointer into the run")
	}
	if _, ok := r.StepByID("c"); ok {
		t.Error("StepByID(c) found a step")
	}
}

func TestRunJSON(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := runs.Run{ID: "run_x", Project: "p", Workflow: "w", User: "u", EventID: "e", Status: runs.StatusQueued,
		Steps: []runs.Step{}, Seq: 1, CreatedAt: created}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"run_x","project":"p","workflow":"w","user":"u","eventId":"e","status":"queued","steps":[],"seq":1,"createdAt":"2026-01-02T03:04:05Z"}`
	if string(b) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", b, want)
	}
	rep, _ := json.Marshal(runs.Reply{RunID: "run_x", Status: 201, Body: []byte("hi")})
	if string(rep) != `{"runId":"run_x","status":201,"body":"aGk="}` {
		t.Errorf("Reply JSON = %s", rep)
	}
}

func TestDecisionPaged(t *testing.T) {
	cand := func(i int, outcome, reason string) runs.Candidate {
		return runs.Candidate{Workflow: "w", User: fmt.Sprintf("u%d", i), Outcome: outcome, Reason: reason}
	}
	var cands []runs.Candidate
	for i := range 7 {
		switch {
		case i < 3:
			cands = append(cands, cand(i, runs.OutcomeRan, ""))
		case i < 5:
			cands = append(cands, cand(i, runs.OutcomeSkipped, runs.ReasonNotEnabled))
		default:
			cands = append(cands, cand(i, runs.OutcomeSkipped, runs.ReasonNoCredential))
		}
	}
	for _, tc := range []struct {
		name  string
		cands []runs.Candidate
		size  int
		sizes []int
	}{
		{"no candidates", nil, 3, []int{0}},
		{"one page", cands, 10, []int{7}},
		{"exact pages", cands[:6], 3, []int{3, 3}},
		{"last page short", cands, 3, []int{3, 3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &runs.Decision{EventID: "e", Project: "p"}
			pages := d.Paged(tc.cands, tc.size)
			if len(pages) != len(tc.sizes) {
				t.Fatalf("%d pages, want %d", len(pages), len(tc.sizes))
			}
			var all []runs.Candidate
			for i, p := range pages {
				if p.Page != i || p.Summary.Pages != len(tc.sizes) || p.EventID != "e" || len(p.Candidates) != tc.sizes[i] {
					t.Errorf("page %d: %+v", i, p)
				}
				all = append(all, p.Candidates...)
			}
			if len(all) != len(tc.cands) || pages[0].Summary.Candidates != len(tc.cands) {
				t.Errorf("pages hold %d candidates, summary says %d, want %d", len(all), pages[0].Summary.Candidates, len(tc.cands))
			}
		})
	}
	sum := (&runs.Decision{}).Paged(cands, 2)[0].Summary
	if sum.Ran != 3 || sum.Skipped[runs.ReasonNotEnabled] != 2 || sum.Skipped[runs.ReasonNoCredential] != 2 {
		t.Errorf("summary %+v", sum)
	}
}

func TestReplyMsgRoundTrip(t *testing.T) {
	for _, r := range []runs.Reply{
		{RunID: "run_x", Status: 201, Headers: map[string]string{"X-A": "b"}, Body: []byte(`{"a":1}`)},
		{RunID: "run_x", Decided: true, RunIDs: []string{"run_a", "run_b"}},
		{Decided: true, Status: 409, Error: "credential_ambiguous", Message: "two\ncredentials"},
		{RunID: "run_x", Status: 200, Body: []byte{0, 1, 2, 0xff}},
	} {
		m, err := r.Msg("_INBOX.x")
		if err != nil {
			t.Fatal(err)
		}
		got, err := runs.DecodeReply(m)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(*got) != fmt.Sprint(r) {
			t.Errorf("round trip: got %+v, want %+v", *got, r)
		}
	}
}

package history

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// The run-state responder answers for runs it holds, and "unknown" for the
// others, once the read model has applied the log up to where it was asked.
func TestServeRunState(t *testing.T) {
	srv := brokertest.Start(t)
	s := openStore(t, filepath.Join(t.TempDir(), "h.db"), srv.JS, nil)
	follow(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.ServeRunState(ctx, srv.NC); err != nil {
		t.Fatal(err)
	}
	ask := func(t *testing.T, runID string) runs.StateAnswer {
		t.Helper()
		m, err := srv.NC.Request(subjects.HistoryRunQuery("acme", runID), nil, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var a runs.StateAnswer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	const id = "run_0123456789abcdefghijklmn"
	if a := ask(t, id); a.Run != nil || a.Error != "" {
		t.Fatalf("empty history: %+v, want an unknown run", a)
	}
	done := runs.Run{ID: id, Project: "acme", Workflow: "w", User: "u", Status: runs.StatusSucceeded, Seq: 2, CreatedAt: time.Now()}
	publishRaw(t, srv.JS, subjects.RunHistory("acme"), runs.RecordRun, mustJSON(t, done))
	// Asked right after the publish: the answer waits for the read model.
	if a := ask(t, id); a.Run == nil || a.Run.Status != runs.StatusSucceeded {
		t.Fatalf("finished run: %+v, want it succeeded", a)
	}
	// A run whose trigger is near the message size limit: the answer is
	// the snapshot only, or it could not be sent at all.
	const big = "run_big456789abcdefghijklmno"
	huge := `{"id":"e-big","payload":{"pad":"` + strings.Repeat("x", 900*1000) + `"}}`
	publishRaw(t, srv.JS, subjects.Decisions("acme"), runs.RecordDecision, mustJSON(t, runs.Decision{
		EventID: "e-big", Project: "acme", Trigger: json.RawMessage(huge),
		Candidates: []runs.Candidate{{Workflow: "w", User: "u", Outcome: runs.OutcomeRan, RunID: big}},
	}))
	publishRaw(t, srv.JS, subjects.RunHistory("acme"), runs.RecordRun, mustJSON(t, runs.Run{ID: big, Project: "acme",
		Workflow: "w", User: "u", EventID: "e-big", Status: runs.StatusSucceeded, Seq: 2, CreatedAt: time.Now()}))
	if a := ask(t, big); a.Run == nil || a.Run.Status != runs.StatusSucceeded || len(a.Run.Trigger) != 0 {
		t.Fatalf("run with a 900 kB trigger: %+v, want it succeeded, without its trigger", a.Error)
	}
	if a := ask(t, "not-a-run-id"); a.Error == "" {
		t.Fatalf("bad run id: %+v, want an error", a)
	}
}

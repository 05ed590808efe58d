package history

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// pruneFixture is a history whose runs' newest records sit at known stream
// sequences.
type pruneFixture struct {
	seq  map[string]uint64 // name -> the stream sequence of that record
	runs map[string]string // name -> run id
	last uint64
}

// seedPrune publishes, in this order:
//
//	d1      decision of evt-1, starting runs a and b (queued rows)
//	a1      a running
//	b2      b succeeded
//	c1      c (no decision) succeeded
//	a3      a succeeded
//	d2      decision of evt-2, starting run e (queued row)
//	aStale  a stale snapshot of a (Seq 2 after Seq 3)
func seedPrune(t *testing.T, js jetstream.JetStream) pruneFixture {
	f := pruneFixture{seq: map[string]uint64{}, runs: map[string]string{}}
	f.runs["a"] = runs.ID("evt-1", "wf", "u1", "")
	f.runs["b"] = runs.ID("evt-1", "wf", "u2", "")
	f.runs["e"] = runs.ID("evt-2", "wf", "u1", "")
	c := mkRun("acme", "wf2", "u3", runs.StatusSucceeded, 1, base.Add(time.Minute))
	f.runs["c"] = c.ID
	snap := func(id, user string, st runs.Status, seq int, ev string) runs.Run {
		return runs.Run{ID: id, Project: "acme", Workflow: "wf", User: user, EventID: ev, Status: st, Seq: seq, CreatedAt: base}
	}
	f.seq["d1"] = pubDecision(t, js, runs.Decision{EventID: "evt-1", Project: "acme", ReceivedAt: base, Candidates: []runs.Candidate{
		{Workflow: "wf", User: "u1", Outcome: runs.OutcomeRan, RunID: f.runs["a"]},
		{Workflow: "wf", User: "u2", Outcome: runs.OutcomeRan, RunID: f.runs["b"]},
	}})
	f.seq["a1"] = pubRun(t, js, snap(f.runs["a"], "u1", runs.StatusRunning, 1, "evt-1"))
	f.seq["b2"] = pubRun(t, js, snap(f.runs["b"], "u2", runs.StatusSucceeded, 2, "evt-1"))
	f.seq["c1"] = pubRun(t, js, c)
	f.seq["a3"] = pubRun(t, js, snap(f.runs["a"], "u1", runs.StatusSucceeded, 3, "evt-1"))
	f.seq["d2"] = pubDecision(t, js, runs.Decision{EventID: "evt-2", Project: "acme", ReceivedAt: base.Add(time.Hour), Candidates: []runs.Candidate{
		{Workflow: "wf", User: "u1", Outcome: runs.OutcomeRan, RunID: f.runs["e"]},
	}})
	f.seq["aStale"] = pubRun(t, js, snap(f.runs["a"], "u1", runs.StatusRunning, 2, "evt-1"))
	f.last = f.seq["aStale"]
	return f
}

// bucketKeys counts the keys of every bucket but meta.
func bucketKeys(t *testing.T, s *Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if string(name) == string(bucketMeta) {
				continue
			}
			out[string(name)] = tx.Bucket(name).Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shown lists which of the fixture's runs and decisions the store answers
// for, through every read path: get, and the list on each index.
func (f pruneFixture) shown(t *testing.T, s *Store) (runNames []string, decisions []string) {
	t.Helper()
	for _, name := range []string{"a", "b", "c", "e"} {
		_, err := s.GetRun("acme", f.runs[name])
		switch {
		case err == nil:
			runNames = append(runNames, name)
		case !errors.Is(err, ErrNotFound):
			t.Fatalf("GetRun %s: %v", name, err)
		}
	}
	listed := map[string]bool{}
	for _, flt := range []Filter{{Project: "acme"}, {Project: "acme", Workflow: "wf"}, {Project: "acme", Workflow: "wf2"},
		{Project: "acme", User: "u1"}, {Project: "acme", User: "u2"}, {Project: "acme", User: "u3"}} {
		for _, r := range listAll(t, s, flt) {
			listed[r.ID] = true
		}
	}
	for name, id := range f.runs {
		if listed[id] != slices.Contains(runNames, name) {
			t.Errorf("run %s: listed %v, found by id %v", name, listed[id], slices.Contains(runNames, name))
		}
	}
	for _, ev := range []string{"evt-1", "evt-2"} {
		_, err := s.GetDecision("acme", ev)
		switch {
		case err == nil:
			decisions = append(decisions, ev)
		case !errors.Is(err, ErrNotFound):
			t.Fatalf("GetDecision %s: %v", ev, err)
		}
	}
	return runNames, decisions
}

// TestPruneFollowsStream removes records from the front of RUN_EVENTS, as
// retention does, and checks that the read model keeps exactly the runs and
// decisions the stream still holds a record of.
func TestPruneFollowsStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		purgeTo   string // purge every record before this one; "" purges nothing, "all" everything
		runs      []string
		decisions []string
		removed   int
	}{
		{name: "nothing aged out", purgeTo: "", runs: []string{"a", "b", "c", "e"}, decisions: []string{"evt-1", "evt-2"}},
		// b's and c's only records are gone, and d1; a's newest and e's decision remain.
		{name: "front aged out", purgeTo: "a3", runs: []string{"a", "e"}, decisions: []string{"evt-2"}, removed: 3},
		// A stale snapshot is still a record of the run: a stays, held by it.
		{name: "only a stale snapshot left", purgeTo: "aStale", runs: []string{"a"}, removed: 5},
		{name: "everything aged out", purgeTo: "all", removed: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := brokertest.Start(t).JS
			s := openStore(t, filepath.Join(t.TempDir(), "h.db"), js, nil)
			stop := follow(t, s)
			f := seedPrune(t, js)
			waitSeq(t, s, f.last)
			stop()

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, subjects.StreamRunEvents)
			if err != nil {
				t.Fatal(err)
			}
			switch tc.purgeTo {
			case "":
			case "all":
				err = st.Purge(ctx)
			default:
				err = st.Purge(ctx, jetstream.WithPurgeSequence(f.seq[tc.purgeTo]))
			}
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.Prune(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.removed {
				t.Errorf("Prune removed %d, want %d", n, tc.removed)
			}
			gotRuns, gotDecisions := f.shown(t, s)
			if !slices.Equal(gotRuns, tc.runs) || !slices.Equal(gotDecisions, tc.decisions) {
				t.Fatalf("after prune: runs %v decisions %v, want runs %v decisions %v", gotRuns, gotDecisions, tc.runs, tc.decisions)
			}
			// Every index entry of a pruned run is gone with it.
			keys := bucketKeys(t, s)
			if keys["runs"] != len(tc.runs) || keys["run_ids"] != len(tc.runs) || keys["decisions"] != len(tc.decisions) ||
				keys["idx_wf"] != len(tc.runs) || keys["idx_user"] != len(tc.runs) || keys["by_seq"] != len(tc.runs)+len(tc.decisions) {
				t.Fatalf("buckets after prune: %v (runs %v, decisions %v)", keys, tc.runs, tc.decisions)
			}
			// A second pass finds nothing more.
			if n, err := s.Prune(ctx); err != nil || n != 0 {
				t.Fatalf("second prune: %d %v", n, err)
			}
		})
	}
}

// TestPruneWithShortMaxAge lets RUN_EVENTS age everything out (MaxAge one
// second) and waits for Run's periodic pass to empty the read model.
func TestPruneWithShortMaxAge(t *testing.T) {
	js := brokertest.Start(t).JS
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.Provision(ctx, js, broker.Limits{RunEventsMaxAge: time.Second, DuplicateWindow: time.Second}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "h.db"), JS: js, PruneInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	follow(t, s)
	f := seedPrune(t, js)
	waitSeq(t, s, f.last)
	// The read model has them; now they age out of the stream and the read
	// model follows.
	deadline := time.Now().Add(20 * time.Second)
	for {
		keys := bucketKeys(t, s)
		empty := true
		for _, n := range keys {
			empty = empty && n == 0
		}
		if empty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read model not pruned after the stream aged out: %v", keys)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r, d := f.shown(t, s); len(r) != 0 || len(d) != 0 {
		t.Fatalf("still shown: runs %v decisions %v", r, d)
	}
}

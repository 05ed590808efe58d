//go:build chaos

package chaos

import (
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
)

// TestComputeCountsEachFailure feeds compute a made-up record with one
// case of every failure next to healthy runs, so a number the scenarios
// print as 0 is known to count what it says. It runs no process.
func TestComputeCountsEachFailure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	res := newLoadResult()
	accept := func(key, ev string) { res.record(0, key, 202, ev, false, nil) }
	accept("ok", "e-ok")                             // ran once
	accept("retried", "e-retried")                   // second step delivered twice before the run finished
	accept("again", "e-again")                       // first step delivered after the run succeeded
	accept("lost", "e-lost")                         // answered 2xx, never ran
	accept("twice", "e-twice-1")                     // one key, two events, two runs
	accept("twice", "e-twice-2")                     //
	accept("nodeliv", "e-nodeliv")                   // succeeded in the history, second step never reached the listener
	res.record(0, "cut", 0, "", false, errTimeout{}) // no 2xx, but it ran

	run := func(id, ev string) runs.Run {
		return runs.Run{ID: id, EventID: ev, Status: runs.StatusSucceeded,
			Steps: []runs.Step{{ID: "first", Status: runs.StepSucceeded}, {ID: "second", Status: runs.StepSucceeded}}}
	}
	d := func(run, ev, key, step string, ms int) delivery {
		return delivery{Run: run, Event: ev, Key: key, Step: step, At: at(ms), Auth: "Bearer " + credToken}
	}
	obs := observed{
		history: []runs.Run{run("r-ok", "e-ok"), run("r-retried", "e-retried"), run("r-again", "e-again"),
			run("r-twice-1", "e-twice-1"), run("r-twice-2", "e-twice-2"), run("r-nodeliv", "e-nodeliv"), run("r-cut", "e-cut")},
		done: map[string]time.Time{"r-ok": at(100), "r-retried": at(100), "r-again": at(100),
			"r-twice-1": at(100), "r-twice-2": at(100), "r-nodeliv": at(100), "r-cut": at(100)},
		deliveries: []delivery{
			d("r-ok", "e-ok", "ok", "first", 10), d("r-ok", "e-ok", "ok", "second", 20),
			d("r-retried", "e-retried", "retried", "first", 10), d("r-retried", "e-retried", "retried", "second", 20),
			d("r-retried", "e-retried", "retried", "second", 50),
			d("r-again", "e-again", "again", "first", 10), d("r-again", "e-again", "again", "second", 20),
			d("r-again", "e-again", "again", "first", 150),
			d("r-twice-1", "e-twice-1", "twice", "first", 10), d("r-twice-1", "e-twice-1", "twice", "second", 20),
			d("r-twice-2", "e-twice-2", "twice", "first", 10), d("r-twice-2", "e-twice-2", "twice", "second", 20),
			d("r-nodeliv", "e-nodeliv", "nodeliv", "first", 10),
			d("r-cut", "e-cut", "cut", "first", 10), d("r-cut", "e-cut", "cut", "second", 20),
		},
	}
	var f figures
	compute(&f, res, obs, true)
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"lost (lost, nodeliv)", f.Lost, 2},
		{"duplicate (twice)", f.Duplicate, 1},
		{"reExecuted (again)", f.ReExecuted, 1},
		{"reExecutedRuns", f.ReExecutedRuns, 1},
		{"retriedUnfinished (retried)", f.RetriedUnfinished, 1},
		// lost, nodeliv, twice (two event ids), and cut: never answered 2xx.
		{"keysNotExactlyOnce", f.KeysNotExactlyOnce, 4},
		{"historyMismatch (nodeliv)", f.HistoryMismatch, 1},
		{"ranUnacknowledged (cut)", f.RanUnacknowledged, 1},
		{"accepted", f.Accepted, 6},
		{"eventsSent", f.EventsSent, 7},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d; evidence %v", c.name, c.got, c.want, f.Evidence)
		}
	}
	if len(f.failures()) == 0 {
		t.Error("failures() is empty for figures with failures")
	}
}

type errTimeout struct{}

func (errTimeout) Error() string { return "timeout" }
func (errTimeout) Timeout() bool { return true }

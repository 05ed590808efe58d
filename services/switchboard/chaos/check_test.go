//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// observed is what the system did, collected once it drained.
type observed struct {
	history    []runs.Run           // the runs API's runs of the workflow
	done       map[string]time.Time // run id -> when its first succeeded snapshot was stored in RUN_EVENTS
	deliveries []delivery           // the listener's record
	malformed  int                  // listener requests that were not a delivery
}

// listRuns pages through GET /runs?workflow=… (newest first).
func listRuns(a api, key string) ([]runs.Run, error) {
	var all []runs.Run
	cursor := ""
	for {
		q := url.Values{"workflow": {workflowID}, "limit": {"500"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		st, raw, err := a.call("GET", "/v1/projects/"+project+"/runs?"+q.Encode(), key, nil)
		if err != nil {
			return nil, err
		}
		if st != http.StatusOK {
			return nil, fmt.Errorf("GET runs: %d %s", st, raw)
		}
		var page struct {
			Runs       []runs.Run `json:"runs"`
			NextCursor string     `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return nil, fmt.Errorf("GET runs: %w", err)
		}
		all = append(all, page.Runs...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// connectJS connects the suite's own client to the scenario's NATS (the
// dev process's embedded server or the nats-server process).
func connectJS(t interface{ Fatalf(string, ...any) }, natsURL string) (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(natsURL, nats.Name("chaos-suite"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// consumersIdle reports whether every consumer of TRIGGERS and RUNS has
// nothing left to deliver and nothing unacknowledged: then no redelivery
// (and so no re-execution) can still come.
func consumersIdle(ctx context.Context, js jetstream.JetStream) (bool, string) {
	for _, name := range []string{subjects.StreamTriggers, subjects.StreamRuns} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return false, fmt.Sprintf("stream %s: %v", name, err)
		}
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				return false, fmt.Sprintf("consumer %s/%s: %d pending, %d unacknowledged", name, ci.Name, ci.NumPending, ci.NumAckPending)
			}
		}
		if err := l.Err(); err != nil {
			return false, fmt.Sprintf("consumers of %s: %v", name, err)
		}
	}
	return true, ""
}

// drain waits, up to timeout, until the system is quiet: the consumers are
// idle, no run in the history is still going, every accepted event has a
// finished run in the history, and the listener got nothing for a while.
// Accepted events without a run stop the wait once the listener has been
// quiet for missingQuiet: with idle consumers nothing can run them any
// more, and the checks count them lost. It reports whether the system went
// quiet and, if not, what was still going.
func drain(a api, key string, js jetstream.JetStream, res *loadResult, l *listener, timeout time.Duration) (bool, string) {
	var why string
	ok := pollUntil(timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if idle, w := consumersIdle(ctx, js); !idle {
			why = w
			return false, why
		}
		hist, err := listRuns(a, key)
		if err != nil {
			why = err.Error()
			return false, why
		}
		byEvent := map[string]runs.Status{}
		for _, r := range hist {
			if !r.Status.Terminal() {
				why = fmt.Sprintf("run %s is %s", r.ID, r.Status)
				return false, why
			}
			byEvent[r.EventID] = r.Status
		}
		_, accepted, _, _ := res.snapshot()
		missing := 0
		for _, ids := range accepted {
			if !slices.ContainsFunc(ids, func(id string) bool { _, ok := byEvent[id]; return ok }) {
				missing++
			}
		}
		switch {
		case missing > 0 && !l.quietFor(missingQuiet):
			why = fmt.Sprintf("%d accepted events have no run in the history yet", missing)
			return false, why
		case !l.quietFor(2 * time.Second):
			why = "the listener is still receiving"
			return false, why
		}
		why = ""
		return true, ""
	})
	return ok, why
}

// missingQuiet: see drain. Above the history's lag applying RUN_EVENTS.
const missingQuiet = 10 * time.Second

// readDone reads every run snapshot in RUN_EVENTS and returns, per run,
// when its first succeeded snapshot was stored (the stream's timestamp).
func readDone(ctx context.Context, js jetstream.JetStream) (map[string]time.Time, error) {
	done := map[string]time.Time{}
	s, err := js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return nil, err
	}
	subj := subjects.RunHistory(project)
	last, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, err
	}
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			var r struct {
				ID     string      `json:"id"`
				Status runs.Status `json:"status"`
			}
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				return nil, fmt.Errorf("RUN_EVENTS seq %d: %w", md.Sequence.Stream, err)
			}
			if t, seen := done[r.ID]; r.Status == runs.StatusSucceeded && (!seen || md.Timestamp.Before(t)) {
				done[r.ID] = md.Timestamp
			}
			if md.Sequence.Stream >= last.Sequence {
				return done, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("RUN_EVENTS: stopped before seq %d: %w", last.Sequence, ctx.Err())
		}
	}
}

// collect gathers the history, RUN_EVENTS and the listener's record.
func collect(t interface{ Fatalf(string, ...any) }, a api, key string, js jetstream.JetStream, l *listener) observed {
	hist, err := listRuns(a, key)
	if err != nil {
		t.Fatalf("run history: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := readDone(ctx, js)
	if err != nil {
		t.Fatalf("read RUN_EVENTS: %v", err)
	}
	return observed{history: hist, done: done, deliveries: l.deliveries(), malformed: l.malformed()}
}

// figures are one scenario's result.
type figures struct {
	Scenario string `json:"scenario"`
	What     string `json:"what"`
	Load     string `json:"load"`
	Duration string `json:"duration"`
	Kills    int    `json:"kills"`
	// EventsSent counts distinct payload ids sent, Attempts every request
	// (retries included), Accepted the payload ids answered 2xx.
	EventsSent int            `json:"eventsSent"`
	Attempts   int            `json:"attempts"`
	Accepted   int            `json:"accepted"`
	Replayed   int            `json:"replayed"` // payload ids whose 2xx was an Idempotent-Replayed answer
	Failed     map[string]int `json:"failedAttempts,omitempty"`
	Runs       int            `json:"runs"`
	Deliveries int            `json:"deliveries"`
	// The checks; the first five fail the scenario when non-zero.
	Lost               int `json:"lost"`
	Duplicate          int `json:"duplicate"`
	ReExecuted         int `json:"reExecuted"`     // step deliveries after the run's succeeded snapshot
	ReExecutedRuns     int `json:"reExecutedRuns"` // runs those deliveries belong to
	KeysNotExactlyOnce int `json:"keysNotExactlyOnce"`
	HistoryMismatch    int `json:"historyMismatch"`
	// Reported, not failures: a step delivered again for a run that had
	// not finished (at-least-once after a crash), and runs of requests no
	// caller got a 2xx for (cut by a kill after the event was stored).
	RetriedUnfinished int `json:"retriedUnfinished"`
	// RedeliveredRuns counts runs whose message was delivered more than
	// once (the history's deliveries): the kills did catch runs in flight.
	RedeliveredRuns   int    `json:"redeliveredRuns"`
	RanUnacknowledged int    `json:"ranUnacknowledged"`
	Drained           bool   `json:"drained"`
	DrainNote         string `json:"drainNote,omitempty"`
	// Evidence holds up to maxEvidence examples per check.
	Evidence map[string][]string `json:"evidence,omitempty"`

	lostEvents []string // event ids of lost events, for their decision records
	callers    int      // the scenario's concurrent callers
}

const maxEvidence = 10

func (f *figures) evidence(check, format string, args ...any) {
	if f.Evidence == nil {
		f.Evidence = map[string][]string{}
	}
	if len(f.Evidence[check]) < maxEvidence {
		f.Evidence[check] = append(f.Evidence[check], fmt.Sprintf(format, args...))
	}
}

// failures are the checks that must be zero, with their numbers.
func (f *figures) failures() []string {
	var out []string
	for _, c := range []struct {
		name string
		n    int
	}{
		{"lost", f.Lost}, {"duplicate", f.Duplicate}, {"reExecuted", f.ReExecuted},
		{"keysNotExactlyOnce", f.KeysNotExactlyOnce}, {"historyMismatch", f.HistoryMismatch},
	} {
		if c.n > 0 {
			out = append(out, fmt.Sprintf("%s = %d: %v", c.name, c.n, f.Evidence[c.name]))
		}
	}
	if !f.Drained {
		out = append(out, "did not drain: "+f.DrainNote)
	}
	return out
}

// compute checks what the callers were told against what ran. With
// idempotent callers (who retry each key until a 2xx), a key never
// accepted is a key not run exactly once too.
func compute(f *figures, res *loadResult, obs observed, idempotent bool) {
	tried, accepted, attempts, failed := res.snapshot()
	f.EventsSent, f.Attempts, f.Accepted, f.Failed = len(tried), attempts, len(accepted), failed
	f.Replayed = res.replays()
	f.Runs, f.Deliveries = len(obs.history), len(obs.deliveries)

	keyOfEvent := map[string]string{}
	for k, ids := range accepted {
		for _, id := range ids {
			keyOfEvent[id] = k
		}
	}
	hist := map[string]runs.Run{}
	runsOfEvent := map[string][]string{}
	for _, r := range obs.history {
		hist[r.ID] = r
		runsOfEvent[r.EventID] = append(runsOfEvent[r.EventID], r.ID)
	}
	byRun := map[string][]delivery{}
	for _, d := range obs.deliveries {
		byRun[d.Run] = append(byRun[d.Run], d)
	}
	// Which payload id each run belongs to: by the event id the caller was
	// answered with, else by what its steps posted.
	keyOfRun := map[string]string{}
	for _, r := range obs.history {
		if k, ok := keyOfEvent[r.EventID]; ok {
			keyOfRun[r.ID] = k
		}
	}
	for _, d := range obs.deliveries {
		if _, ok := keyOfRun[d.Run]; !ok {
			keyOfRun[d.Run] = d.Key
		}
	}
	runsOfKey := map[string][]string{}
	for _, run := range sortedKeys(keyOfRun) {
		k := keyOfRun[run]
		runsOfKey[k] = append(runsOfKey[k], run)
	}
	complete := func(runID string) bool { // succeeded, and every step reached the listener
		r, ok := hist[runID]
		if !ok || r.Status != runs.StatusSucceeded {
			return false
		}
		for _, s := range steps() {
			if !slices.ContainsFunc(byRun[runID], func(d delivery) bool { return d.Step == s }) {
				return false
			}
		}
		return true
	}

	// Lost: answered 2xx, but no complete run of its event.
	for _, k := range sortedKeys(accepted) {
		ok := false
		for _, ev := range accepted[k] {
			ok = ok || slices.ContainsFunc(runsOfEvent[ev], complete)
		}
		if !ok {
			f.Lost++
			f.lostEvents = append(f.lostEvents, accepted[k]...)
			var states []string
			for _, ev := range accepted[k] {
				for _, r := range runsOfEvent[ev] {
					states = append(states, fmt.Sprintf("%s %s, %d deliveries", r, hist[r].Status, len(byRun[r])))
				}
			}
			f.evidence("lost", "%s (event %v, replayed answer %v): runs %v", k, accepted[k], res.wasReplayed(k), states)
		}
	}
	// Duplicate: one payload id, several run ids; one event, several runs.
	for _, k := range sortedKeys(runsOfKey) {
		if rs := runsOfKey[k]; len(rs) > 1 {
			f.Duplicate++
			f.evidence("duplicate", "%s ran as %v", k, rs)
		}
	}
	for _, ev := range sortedKeys(runsOfEvent) {
		if rs := runsOfEvent[ev]; len(rs) > 1 && len(runsOfKey[keyOfEvent[ev]]) <= 1 {
			f.Duplicate++
			f.evidence("duplicate", "event %s ran as %v", ev, rs)
		}
	}
	// Keys exactly once: every accepted payload id is one event and one
	// complete run.
	for _, k := range sortedKeys(accepted) {
		rs := runsOfKey[k]
		switch {
		case len(accepted[k]) > 1:
			f.KeysNotExactlyOnce++
			f.evidence("keysNotExactlyOnce", "%s was answered with %d event ids %v", k, len(accepted[k]), accepted[k])
		case len(rs) != 1 || !complete(rs[0]):
			f.KeysNotExactlyOnce++
			f.evidence("keysNotExactlyOnce", "%s: runs %v", k, rs)
		}
	}
	if idempotent {
		for _, k := range sortedKeys(tried) {
			if _, ok := accepted[k]; !ok {
				f.KeysNotExactlyOnce++
				f.evidence("keysNotExactlyOnce", "%s was never answered 2xx (ran as %v)", k, runsOfKey[k])
			}
		}
	}
	// Re-executed: a step delivered after its run's succeeded snapshot was
	// stored. Every legitimate delivery precedes that snapshot: the executor
	// writes it only after the last step's answer. Other repeats of a step
	// are the at-least-once retries of an unfinished run.
	reRuns := map[string]bool{}
	for _, run := range sortedKeys(byRun) {
		done := obs.done[run]
		perStep := map[string]int{}
		for _, d := range byRun[run] {
			if !done.IsZero() && d.At.After(done) {
				f.ReExecuted++
				reRuns[run] = true
				f.evidence("reExecuted", "run %s (%s): step %s delivered %s after the run succeeded",
					run, d.Key, d.Step, d.At.Sub(done).Round(time.Millisecond))
				continue
			}
			perStep[d.Step]++
		}
		for _, s := range sortedKeys(perStep) {
			if n := perStep[s]; n > 1 {
				f.RetriedUnfinished += n - 1
				f.evidence("retriedUnfinished", "run %s (%s): step %s delivered %d times before it finished", run, keyOfRun[run], s, n)
			}
		}
	}
	f.ReExecutedRuns = len(reRuns)
	// History matches the listener: every run there succeeded with both
	// steps, each of which reached the listener with the run's event id and
	// the credential's token; every run the listener saw is there.
	for _, r := range obs.history {
		if r.Deliveries > 1 {
			f.RedeliveredRuns++
			f.evidence("redeliveredRuns", "run %s (%s): delivered %d times", r.ID, keyOfRun[r.ID], r.Deliveries)
		}
		var why string
		stepIDs := make([]string, 0, len(r.Steps))
		for _, s := range r.Steps {
			if s.Status == runs.StepSucceeded {
				stepIDs = append(stepIDs, s.ID)
			}
		}
		switch {
		case r.Status != runs.StatusSucceeded:
			why = fmt.Sprintf("status %s (%s)", r.Status, r.Error)
		case !slices.Equal(stepIDs, steps()):
			why = fmt.Sprintf("succeeded steps %v, want %v", stepIDs, steps())
		case !complete(r.ID):
			why = fmt.Sprintf("succeeded, but the listener has %d deliveries", len(byRun[r.ID]))
		case obs.done[r.ID].IsZero():
			why = "succeeded in the history, but RUN_EVENTS has no succeeded snapshot"
		}
		for _, d := range byRun[r.ID] {
			if why == "" && (d.Event != r.EventID || d.Auth != "Bearer "+credToken) {
				why = fmt.Sprintf("delivery of %s carried event %s and %q", d.Step, d.Event, d.Auth)
			}
		}
		if why != "" {
			f.HistoryMismatch++
			f.evidence("historyMismatch", "run %s (%s): %s", r.ID, keyOfRun[r.ID], why)
		}
	}
	for _, run := range sortedKeys(byRun) {
		if _, ok := hist[run]; !ok {
			f.HistoryMismatch++
			f.evidence("historyMismatch", "run %s (%s): %d deliveries, not in the history", run, keyOfRun[run], len(byRun[run]))
		}
	}
	if obs.malformed > 0 {
		f.HistoryMismatch += obs.malformed
		f.evidence("historyMismatch", "%d listener requests were not deliveries", obs.malformed)
	}
	for _, k := range sortedKeys(runsOfKey) {
		if _, ok := accepted[k]; !ok {
			f.RanUnacknowledged++
			f.evidence("ranUnacknowledged", "%s ran as %v; no caller got a 2xx for it", k, runsOfKey[k])
		}
	}
}

package router_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

// scheduleDocs: a per-user schedule (each user's metadata zone, fallback
// Asia/Tokyo) posting to /tick, and a fixed-zone one, with spread when
// spread is set.
func scheduleDocs(url, spread string) string {
	extra := ""
	if spread != "" {
		extra = ", spread: " + spread
	}
	return `kind: Workflow
id: daily
trigger: {type: schedule, cron: "0 0 9 * * *", timezoneFrom: user.metadata.timezone, fallbackZone: Asia/Tokyo, overlap: allow` + extra + `}
steps:
  - id: call
    type: http
    method: POST
    url: ` + url + `/tick
    json: {event: "{{ trigger.id }}", user: "{{ user.id }}"}
---
kind: Workflow
id: fixed
trigger: {type: schedule, every: 1h, timezone: Europe/Berlin, overlap: allow}
steps:
  - id: call
    type: http
    method: POST
    url: ` + url + `/fixed
    json: {event: "{{ trigger.id }}", user: "{{ user.id }}"}
`
}

// tickEvent is one shard of a tick as the scheduler publishes it.
func tickEvent(w, zone string, nominal time.Time, shard, shards int) *sbv1.TriggerEvent {
	tickID := schedule.TickID(project, w, zone, nominal)
	return &sbv1.TriggerEvent{
		Id: envelope.DerivedID(nominal, tickID, strconv.Itoa(shard), strconv.Itoa(shards)), Project: project,
		Kind: sbv1.Kind_SCHEDULE, Name: tickID, Workflow: w,
		Detail: &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{
			Workflow: w, Zone: zone, NominalTime: timestamppb.New(nominal), Shard: uint32(shard), Shards: uint32(shards),
		}},
		OccurredAt: timestamppb.New(nominal),
	}
}

// The schedule decider fans one tick out to its zone's users: every shard
// of the tick together runs each user of the zone once, with the run id of
// the tick (not of the shard); users of other zones are not in it; a user
// whose metadata zone is invalid is in the "" zone and runs in the
// fallback zone, the decision saying why.
func TestScheduleFanOut(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(scheduleDocs(h.lst.URL, ""))
	zones := map[string]string{}
	for i := range 12 {
		if i%3 == 0 {
			zones[fmt.Sprintf("n%d", i)] = "America/New_York"
		} else {
			zones[fmt.Sprintf("b%d", i)] = "Europe/Berlin"
		}
	}
	zones["bad"] = "Mars/Olympus"
	for u, z := range zones {
		h.user(u, func(us *directory.User) { us.Metadata = map[string]any{"timezone": z} })
	}
	h.user("nozone", nil)
	nominal := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC) // 09:00 in Berlin

	t.Run("each user of the zone once across shards", func(t *testing.T) {
		h := h.on(t)
		const shards = 4
		var got []runs.Candidate
		for s := range shards {
			ev := tickEvent("daily", "Europe/Berlin", nominal, s, shards)
			h.routed(h.publish(ev))
			got = append(got, candidates(h.decision(ev.Id))...)
		}
		var users []string
		for _, c := range got {
			if c.Outcome != runs.OutcomeRan || c.Zone != "Europe/Berlin" || c.ZoneReason != schedule.ZoneFromMetadata {
				t.Errorf("candidate %+v", c)
			}
			if want := runs.ID(schedule.TickID(project, "daily", "Europe/Berlin", nominal), "daily", c.User, ""); c.RunID != want {
				t.Errorf("run id of %s = %s, want the tick's %s", c.User, c.RunID, want)
			}
			users = append(users, c.User)
		}
		slices.Sort(users)
		var want []string
		for u, z := range zones {
			if z == "Europe/Berlin" {
				want = append(want, u)
			}
		}
		slices.Sort(want)
		if !slices.Equal(users, want) {
			t.Fatalf("users run = %v, want %v", users, want)
		}
		eventually(t, "a call per user", func() (bool, string) {
			n := len(h.lst.at("/tick"))
			return n >= len(want), fmt.Sprintf("%d calls", n)
		})
	})

	t.Run("fallback zone and its reason", func(t *testing.T) {
		h := h.on(t)
		ev := tickEvent("daily", "", nominal.Add(time.Hour), 0, 1) // 09:00 Tokyo is another instant; the tick names it
		h.routed(h.publish(ev))
		byUser := map[string]runs.Candidate{}
		for _, c := range candidates(h.decision(ev.Id)) {
			byUser[c.User] = c
		}
		for u, reason := range map[string]string{"bad": schedule.ZoneInvalid, "nozone": schedule.ZoneMissing} {
			c, ok := byUser[u]
			if !ok || c.Outcome != runs.OutcomeRan || c.Zone != "Asia/Tokyo" || c.ZoneReason != reason {
				t.Errorf("%s: %+v (ok %v), want a run in Asia/Tokyo with %s", u, c, ok, reason)
			}
		}
		if len(byUser) != 2 {
			t.Errorf("the zone \"\" tick ran %v, want bad and nozone only", byUser)
		}
	})

	t.Run("a fixed zone runs everyone", func(t *testing.T) {
		h := h.on(t)
		ev := tickEvent("fixed", "Europe/Berlin", nominal, 0, 1)
		h.routed(h.publish(ev))
		cands := candidates(h.decision(ev.Id))
		if len(cands) != len(zones)+1 {
			t.Fatalf("%d candidates, want %d (every user)", len(cands), len(zones)+1)
		}
		for _, c := range cands {
			if c.Outcome != runs.OutcomeRan || c.ZoneReason != schedule.ZoneFixed || c.Zone != "Europe/Berlin" {
				t.Errorf("candidate %+v", c)
			}
		}
	})

	t.Run("a repeated tick is the same runs", func(t *testing.T) {
		h := h.on(t)
		// Another replica's copy outside the dedupe window (same tick id,
		// another event id): the run ids repeat, so RUNS absorbs them.
		ev := tickEvent("fixed", "Europe/Berlin", nominal, 0, 1)
		ev.Id = envelope.NewID()
		h.routed(h.publish(ev))
		first := tickEvent("fixed", "Europe/Berlin", nominal, 0, 1)
		a, b := candidates(h.decision(first.Id)), candidates(h.decision(ev.Id))
		for i := range a {
			if a[i].RunID != b[i].RunID {
				t.Fatalf("run %d: %s then %s", i, a[i].RunID, b[i].RunID)
			}
		}
	})
}

// Overlap skip: a user whose run of the previous tick is still in flight
// (a checkpoint in RUN_STATE that is not final) is skipped with
// overlap_running; the others run.
func TestScheduleOverlapSkip(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: Workflow
id: often
trigger: {type: schedule, every: 10s, overlap: skip}
steps:
  - {id: call, type: http, method: POST, url: "` + h.lst.URL + `/often"}
`)
	h.user("busy", nil)
	h.user("idle", nil)
	nominal := time.Date(2026, 3, 2, 8, 0, 10, 0, time.UTC)
	prev := schedule.TickID(project, "often", "UTC", nominal.Add(-10*time.Second))
	busyRun := runs.ID(prev, "often", "busy", "")
	checkpoint := runs.Run{ID: busyRun, Project: project, Workflow: "often", User: "busy", Status: runs.StatusRunning}
	h.putState(checkpoint)

	ev := tickEvent("often", "UTC", nominal, 0, 1)
	h.routed(h.publish(ev))
	byUser := map[string]runs.Candidate{}
	for _, c := range candidates(h.decision(ev.Id)) {
		byUser[c.User] = c
	}
	if c := byUser["busy"]; c.Outcome != runs.OutcomeSkipped || c.Reason != decide.ReasonOverlap {
		t.Errorf("busy: %+v, want skipped %s", c, decide.ReasonOverlap)
	}
	if c := byUser["idle"]; c.Outcome != runs.OutcomeRan {
		t.Errorf("idle: %+v, want ran", c)
	}
	d := h.decision(ev.Id)[0]
	if d.Summary.Ran != 1 || d.Summary.Skipped[decide.ReasonOverlap] != 1 {
		t.Errorf("summary %+v", d.Summary)
	}
}

// Spread: a run whose start lies ahead is stored as a one-shot schedule
// message on sb.runat.<p>.<run>, which the server publishes onto the run
// subject at its time; the run then executes.
func TestScheduleSpreadDelaysRuns(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: Workflow
id: spread
trigger: {type: schedule, every: 1m, spread: 3s, overlap: allow}
steps:
  - {id: call, type: http, method: POST, url: "` + h.lst.URL + `/spread", json: {user: "{{ user.id }}"}}
`)
	h.user("s1", nil)
	// A nominal time 2 s ahead keeps the start (nominal + 0–3 s) ahead
	// when the router decides, whatever the user's offset.
	nominal := time.Now().UTC().Truncate(time.Second).Add(2 * time.Second)
	ev := tickEvent("spread", "UTC", nominal, 0, 1)
	h.routed(h.publish(ev))
	c := candidates(h.decision(ev.Id))[0]
	if c.Outcome != runs.OutcomeRan {
		t.Fatalf("candidate %+v", c)
	}
	if c.At.IsZero() || c.At.Before(nominal) || !c.At.Before(nominal.Add(3*time.Second)) {
		t.Fatalf("start %s not in [%s, +3s)", c.At, nominal)
	}
	if n := len(h.stored(subjects.StreamRuns, subjects.RunAt(project, c.RunID))); n != 1 {
		t.Errorf("%d schedule messages for %s, want 1", n, c.RunID)
	}
	r := h.finished(c.RunID)
	if r.Status != runs.StatusSucceeded {
		t.Fatalf("run %+v", r)
	}
	msgs := h.runMessages("spread")
	if len(msgs) != 1 {
		t.Fatalf("%d run messages, want 1", len(msgs))
	}
	// The fired message's stream time is when the server published it.
	if early := c.At.Sub(msgs[0].Time); early > 10*time.Millisecond {
		t.Errorf("the run was published %s before its start time", early)
	}
}

// putState stores r as the run's checkpoint in RUN_STATE, as the executor
// does while a run is in flight.
func (h *harness) putState(r runs.Run) {
	h.t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.srv.JS.Publish(h.ctx(), subjects.RunState(project, r.ID), b); err != nil {
		h.t.Fatal(err)
	}
}

// Overlap buffer_one: a user whose previous tick's run is in flight gets
// this tick's run held back until that run is done (one waits); when the
// run in flight is older, a tick waits already or was dropped, so this one
// is skipped.
func TestScheduleOverlapBufferOne(t *testing.T) {
	h := newHarness(t, router.Options{})
	h.apply(`kind: Workflow
id: buffered
trigger: {type: schedule, every: 10s, overlap: buffer_one}
steps:
  - {id: call, type: http, method: POST, url: "` + h.lst.URL + `/buffered", json: {user: "{{ user.id }}"}}
`)
	h.user("u", nil)
	nominal := time.Date(2026, 3, 2, 8, 0, 30, 0, time.UTC)
	tickRun := func(n time.Time) string {
		return runs.ID(schedule.TickID(project, "buffered", "UTC", n), "buffered", "u", "")
	}
	long := runs.Run{ID: tickRun(nominal.Add(-10 * time.Second)), Project: project, Workflow: "buffered", User: "u", Status: runs.StatusRunning}
	h.putState(long)

	ev := tickEvent("buffered", "UTC", nominal, 0, 1)
	h.routed(h.publish(ev))
	c := candidates(h.decision(ev.Id))[0]
	if c.Outcome != runs.OutcomeRan || c.After != long.ID {
		t.Fatalf("candidate %+v, want a run after %s", c, long.ID)
	}
	if msgs := h.runMessages("buffered"); len(msgs) != 1 || msgs[0].Header.Get(router.HeaderAfterRun) != long.ID {
		t.Fatalf("run messages %v", msgs)
	}

	t.Run("the next tick while one waits is skipped", func(t *testing.T) {
		h := h.on(t)
		ev := tickEvent("buffered", "UTC", nominal.Add(10*time.Second), 0, 1)
		h.routed(h.publish(ev))
		if c := candidates(h.decision(ev.Id))[0]; c.Outcome != runs.OutcomeSkipped || c.Reason != decide.ReasonOverlap {
			t.Fatalf("candidate %+v, want skipped %s", c, decide.ReasonOverlap)
		}
	})

	// Held back while the long run is in flight (the first hand-backs are
	// 1 s, 2 s …); it runs once the long run's final state is stored.
	eventually(t, "the buffered run handed back", func() (bool, string) {
		ci, err := h.srv.JS.Consumer(h.ctx(), subjects.StreamRuns, router.ExecutorDurable(project))
		if err != nil {
			return false, err.Error()
		}
		info, err := ci.Info(h.ctx())
		if err != nil {
			return false, err.Error()
		}
		return info.NumRedelivered > 0, fmt.Sprintf("%+v", info)
	})
	if n := len(h.lst.at("/buffered")); n != 0 {
		t.Fatalf("the buffered run ran while its predecessor was in flight (%d calls)", n)
	}
	long.Status = runs.StatusSucceeded
	h.putState(long)
	if r := h.finished(c.RunID); r.Status != runs.StatusSucceeded {
		t.Fatalf("buffered run %+v", r)
	}
}

// A tick whose decision outgrows a few pages is written as it goes: full
// pages while the fan-out is decided, each counting the pages so far, then
// a last record with the whole summary; every user runs once, and the
// history read model merges the pages under the final summary.
func TestScheduleLargeDecisionWrittenAsItGoes(t *testing.T) {
	const pageSize, users = 2, 21 // past the 8 pages a decision collects before it streams
	h := newHarness(t, router.Options{DecisionPage: pageSize})
	h.apply(scheduleDocs(h.lst.URL, ""))
	for i := range users {
		h.user(fmt.Sprintf("u%02d", i), func(us *directory.User) { us.Metadata = map[string]any{"timezone": "Europe/Berlin"} })
	}
	nominal := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	ev := tickEvent("daily", "Europe/Berlin", nominal, 0, 1)
	h.routed(h.publish(ev))
	pages := h.decision(ev.Id)
	const want = (users+pageSize-1)/pageSize + 1 // the candidate pages and the summary
	if len(pages) != want {
		t.Fatalf("%d decision records, want %d", len(pages), want)
	}
	seen := map[string]bool{}
	for i, p := range pages {
		last := i == len(pages)-1
		switch {
		case p.Page != i:
			t.Errorf("record %d is page %d", i, p.Page)
		case last && (len(p.Candidates) != 0 || p.Summary.Pages != want || p.Summary.Ran != users || p.Summary.Candidates != users):
			t.Errorf("last record: %d candidates, summary %+v; want none and %d ran over %d pages", len(p.Candidates), p.Summary, users, want)
		case !last && p.Summary.Pages != i+2:
			t.Errorf("page %d: summary says %d pages, want %d (more follow)", i, p.Summary.Pages, i+2)
		case !last && p.Summary.Ran != min(users, (i+1)*pageSize):
			t.Errorf("page %d: summary counts %d ran, want the %d of pages 0..%d", i, p.Summary.Ran, min(users, (i+1)*pageSize), i)
		}
		for _, c := range p.Candidates {
			if seen[c.User] || c.Outcome != runs.OutcomeRan {
				t.Errorf("candidate %+v (seen before: %v)", c, seen[c.User])
			}
			seen[c.User] = true
		}
	}
	if len(seen) != users {
		t.Errorf("%d users in the pages, want %d", len(seen), users)
	}
	if n := len(h.runMessages("daily")); n != users {
		t.Errorf("%d run messages, want %d", n, users)
	}
	eventually(t, "the merged decision in the history read model", func() (bool, string) {
		d, err := h.hist.GetDecision(project, ev.Id)
		if err != nil || d == nil {
			return false, fmt.Sprint(err)
		}
		return d.Summary.Ran == users && d.Summary.Pages == want && len(d.Candidates) == users,
			fmt.Sprintf("summary %+v, %d candidates", d.Summary, len(d.Candidates))
	})
}

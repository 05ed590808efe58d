package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/services/scheduler"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// scheduleDocs: every second in each user's zone (fallback Asia/Tokyo),
// catching up once, posting who ran for which tick.
func scheduleDocs(url string) string {
	return `kind: Workflow
id: every-second
trigger: {type: schedule, every: 1s, timezoneFrom: user.metadata.timezone, fallbackZone: Asia/Tokyo, catchup: once, overlap: allow}
steps:
  - id: call
    type: http
    method: POST
    url: ` + url + `/tick
    json: {event: "{{ trigger.id }}", user: "{{ user.id }}", nominal: "{{ trigger.schedule.nominalTime }}", zone: "{{ trigger.schedule.zone }}"}
`
}

// scheduleUsers are the users of the schedule walk-through and the zone
// the index files each under ("" : no valid zone).
var scheduleUsers = map[string]struct{ metadata, zone string }{
	"berlin-1": {"Europe/Berlin", "Europe/Berlin"},
	"berlin-2": {"Europe/Berlin", "Europe/Berlin"},
	"nyc-1":    {"America/New_York", "America/New_York"},
	"bad-zone": {"Mars/Olympus", ""},
}

// callsByUser groups the listener's /tick calls by user, then nominal time.
func callsByUser(l *listener) map[string]map[string][]received {
	out := map[string]map[string][]received{}
	for _, r := range l.all() {
		if r.Path != "/tick" {
			continue
		}
		u, _ := r.Body["user"].(string)
		n, _ := r.Body["nominal"].(string)
		if out[u] == nil {
			out[u] = map[string][]received{}
		}
		out[u][n] = append(out[u][n], r)
	}
	return out
}

// TestScheduleWalkthrough: a workflow every second in each user's zone,
// users in two zones and one with an invalid zone, in a dev system (every
// role, one replica). Each user runs once per tick in their zone's tick;
// the invalid zone runs in the fallback zone with zone_invalid in the
// decision; GET …/schedule shows each zone's next ticks; after 3 s down,
// the restart fires one catch-up tick per zone (catchup: once) whose
// nominal time is the latest missed one, and each user runs it once.
func TestScheduleWalkthrough(t *testing.T) {
	dir := t.TempDir()
	l := newListener(t)
	sys, stop := startDev(t, dev.Options{DataDir: dir})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	for u, z := range scheduleUsers {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/"+u, key, map[string]any{"metadata": map[string]any{"timezone": z.metadata}})
	}
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, scheduleDocs(l.URL))

	eventually(t, 30*time.Second, "3 ticks run for every user", func() (bool, string) {
		by := callsByUser(l)
		for u := range scheduleUsers {
			if len(by[u]) < 3 {
				return false, fmt.Sprintf("%s ran %d ticks", u, len(by[u]))
			}
		}
		return true, ""
	})
	by := callsByUser(l)
	for u, z := range scheduleUsers {
		for n, calls := range by[u] {
			if len(calls) != 1 {
				t.Errorf("%s ran tick %s %d times", u, n, len(calls))
			}
			if got := calls[0].Body["zone"]; got != z.zone {
				t.Errorf("%s ran in zone %q's tick, want %q", u, got, z.zone)
			}
		}
	}

	t.Run("fallback zone in the decision", func(t *testing.T) {
		var ev string
		for _, calls := range by["bad-zone"] {
			ev, _ = calls[0].Body["event"].(string)
			break
		}
		d := getDecision(t, a, key, ev)
		var found bool
		for _, c := range d.Candidates {
			if c.User == "bad-zone" {
				found = true
				if c.Outcome != runs.OutcomeRan || c.Zone != "Asia/Tokyo" || c.ZoneReason != schedule.ZoneInvalid {
					t.Errorf("candidate %+v, want a run in Asia/Tokyo with %s", c, schedule.ZoneInvalid)
				}
			}
		}
		if !found {
			t.Errorf("bad-zone is not in decision %+v", d)
		}
	})

	t.Run("schedule API", func(t *testing.T) {
		var v scheduler.ScheduleView
		a.must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows/every-second/schedule?next=2", key, nil).decode(t, &v)
		zones := map[string]scheduler.ZoneSchedule{}
		for _, z := range v.Zones {
			zones[z.Zone] = z
		}
		for _, want := range []string{"", "America/New_York", "Europe/Berlin"} {
			z, ok := zones[want]
			if !ok {
				t.Fatalf("zone %q missing from %+v", want, v.Zones)
			}
			if len(z.Next) != 2 || !z.Next[0].After(time.Now().Add(-time.Second)) || z.Last == nil || len(z.Recent) == 0 {
				t.Errorf("zone %q: %+v", want, z)
			}
		}
		if zones[""].Location != "Asia/Tokyo" {
			t.Errorf("the no-zone zone computes in %q, want the fallback", zones[""].Location)
		}
		r := a.call(t, "GET", "/v1/projects/dev/workflows/nope/schedule", key, nil)
		if r.Status != http.StatusNotFound || r.errCode() != "workflow_not_found" {
			t.Errorf("unknown workflow: %s", r)
		}
	})

	// Down for 3 s (whole ticks missed), then the same data dir again.
	stop()
	down := time.Now()
	for time.Since(down) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	sys2, _ := startDev(t, dev.Options{DataDir: dir})
	up := time.Now()
	a2 := newAPI(sys2.HTTPAddr)
	var v scheduler.ScheduleView
	eventually(t, 10*time.Second, "a catch-up tick in every zone", func() (bool, string) {
		a2.must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows/every-second/schedule", key, nil).decode(t, &v)
		for _, z := range v.Zones {
			if catchup(z) == nil {
				return false, fmt.Sprintf("zone %q: %+v", z.Zone, z.Recent)
			}
		}
		return len(v.Zones) == 3, fmt.Sprint(len(v.Zones), " zones")
	})
	for _, z := range v.Zones {
		c := catchup(z)
		if !c.Nominal.After(down) || c.Nominal.After(up) {
			t.Errorf("zone %q: catch-up nominal %s is not in the downtime", z.Zone, c.Nominal)
		}
		nominal := c.Nominal.Format(time.RFC3339)
		for u, uz := range scheduleUsers {
			if uz.zone != z.Zone {
				continue
			}
			eventually(t, 10*time.Second, u+" to run the catch-up tick "+nominal, func() (bool, string) {
				n := len(callsByUser(l)[u][nominal])
				return n == 1, fmt.Sprintf("%d runs", n)
			})
			// Ticks of the downtime before the catch-up one never run
			// (catchup: once), and the catch-up one runs once.
			for n := range callsByUser(l)[u] {
				ts, _ := time.Parse(time.RFC3339, n)
				if ts.After(down) && ts.Before(c.Nominal) {
					t.Errorf("%s ran missed tick %s besides the catch-up %s", u, n, nominal)
				}
			}
		}
	}
}

// catchup is the zone's catch-up tick among its recent ones, if any.
func catchup(z scheduler.ZoneSchedule) *scheduler.FiredView {
	for i := range z.Recent {
		if z.Recent[i].Catchup {
			return &z.Recent[i]
		}
	}
	return nil
}

// TestScheduleBadInput: an invalid cron, an unknown zone, an interval under
// one second are apply-time 400s naming the field; nothing is applied.
func TestScheduleBadInput(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	for _, tc := range []struct{ trigger, field string }{
		{`{type: schedule, cron: "0 0 25 * * *"}`, "trigger.cron"},
		{`{type: schedule, cron: "0 0 9 * * MON#2"}`, "trigger.cron"},
		{`{type: schedule, every: 5s, timezone: Europe/Atlantis}`, "trigger.timezone"},
		{`{type: schedule, every: 5s, timezoneFrom: user.metadata.timezone, fallbackZone: Nowhere}`, "trigger.fallbackZone"},
		{`{type: schedule, every: 500ms}`, "trigger.every"},
		{`{type: schedule, every: 5s, catchup: sometimes}`, "trigger.catchup"},
	} {
		t.Run(tc.field+" "+tc.trigger, func(t *testing.T) {
			doc := "kind: Workflow\nid: bad\ntrigger: " + tc.trigger + "\nsteps: [{id: a, type: http, url: 'https://example.com'}]\n"
			r := a.call(t, "POST", "/v1/projects/dev/apply", key, doc)
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"`+tc.field+`"`) {
				t.Fatalf("apply: %s, want 400 naming %s", r, tc.field)
			}
		})
	}
	if r := a.call(t, "GET", "/v1/projects/dev/workflows/bad", key, nil); r.Status != http.StatusNotFound {
		t.Errorf("an invalid workflow was applied: %s", r)
	}
}

// TestScheduleTriggerNow: POST …/schedule/trigger runs a tick now for one
// user (once, whatever their zone) or for all; a daily schedule that will
// not tick during the test shows that the runs come from the call.
func TestScheduleTriggerNow(t *testing.T) {
	l := newListener(t)
	sys, _ := startDev(t, dev.Options{})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	for u, z := range scheduleUsers {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/"+u, key, map[string]any{"metadata": map[string]any{"timezone": z.metadata}})
	}
	doc := strings.Replace(scheduleDocs(l.URL), "every: 1s", `cron: "0 0 3 1 1 *"`, 1)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, doc)

	a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/workflows/every-second/schedule/trigger", key, map[string]any{"user": "nyc-1"})
	eventually(t, 20*time.Second, "nyc-1's run", func() (bool, string) {
		n := len(l.matching("user", "nyc-1"))
		return n == 1, fmt.Sprint(n, " runs")
	})
	var res scheduler.TriggerResult
	a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/workflows/every-second/schedule/trigger", key, nil).decode(t, &res)
	eventually(t, 20*time.Second, "a run per user", func() (bool, string) {
		for u := range scheduleUsers {
			want := 1
			if u == "nyc-1" {
				want = 2
			}
			if n := len(l.matching("user", u)); n != want {
				return false, fmt.Sprintf("%s: %d runs, want %d", u, n, want)
			}
		}
		return true, ""
	})
	if len(res.Events) != 3 {
		t.Errorf("events by zone %v, want the 3 zones in use", res.Events)
	}
	r := a.call(t, "POST", "/v1/projects/dev/workflows/every-second/schedule/trigger", key, map[string]any{"user": "x", "extra": 1})
	if r.Status != http.StatusBadRequest {
		t.Errorf("unknown body field: %s", r)
	}
	// The schedule API is the project's (API key), not a user's, and only
	// for schedule workflows.
	token, err := sys.Token("nyc-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.call(t, "GET", "/v1/projects/dev/workflows/every-second/schedule", token, nil); r.Status != http.StatusForbidden {
		t.Errorf("a user token: %s", r)
	}
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key,
		"kind: Workflow\nid: req\ntrigger: {type: request}\nsteps: [{id: r, type: response, json: {ok: true}}]\n")
	if r := a.call(t, "POST", "/v1/projects/dev/workflows/req/schedule/trigger", key, nil); r.Status != http.StatusBadRequest || r.errCode() != "not_a_schedule" {
		t.Errorf("a request workflow: %s", r)
	}
}

// TestScheduleBackfill: POST …/schedule/backfill fires the ticks of a past
// range in every zone in use, page by page, each with its nominal time;
// repeating it runs nothing again.
func TestScheduleBackfill(t *testing.T) {
	l := newListener(t)
	sys, _ := startDev(t, dev.Options{})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	for u, z := range scheduleUsers {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/"+u, key, map[string]any{"metadata": map[string]any{"timezone": z.metadata}})
	}
	doc := strings.Replace(scheduleDocs(l.URL), "every: 1s", `cron: "0 0 3 * * *"`, 1)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, doc)
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(72 * time.Hour)
	backfill := func() (ticks int) {
		for cur := from; ; {
			var res scheduler.BackfillResult
			a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/workflows/every-second/schedule/backfill", key,
				map[string]any{"from": cur, "to": to, "limit": 2}).decode(t, &res)
			ticks += res.Ticks
			if res.Done {
				return ticks
			}
			cur = res.Next
		}
	}
	// 3 days × 3 zones, each at 03:00 local: 9 instants.
	if n := backfill(); n != 9 {
		t.Errorf("%d ticks, want 9", n)
	}
	eventually(t, 20*time.Second, "3 runs per user", func() (bool, string) {
		by := callsByUser(l)
		for u := range scheduleUsers {
			if len(by[u]) != 3 {
				return false, fmt.Sprintf("%s: %d ticks", u, len(by[u]))
			}
		}
		return true, ""
	})
	for u, z := range scheduleUsers {
		zone := z.zone
		if zone == "" {
			zone = "Asia/Tokyo"
		}
		loc, _ := time.LoadLocation(zone)
		for n := range callsByUser(l)[u] {
			ts, _ := time.Parse(time.RFC3339, n)
			if got := ts.In(loc).Format("15:04:05"); got != "03:00:00" {
				t.Errorf("%s ran tick %s, %s local, want 03:00", u, n, got)
			}
		}
	}
	total := len(l.all())
	backfill()
	r := a.call(t, "POST", "/v1/projects/dev/workflows/every-second/schedule/backfill", key, map[string]any{"from": from, "to": time.Now().Add(time.Hour)})
	if r.Status != http.StatusBadRequest || r.errCode() != "invalid_field" {
		t.Errorf("a range into the future: %s", r)
	}
	// Nothing ran again: the repeated ticks have the same event ids (here,
	// within the dedupe window, TRIGGERS absorbs them; later, the same run
	// ids, which the executor finds finished).
	if got := len(l.all()); got != total {
		t.Errorf("%d calls after repeating the backfill, want %d", got, total)
	}
}

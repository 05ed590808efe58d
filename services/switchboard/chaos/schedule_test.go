//go:build chaos

package chaos

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// scheduleDocs: a workflow every second for every user, in UTC, catching up
// everything missed, posting one delivery per run keyed by (user, nominal
// time).
func scheduleDocs(listenerURL string) string {
	return `kind: Workflow
id: tick
enabledByDefault: true
trigger: {type: schedule, every: 1s, timezone: UTC, catchup: all, catchupWindow: 5m, overlap: allow}
steps:
  - id: tick
    type: http
    method: POST
    url: ` + listenerURL + `/tick
    json: {step: tick, run: "{{ run.id }}", event: "{{ trigger.id }}", key: "{{ user.id }}@{{ trigger.schedule.nominalTime }}"}
`
}

// TestSchedulerKill: real processes — nats-server, a front (ingress,
// history, connection-lifecycle), two routers and two scheduler replicas
// firing the same jobs with no leader. One scheduler is killed with SIGKILL
// mid-way (its armed ticks die with it) and restarted. Over the whole
// window every user runs every second exactly once: no tick missed (the
// other replica fires it), none doubled (tick and run ids derive from the
// nominal time, so JetStream keeps one of each).
func TestSchedulerKill(t *testing.T) {
	s := &suite{bins: buildBinaries(t, t.TempDir())}
	logDir := t.TempDir()
	t.Logf("process logs in %s", logDir)
	fr := startFront(t, s, logDir, "front", "ingress,history,connection-lifecycle")
	a, key, l, common := fr.api, fr.key, fr.listener, fr.common
	const users = 4
	for i := range users {
		a.must(t, http.StatusOK, "PUT", fmt.Sprintf("/v1/projects/%s/users/u%d", project, i), key, map[string]any{"metadata": map[string]any{}}, nil)
	}
	var procs []*proc
	for _, name := range []string{"router-a", "router-b"} {
		p, _ := newServe(t, s, name, "router", common, logDir)
		procs = append(procs, p)
	}
	doomed, _ := newServe(t, s, "scheduler-a", "scheduler", common, logDir)
	survivor, _ := newServe(t, s, "scheduler-b", "scheduler", common, logDir)
	procs = append(procs, doomed, survivor)
	for _, p := range procs {
		p.start(t)
	}
	for _, p := range procs {
		p.waitReady(t, 60*time.Second)
	}
	a.must(t, http.StatusOK, "POST", "/v1/projects/"+project+"/apply", key, scheduleDocs(l.srv.URL), nil)

	// ticks is, per user, how often each nominal second ran.
	ticks := func() map[string]map[string]int {
		by := map[string]map[string]int{}
		for _, d := range l.deliveries() {
			u, nominal, ok := strings.Cut(d.Key, "@")
			if !ok {
				continue
			}
			if by[u] == nil {
				by[u] = map[string]int{}
			}
			by[u][nominal]++
		}
		return by
	}
	seconds := func(n int) func() (bool, string) {
		return func() (bool, string) {
			by := ticks()
			for i := range users {
				if got := len(by[fmt.Sprintf("u%d", i)]); got < n {
					return false, fmt.Sprintf("u%d ran %d ticks", i, got)
				}
			}
			return true, ""
		}
	}
	poll(t, 60*time.Second, "8 ticks for every user", seconds(8))
	doomed.kill(t)
	poll(t, 60*time.Second, "16 ticks for every user", seconds(16))
	doomed.start(t)
	doomed.waitReady(t, 60*time.Second)
	poll(t, 60*time.Second, "24 ticks for every user", seconds(24))
	// Stop the ticks, then let runs in flight finish.
	a.must(t, http.StatusOK, "POST", "/v1/projects/"+project+"/apply", key, strings.Replace(scheduleDocs(l.srv.URL), "every: 1s", "every: 1h", 1), nil)
	poll(t, 60*time.Second, "the listener quiet for 5s", func() (bool, string) {
		return l.quietFor(5 * time.Second), "deliveries still arriving"
	})

	doubled, missed := 0, 0
	for i := range users {
		u := fmt.Sprintf("u%d", i)
		var secs []time.Time
		for nominal, n := range ticks()[u] {
			at, err := time.Parse(time.RFC3339, nominal)
			if err != nil {
				t.Fatalf("%s: nominal %q: %v", u, nominal, err)
			}
			if n != 1 {
				doubled++
				t.Errorf("%s: tick %s ran %d times, want 1", u, nominal, n)
			}
			secs = append(secs, at)
		}
		slices.SortFunc(secs, time.Time.Compare)
		for j := 1; j < len(secs); j++ {
			if gap := secs[j].Sub(secs[j-1]); gap != time.Second {
				missed += int(gap/time.Second) - 1
				t.Errorf("%s: no run between %s and %s", u, secs[j-1].Format(time.TimeOnly), secs[j].Format(time.TimeOnly))
			}
		}
		t.Logf("%s: %d ticks from %s to %s", u, len(secs), secs[0].Format(time.TimeOnly), secs[len(secs)-1].Format(time.TimeOnly))
	}
	t.Logf("%d users, %d runs, %d doubled, %d missed; scheduler-a killed %d time(s)", users, len(l.deliveries()), doubled, missed, doomed.kills)
}

//go:build chaos

package chaos

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lifecycleDocs: an integration with a required setting and a workflow on
// its Integration Enabled posting one delivery per run (key = the user).
func lifecycleDocs(listenerURL string) string {
	return `kind: Integration
id: lc
auth: {type: bearer}
settings: [{key: portalId, type: string, required: true}]
---
kind: Workflow
id: lc-welcome
trigger: {type: integration_enabled, integration: lc}
steps:
  - id: enabled
    type: http
    method: POST
    url: ` + listenerURL + `/enabled
    json: {step: enabled, run: "{{ run.id }}", event: "{{ trigger.id }}", key: "{{ user.id }}"}
`
}

// TestLifecycleKill: real processes — nats-server, a front
// (ingress, history, router) and two connection-lifecycle replicas sharing
// the change consumer. Credentials are connected and completed through the
// surviving replica's API while the other is killed with SIGKILL mid-way
// (and restarted later), so changes it had pulled or was deriving die with
// it. Every user's Integration Enabled workflow must run exactly once:
// none lost (what the dead replica held comes back after AckWait), none
// doubled (the outbox and the events' dedupe keys).
func TestLifecycleKill(t *testing.T) {
	s := &suite{bins: buildBinaries(t, t.TempDir())}
	logDir := t.TempDir()
	t.Logf("process logs in %s", logDir)
	fr := startFront(t, s, logDir, "front", "ingress,history,router")
	a, key, l, common := fr.api, fr.key, fr.listener, fr.common
	a.must(t, http.StatusOK, "POST", "/v1/projects/"+project+"/apply", key, lifecycleDocs(l.srv.URL), nil)

	doomed, _ := newServe(t, s, "lifecycle-a", "connection-lifecycle", common, logDir)
	survivor, survivorAddr := newServe(t, s, "lifecycle-b", "connection-lifecycle", common, logDir)
	doomed.start(t)
	survivor.start(t)
	doomed.waitReady(t, 60*time.Second)
	survivor.waitReady(t, 60*time.Second)
	lc := newAPI(survivorAddr)

	// Writers: each user is connected without the required setting, then
	// completed — two revisions, the second one the transition.
	const users = 240
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > users {
					return
				}
				u := fmt.Sprintf("lc-%03d", i)
				base := "/v1/projects/" + project + "/users/" + u + "/credentials/c1"
				for _, call := range []struct {
					method, path string
					body         any
				}{
					{"PUT", base, map[string]any{"integration": "lc", "providerAccountId": "acct-" + u, "secret": map[string]any{"accessToken": "t"}}},
					{"PUT", base + "/settings", map[string]any{"portalId": "p-" + u}},
				} {
					for attempt := 0; ; attempt++ {
						st, raw, err := lc.call(call.method, call.path, key, call.body)
						if err == nil && st == http.StatusOK {
							break
						}
						if attempt == 20 {
							t.Errorf("%s %s: %d %s %v", call.method, call.path, st, raw, err)
							failed.Add(1)
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		})
	}
	poll(t, 60*time.Second, "a third of the users written", func() (bool, string) {
		n := next.Load()
		return n >= users/3, fmt.Sprintf("%d written", n)
	})
	doomed.kill(t)
	poll(t, 60*time.Second, "two thirds of the users written", func() (bool, string) {
		n := next.Load()
		return n >= 2*users/3, fmt.Sprintf("%d written", n)
	})
	doomed.start(t)
	doomed.waitReady(t, 60*time.Second)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}

	// What the killed replica held comes back after the consumer's AckWait
	// (30 s); then nothing more may arrive.
	count := func() map[string]int {
		by := map[string]int{}
		for _, d := range l.deliveries() {
			by[d.Key]++
		}
		return by
	}
	poll(t, 90*time.Second, "every user's Integration Enabled run", func() (bool, string) {
		by := count()
		return len(by) == users, fmt.Sprintf("%d of %d users ran", len(by), users)
	})
	poll(t, 60*time.Second, "the listener quiet for 5s", func() (bool, string) {
		return l.quietFor(5 * time.Second), "deliveries still arriving"
	})
	doubled := 0
	for u, n := range count() {
		if n != 1 {
			doubled++
			t.Errorf("%s: %d Integration Enabled runs, want 1", u, n)
		}
	}
	t.Logf("%d users, %d runs, %d doubled, lifecycle-a killed %d time(s)", users, len(l.deliveries()), doubled, doomed.kills)
}

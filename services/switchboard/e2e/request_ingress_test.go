package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
)

const rqTwoIngressDocs = `kind: Workflow
id: rq-mirror
trigger: {type: request}
steps:
  - id: reply
    type: response
    json:
      caller: "{{ trigger.request.body.caller }}"
      n: "{{ trigger.request.body.n }}"
      via: "{{ trigger.request.headers['x-via'] }}"
      run: "{{ run.id }}"
`

// TestRequestTwoIngress runs two ingress instances, each with its own NATS
// connection, catalog copy and HTTP server, and one router on one NATS
// server; 100 concurrent synchronous callers spread over both each get the
// answer to their own request.
func TestRequestTwoIngress(t *testing.T) {
	t.Parallel()
	st := rqStartStack(t)
	st.startRouter(t, router.Options{})
	ingA := st.startIngress(t, 0)
	ingB := st.startIngress(t, 0)
	key := st.apiKey
	rqSetup(t, ingA, key, rqTwoIngressDocs)
	st.syncCatalogs(t)
	token := st.token("u1")

	const n = 100
	type result struct {
		r   response
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ing, via := ingA, "a"
			if i%2 == 1 {
				ing, via = ingB, "b"
			}
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			body := fmt.Appendf(nil, `{"caller":"caller-%03d","n":%d}`, i, i)
			r, err := rqDo(ctx, "POST", ing.base+"/v1/projects/dev/workflows/rq-mirror/trigger", body,
				"Authorization", "Bearer "+token, "X-Via", via)
			results[i] = result{r, err}
		}()
	}
	close(start)
	wg.Wait()

	seen := map[string]int{}
	for i, res := range results {
		if res.err != nil {
			t.Errorf("caller %d: %v", i, res.err)
			continue
		}
		r := res.r
		if r.Status != http.StatusOK {
			t.Errorf("caller %d: %s, want 200", i, r)
			continue
		}
		got := rqObject(t, r)
		via := "a"
		if i%2 == 1 {
			via = "b"
		}
		runID := r.Header.Get("X-Switchboard-Run-Id")
		want := map[string]any{"caller": fmt.Sprintf("caller-%03d", i), "n": i, "via": via, "run": runID}
		if !rqJSONEqual(got, want) {
			t.Errorf("caller %d (ingress %s) got %s, want %v", i, via, r.Body, want)
		}
		seen[runID]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct run ids for %d callers", len(seen), n)
	}
	if got := rqSubjectMsgs(t, st.js, subjects.StreamTriggers, subjects.Trigger("dev", subjects.KindRequest, "rq-mirror")); got != n {
		t.Errorf("%d triggers stored, want %d", got, n)
	}
	// Both instances serve the history of runs started through either.
	for id := range seen {
		for _, ing := range []api{ingA, ingB} {
			if run := waitRun(t, ing, key, id); run.Status != runs.StatusSucceeded {
				t.Fatalf("run %s: %s (%s)", id, run.Status, run.Error)
			}
		}
		break
	}
}

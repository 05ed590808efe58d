package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/egress"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// midstreamEvents is how many events TestRouterRestartMidStream routes. The
// race detector makes a run about four times slower, so under -race the
// same scenario runs with fewer events (still checked for data races).
var midstreamEvents = map[bool]int{false: 10_000, true: 2_000}[raceEnabled]

// hitCounter counts the calls per run id the workflow's http step makes.
type hitCounter struct {
	mu    sync.Mutex
	perID map[string]int
	total int
}

func (h *hitCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Run string `json:"run"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Run == "" {
		http.Error(w, "no run id", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.perID[body.Run]++
	h.total++
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (h *hitCounter) counts() (distinct, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.perID), h.total
}

// TestRouterRestartMidStream routes 10,000 App Events (2,000 under -race) already stored in
// TRIGGERS, stops the router (gracefully) part-way through, starts a new one
// on the same NATS, and checks that every event's run called the target
// exactly once: none lost, none run twice.
func TestRouterRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logger := testLogger(t)

	// NATS, streams, catalog.
	srv := brokertest.Start(t)
	nc, js := srv.NC, srv.JS
	cat := brokertest.CatalogWith(t, catalog.Options{JS: js, Logger: logger})
	dir := brokertest.DirectoryWith(t, directory.Options{JS: js, Logger: logger})

	hits := &hitCounter{perID: map[string]int{}}
	target := httptest.NewServer(hits)
	t.Cleanup(target.Close)

	const project = "dev"
	objs, err := workflow.Parse([]byte(`kind: AppEvent
name: Contact Created
---
kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: count-runs
integration: crm
trigger: {type: app_event, event: Contact Created}
steps:
  - id: post
    type: http
    method: POST
    url: `+target.URL+`/hit
    auth: credential
    json: {run: "{{ run.id }}"}
    retry: {attempts: 5, backoff: 50ms}
`), project)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.UpdateProject(ctx, project, func(*catalog.Project) error { return nil }); err != nil {
		t.Fatal(err)
	}
	applied, err := cat.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dir.UpdateCredential(ctx, project, "u1", "c1", func(cr *directory.Credential, _ bool) error {
		cr.Integration = "crm"
		cr.Secret = map[string]any{"accessToken": "tok"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cat.WaitRevision(ctx, applied); err != nil {
		t.Fatal(err)
	}

	// 10,000 events, stored before any router runs.
	want := make(map[string]bool, midstreamEvents)
	subject := subjects.Trigger(project, subjects.KindAppEvent, "u1")
	for i := 0; i < midstreamEvents; i += 1000 {
		for j := i; j < min(i+1000, midstreamEvents); j++ {
			ev := &sbv1.TriggerEvent{
				Id: envelope.NewID(), Project: project, Kind: sbv1.Kind_APP_EVENT, Name: "Contact Created", User: "u1",
				Payload: []byte(fmt.Sprintf(`{"email":"c%d@example.com"}`, j)), ReceivedAt: timestamppb.Now(),
			}
			m, err := envelope.NewMsg(subject, ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishMsgAsync(m, jetstream.WithMsgID(ev.Id)); err != nil {
				t.Fatal(err)
			}
			want[runs.ID(ev.Id, "count-runs", "u1", "c1")] = true
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal("publishing timed out")
		}
	}
	if n := streamMsgs(t, js, subjects.StreamTriggers); n != uint64(midstreamEvents) {
		t.Fatalf("TRIGGERS holds %d messages, want %d", n, midstreamEvents)
	}
	published := time.Now()
	if raceEnabled {
		t.Logf("race detector on: %d events instead of 10,000", midstreamEvents)
	}
	t.Logf("published %d events in %s", midstreamEvents, published.Sub(start).Round(time.Millisecond))

	triggers, err := trigger.New(ctx, trigger.Options{JS: js, Budgets: wire.FromConn(nc)})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(ctx, blob.Options{JS: js, Budgets: wire.FromConn(nc)})
	if err != nil {
		t.Fatal(err)
	}
	newRouter := func() *router.Service {
		r, err := router.New(router.Options{
			NC: nc, JS: js, Catalog: cat, Directory: dir, Logger: logger, Triggers: triggers, Blobs: blobs,
			HTTPClient: egress.NewClient(egress.Options{AllowLoopback: true}),
			// Messages the stopped router had fetched but not started come
			// back after AckWait; keep that short so the test is quick.
			AckWait: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}

	r1 := newRouter()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = r1.Stop(context.Background())
		}
	})
	eventually(t, 60*time.Second, "the first router to finish some runs", func() (bool, string) {
		d, _ := hits.counts()
		return d >= midstreamEvents/5, fmt.Sprintf("%d runs", d)
	})
	stopCtx, cancelStop := context.WithTimeout(ctx, 20*time.Second)
	stopStart := time.Now()
	err = r1.Stop(stopCtx)
	cancelStop()
	stopped = true
	if err != nil {
		t.Fatalf("router stop: %v", err)
	}
	atStop, _ := hits.counts()
	t.Logf("first router stopped after %d runs (stop took %s); left: %s, %s", atStop, time.Since(stopStart).Round(time.Millisecond),
		consumerState(ctx, t, js, subjects.StreamTriggers, router.RouterDurable(project)), consumerState(ctx, t, js, subjects.StreamRuns, router.ExecutorDurable(project)))
	if atStop >= midstreamEvents {
		t.Fatalf("the first router ran all %d events before it was stopped; the restart was not mid-stream", atStop)
	}

	r2 := newRouter()
	t.Cleanup(func() { _ = r2.Stop(context.Background()) })
	eventually(t, 90*time.Second, fmt.Sprintf("%d distinct runs", midstreamEvents), func() (bool, string) {
		d, total := hits.counts()
		return d >= midstreamEvents, fmt.Sprintf("%d distinct runs, %d calls", d, total)
	})
	// Wait until nothing is left to deliver, so no late duplicate can
	// still arrive after the counts are checked.
	for _, c := range []struct{ stream, consumer string }{
		{subjects.StreamTriggers, router.RouterDurable(project)},
		{subjects.StreamRuns, router.ExecutorDurable(project)},
	} {
		cons, err := js.Consumer(ctx, c.stream, c.consumer)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, c.consumer+" consumer to be drained", func() (bool, string) {
			info, err := cons.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			return info.NumPending == 0 && info.NumAckPending == 0,
				fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		})
	}
	// RUNS keeps run messages (limits retention); each was published once.
	if n := streamMsgs(t, js, subjects.StreamRuns); n != uint64(midstreamEvents) {
		t.Errorf("RUNS holds %d run messages, want one per event (%d)", n, midstreamEvents)
	}

	hits.mu.Lock()
	defer hits.mu.Unlock()
	var dups, unexpected int
	for id, n := range hits.perID {
		if n != 1 {
			dups++
			if dups <= 10 {
				t.Errorf("run %s called the target %d times", id, n)
			}
		}
		if !want[id] {
			unexpected++
		}
	}
	if dups > 0 || unexpected > 0 || len(hits.perID) != midstreamEvents || hits.total != midstreamEvents {
		t.Errorf("%d distinct runs (want %d), %d calls (want %d), %d run ids called more than once, %d unexpected run ids",
			len(hits.perID), midstreamEvents, hits.total, midstreamEvents, dups, unexpected)
	}
	t.Logf("%d events routed and run exactly once across a router restart in %s (after publishing: %s)",
		midstreamEvents, time.Since(start).Round(time.Millisecond), time.Since(published).Round(time.Millisecond))
}

func consumerState(ctx context.Context, t testing.TB, js jetstream.JetStream, stream, consumer string) string {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/%s pending %d ack-pending %d", stream, consumer, info.NumPending, info.NumAckPending)
}

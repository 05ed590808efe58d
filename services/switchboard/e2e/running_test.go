package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/fnworker"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestRunningStatus: a run that is still going after the router's
// RunningDelay shows "running" in the history while it runs; a quick run
// goes from queued straight to its final state with only one snapshot.
func TestRunningStatus(t *testing.T) {
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	release := make(chan struct{})
	svc, err := fnworker.Serve(rqConnect(t, sys.NATSURL), fnworker.Options{Project: dev.Project, Functions: map[string]fnworker.Handler{
		"hold": func(ctx context.Context, _ fnworker.Request) (any, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return map[string]any{"ok": true}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	rqSetup(t, a, key, `
kind: Workflow
id: hold
trigger: {type: request}
steps:
  - {id: wait, type: function, function: hold, timeout: 20s}
---
kind: Workflow
id: quick
trigger: {type: request}
steps:
  - {id: answer, type: response, json: {ok: true}}
`)
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ RunID string }
	a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/workflows/hold/trigger", token, map[string]any{}).decode(t, &accepted)
	eventually(t, 10*time.Second, "the held run to show running", func() (bool, string) {
		r := a.call(t, "GET", "/v1/projects/dev/runs/"+accepted.RunID, key, nil)
		var run runs.Run
		if r.Status == http.StatusOK {
			r.decode(t, &run)
		}
		return run.Status == runs.StatusRunning, r.String()
	})
	close(release)
	if run := waitRun(t, a, key, accepted.RunID); run.Status != runs.StatusSucceeded || run.Seq != 2 {
		t.Fatalf("held run: status %s seq %d, want succeeded after 2 snapshots", run.Status, run.Seq)
	}

	r := a.must(t, http.StatusOK, "POST", "/v1/projects/dev/workflows/quick/trigger", token, map[string]any{})
	quick := waitRun(t, a, key, r.Header.Get("X-Switchboard-Run-Id"))
	// Seq 1 is the skipped "running" snapshot; a response step that is the
	// last step is stored with the final state, in one snapshot.
	if quick.Status != runs.StatusSucceeded || quick.Seq != 2 {
		t.Fatalf("quick run: status %s seq %d", quick.Status, quick.Seq)
	}
	if n := snapshotsOf(t, sys.JS, quick.ID); n != 1 {
		t.Fatalf("quick run stored %d snapshots, want 1", n)
	}
}

// snapshotsOf counts the snapshots of run id in the history log.
func snapshotsOf(t *testing.T, js jetstream.JetStream, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subject := subjects.RunHistory(dev.Project)
	total := int(rqSubjectMsgs(t, js, subjects.StreamRunEvents, subject))
	c, err := js.OrderedConsumer(ctx, subjects.StreamRunEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seen := 0; seen < total; {
		batch, err := c.Fetch(total-seen, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			seen++
			var r runs.Run
			if json.Unmarshal(m.Data(), &r) == nil && r.ID == id {
				n++
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

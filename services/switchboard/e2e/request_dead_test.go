package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// rqClosedPort returns a loopback address nothing listens on.
func rqClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestRequestDead sends a request whose http step targets a closed port:
// the run fails after its retries, lands in DEAD with a reason, and a
// replay starts a new run linked to the old one — which succeeds once
// something listens on that port again.
func TestRequestDead(t *testing.T) {
	t.Parallel()
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	addr := rqClosedPort(t)
	rqSetup(t, a, key, `kind: Workflow
id: rq-dead
trigger: {type: request}
steps:
  - id: deliver
    type: http
    method: POST
    url: http://`+addr+`/hook
    json: {order: "{{ trigger.request.body.order }}", run: "{{ run.id }}"}
    retry: {attempts: 2, backoff: 100ms}
`)
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	r := rqCall(t, "POST", a.base+"/v1/projects/dev/workflows/rq-dead/trigger", []byte(`{"order":"o-dead"}`), "Authorization", "Bearer "+token)
	if r.Status != http.StatusAccepted {
		t.Fatalf("trigger: %s, want 202", r)
	}
	oldID, _ := rqObject(t, r)["runId"].(string)
	old := waitRun(t, a, key, oldID)
	if old.Status != runs.StatusFailed {
		t.Fatalf("run %s: %s, want failed", oldID, old.Status)
	}
	step, ok := old.StepByID("deliver")
	if !ok || step.Status != runs.StepFailed || step.Attempts != 2 || !strings.Contains(step.Error, "request failed") {
		t.Errorf("step %+v, want 2 failed attempts with a connection error", step)
	}
	if old.Error == "" {
		t.Errorf("the failed run has no error")
	}

	t.Run("in DEAD with a reason", func(t *testing.T) {
		subject := subjects.DeadRun(dev.Project, "rq-dead")
		if subject != "sb.dead.dev.run.rq-dead" {
			t.Fatalf("dead subject %q", subject)
		}
		var msg *jetstream.RawStreamMsg
		eventually(t, 10*time.Second, "the dead letter", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := sys.JS.Stream(ctx, subjects.StreamDead)
			if err != nil {
				return false, err.Error()
			}
			msg, err = s.GetLastMsgForSubject(ctx, subject)
			if err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		reason := msg.Header.Get("Sb-Dead-Reason")
		if reason == "" || !strings.Contains(reason, "deliver") {
			t.Errorf("Sb-Dead-Reason %q, want the failing step named", reason)
		}
		if got := msg.Header.Get("Sb-Run-Id"); got != oldID {
			t.Errorf("dead letter Sb-Run-Id %q, want %s", got, oldID)
		}
		var dead runs.Run
		if err := json.Unmarshal(msg.Data, &dead); err != nil {
			t.Fatalf("dead letter is not a run: %v", err)
		}
		if dead.ID != oldID || dead.Status != runs.StatusFailed || len(dead.Steps) != 1 {
			t.Errorf("dead letter %+v, want the failed run", dead)
		}
		if n := rqSubjectMsgs(t, sys.JS, subjects.StreamDead, subject); n != 1 {
			t.Errorf("%d dead letters, want 1", n)
		}
	})

	t.Run("replay errors", func(t *testing.T) {
		expectError(t, a.call(t, "POST", "/v1/projects/dev/runs/run_00000000000000000000000000/replay", key, nil), http.StatusNotFound, "run_not_found")
		// Replay is a server-side call.
		if r := a.call(t, "POST", "/v1/projects/dev/runs/"+oldID+"/replay", token, nil); r.Status != http.StatusForbidden {
			t.Errorf("replay with a user token: %s, want 403", r)
		}
	})

	t.Run("replay starts a linked run", func(t *testing.T) {
		// Something listens on the port now, if it can be bound again.
		hits := &rqHits{}
		ln, lerr := net.Listen("tcp", addr)
		if lerr == nil {
			srv := &http.Server{Handler: hits}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
		} else {
			t.Logf("port %s cannot be bound again (%v): the replay is expected to fail too", addr, lerr)
		}

		r := a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/runs/"+oldID+"/replay", key, nil)
		var acc struct {
			RunID, EventID, ReplayOf, Status string
		}
		r.decode(t, &acc)
		if !runs.ValidID(acc.RunID) || acc.RunID == oldID || acc.ReplayOf != oldID || acc.EventID == "" {
			t.Fatalf("replay answer %s, want a new run id with replayOf %s", r.Body, oldID)
		}
		if loc := r.Header.Get("Location"); loc != "/v1/projects/dev/runs/"+acc.RunID {
			t.Errorf("Location %q", loc)
		}
		run := waitRun(t, a, key, acc.RunID)
		if run.ReplayOf != oldID || run.Workflow != "rq-dead" || run.User != "u1" || run.EventID != acc.EventID {
			t.Errorf("replayed run %+v, want replayOf %s, same workflow and user, event %s", run, oldID, acc.EventID)
		}
		if lerr == nil {
			if run.Status != runs.StatusSucceeded {
				t.Fatalf("replay: %s (%s), want succeeded now that the port listens", run.Status, run.Error)
			}
			got := hits.all()
			if len(got) != 1 || !strings.Contains(got[0], `"order":"o-dead"`) || !strings.Contains(got[0], acc.RunID) {
				t.Errorf("the listener got %q, want one call with the original body and the new run id", got)
			}
		} else if run.Status != runs.StatusFailed {
			t.Errorf("replay: %s, want failed (the port is still closed)", run.Status)
		}
		// The original run is untouched; the history lists both.
		if again := waitRun(t, a, key, oldID); again.Status != runs.StatusFailed || again.ReplayOf != "" {
			t.Errorf("original run after the replay: %+v", again)
		}
		list := rqListRuns(t, a, key, "rq-dead")
		ids := map[string]string{}
		for _, x := range list {
			ids[x.ID] = x.ReplayOf
		}
		if len(list) != 2 || ids[acc.RunID] != oldID {
			t.Errorf("runs of rq-dead: %v, want the original and its replay", ids)
		}
		// The replay's trigger is the original request.
		d := getDecision(t, a, key, acc.EventID)
		if !strings.Contains(string(d.Trigger), oldID) {
			t.Errorf("replay decision trigger %s does not name replayOf %s", d.Trigger, oldID)
		}
	})
}

// rqHits records request bodies.
type rqHits struct {
	mu     sync.Mutex
	bodies []string
}

func (h *rqHits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"ok":true}`)
}

func (h *rqHits) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

package history_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/history"
)

// decideEventReplays stands in for the router for event replays: every
// republished trigger that waits on an inbox and names no workflow starts
// one run of wf for its user when it is eventName, none otherwise. Each
// decided event is sent on seen. The real decision is tested with the
// router (e2e).
func decideEventReplays(t *testing.T, nc *nats.Conn, js jetstream.JetStream) <-chan jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	seen := make(chan jetstream.Msg, 16)
	c, err := js.OrderedConsumer(ctx, subjects.StreamTriggers, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		ev, err := envelope.Decode(m.Data(), m.Headers().Get(envelope.HeaderContentType))
		if err != nil || ev.Reply == "" {
			return
		}
		rep := runs.Reply{Decided: true, Message: "no workflow is triggered by " + ev.Name}
		if ev.Name == eventName {
			rep = runs.Reply{Decided: true, RunIDs: []string{runs.ID(ev.Id, "wf", ev.User, ev.Credential)}}
		}
		if rm, err := rep.Msg(ev.Reply); err == nil {
			_ = nc.PublishMsg(rm)
		}
		select {
		case seen <- m:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return seen
}

// stored publishes a trigger event to TRIGGERS as a producer does and
// records its decision as the router does: by sequence, without a copy of
// the trigger.
func (f *fixture) stored(t *testing.T, name string) (*sbv1.TriggerEvent, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := trigger.New(ctx, trigger.Options{JS: f.js})
	if err != nil {
		t.Fatal(err)
	}
	ev := &sbv1.TriggerEvent{Id: envelope.NewID(), Project: project, Kind: sbv1.Kind_APP_EVENT, Name: name,
		User: "u1", Payload: []byte(`{"email":"u1@example.com"}`)}
	res, err := pub.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	f.waitApplied(t, f.publish(t, subjects.Decisions(project), runs.RecordDecision, runs.Decision{
		EventID: ev.Id, Project: project, Kind: subjects.KindAppEvent, Name: name, User: "u1",
		TriggerSeq: res.Sequence, ReceivedAt: now, DecidedAt: now,
		Candidates: []runs.Candidate{{Workflow: "wf", User: "u1", Outcome: runs.OutcomeRan, RunID: runs.ID(ev.Id, "wf", "u1", "")}},
	}))
	return ev, res.Sequence
}

func TestReplayEvent(t *testing.T) {
	f := start(t)
	seen := decideEventReplays(t, f.nc, f.js)
	ran, _ := f.stored(t, eventName)
	nothing, _ := f.stored(t, "Nobody Listens")
	aged, agedSeq := f.stored(t, eventName)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := f.js.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	// Retention removed it: the decision record still names it.
	if err := st.DeleteMsg(ctx, agedSeq); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, event, token string
		status             int
		code               string
		runs               int // runs the replay started, for 202
	}{
		{name: "replay with the API key", event: ran.Id, token: f.apiKey, status: http.StatusAccepted, runs: 1},
		{name: "decided to start nothing is still accepted", event: nothing.Id, token: f.apiKey, status: http.StatusAccepted},
		{name: "a user token may not replay", event: ran.Id, token: f.token(t, "u1"), status: http.StatusForbidden, code: "forbidden"},
		{name: "no token", event: ran.Id, status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "missing event", event: "evt_missing", token: f.apiKey, status: http.StatusNotFound, code: "event_not_found"},
		{name: "aged out of TRIGGERS", event: aged.Id, token: f.apiKey, status: http.StatusConflict, code: "trigger_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(t, http.MethodPost, "/v1/projects/"+project+"/events/"+tc.event+"/replay", tc.token)
			if r.status != tc.status || (tc.code != "" && r.errCode() != tc.code) {
				t.Fatalf("got %s, want %d %s", r, tc.status, tc.code)
			}
			if tc.status != http.StatusAccepted {
				return
			}
			var acc history.EventReplayAccepted
			if err := json.Unmarshal(r.body, &acc); err != nil || acc.ReplayOf != tc.event || acc.EventID == "" ||
				acc.EventID == tc.event || acc.Status != "accepted" || acc.RunIDs == nil || len(acc.RunIDs) != tc.runs {
				t.Fatalf("replay answer %s", r)
			}
			if tc.runs == 0 && acc.Message == "" {
				t.Fatalf("no run and no reason: %s", r)
			}
			if loc := r.header.Get("Location"); loc != "/v1/projects/"+project+"/events/"+acc.EventID {
				t.Fatalf("Location %q", loc)
			}
			// What the router got: the stored event under a new id, linked
			// to the original by header, waiting for its decision.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var m jetstream.Msg
			for m == nil {
				select {
				case got := <-seen:
					if got.Headers().Get(jetstream.MsgIDHeader) == acc.EventID {
						m = got
					}
				case <-ctx.Done():
					t.Fatal("the replay never reached TRIGGERS")
				}
			}
			ev, err := envelope.Decode(m.Data(), m.Headers().Get(envelope.HeaderContentType))
			if err != nil {
				t.Fatal(err)
			}
			if m.Headers().Get(trigger.HeaderReplayOf) != tc.event || ev.ReplayOf != "" || ev.Workflow != "" ||
				ev.User != "u1" || string(ev.Payload) != `{"email":"u1@example.com"}` {
				t.Fatalf("republished %v with %s=%q", ev, trigger.HeaderReplayOf, m.Headers().Get(trigger.HeaderReplayOf))
			}
			if tc.runs == 1 && acc.RunIDs[0] != runs.ID(ev.Id, "wf", "u1", "") {
				t.Fatalf("run %s, want the one the router derives from the new event", acc.RunIDs[0])
			}
		})
	}
}

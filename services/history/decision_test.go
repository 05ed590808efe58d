package history_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/services/history"
)

// tickDecision is a decision record as the router writes a schedule tick's:
// a summary over candidates that ran and were skipped.
func tickDecision(event string) runs.Decision {
	now := time.Now().UTC()
	return runs.Decision{EventID: event, Project: project, Kind: "schedule", ReceivedAt: now, DecidedAt: now,
		Summary: runs.Summary{Candidates: 3, Ran: 2, Skipped: map[string]int{"overlap": 1}, Pages: 1},
		Candidates: []runs.Candidate{
			{Workflow: "wf", User: "u1", Outcome: runs.OutcomeRan, RunID: runs.ID(event, "wf", "u1", "")},
			{Workflow: "wf", User: "u2", Outcome: runs.OutcomeRan, RunID: runs.ID(event, "wf", "u2", "")},
			{Workflow: "wf", User: "u3", Outcome: runs.OutcomeSkipped, Reason: "overlap"},
		}}
}

// TestDecisionQuery asks the history role's decision query on a real NATS
// server, through QueryDecision and with raw requests that skip its
// checks, so the server's own checks answer.
func TestDecisionQuery(t *testing.T) {
	f := start(t)
	ev := envelope.NewID()
	f.waitApplied(t, f.publish(t, subjects.Decisions(project), runs.RecordDecision, tickDecision(ev)))

	for _, tc := range []struct {
		name, project, event string
		// raw sends the request as is on the project's subject (or on
		// subject, when set) instead of through QueryDecision.
		raw     bool
		subject string
		status  int
		code    string
	}{
		{name: "found", project: project, event: ev, status: http.StatusOK},
		{name: "not found", project: project, event: "evt_missing", status: http.StatusNotFound, code: history.CodeEventNotFound},
		{name: "another project's event", project: "other", event: ev, status: http.StatusNotFound, code: history.CodeEventNotFound},
		{name: "empty event id", project: project, raw: true, status: http.StatusBadRequest, code: "invalid_id"},
		{name: "event id over the id limit", project: project, event: strings.Repeat("e", wire.MaxIDLen+1), raw: true,
			status: http.StatusBadRequest, code: "invalid_id"},
		{name: "request far over the id limit", project: project, event: strings.Repeat("e", 64<<10), raw: true,
			status: http.StatusBadRequest, code: "invalid_id"},
		{name: "event id not UTF-8", project: project, event: "evt_\xff", raw: true, status: http.StatusBadRequest, code: "invalid_id"},
		{name: "project not a plain token", subject: "sb.api.history.=x.decision", event: ev, raw: true,
			status: http.StatusBadRequest, code: "invalid_id"},
		// The client checks what the server would, without a round trip.
		{name: "client: project with a dot", project: "a.b", event: ev, status: http.StatusBadRequest, code: "invalid_id"},
		{name: "client: event id over the id limit", project: project, event: strings.Repeat("e", wire.MaxIDLen+1),
			status: http.StatusBadRequest, code: "invalid_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.raw {
				subj := tc.subject
				if subj == "" {
					subj = subjects.HistoryDecisionQuery(tc.project)
				}
				m, err := f.nc.RequestWithContext(ctx, subj, []byte(tc.event))
				if err != nil {
					t.Fatal(err)
				}
				var e apierr.Error
				if err := json.Unmarshal(m.Data, &e); err != nil {
					t.Fatalf("error answer %q: %v", m.Data, err)
				}
				if got := m.Header.Get(micro.ErrorCodeHeader); got != strconv.Itoa(tc.status) || e.Code != tc.code {
					t.Fatalf("answer %s %q, want %d %s", got, m.Data, tc.status, tc.code)
				}
				return
			}
			d, err := history.QueryDecision(ctx, f.nc, tc.project, tc.event)
			if tc.status != http.StatusOK {
				ae, ok := apierr.As(err)
				if !ok || ae.Status != tc.status || ae.Code != tc.code {
					t.Fatalf("got %+v, %v; want %d %s", d, err, tc.status, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tickDecision(ev).Summary
			if d.EventID != ev || d.Project != project || d.Summary.Ran != want.Ran || d.Summary.Candidates != want.Candidates ||
				d.Summary.Skipped["overlap"] != 1 || d.Summary.Pages != 1 {
				t.Fatalf("decision %+v, want summary %+v", d, want)
			}
			// The summary only: candidates and trigger stay with GET
			// …/events/{id}.
			if d.Candidates != nil || d.Trigger != nil {
				t.Fatalf("the answer carries candidates %v, trigger %s", d.Candidates, d.Trigger)
			}
		})
	}

	// GET …/events/{id} answers from the same lookup, with the whole record.
	r := f.call(t, http.MethodGet, "/v1/projects/"+project+"/events/"+ev, f.apiKey)
	var d runs.Decision
	if err := json.Unmarshal(r.body, &d); r.status != http.StatusOK || err != nil || len(d.Candidates) != 3 || d.Summary.Ran != 2 {
		t.Fatalf("GET the event: %s", r)
	}
}

// gatedJS holds the read model's follower back until open is closed: the
// file stays in its rebuild for as long as a test needs.
type gatedJS struct {
	jetstream.JetStream
	open chan struct{}
}

func (g gatedJS) OrderedConsumer(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	select {
	case <-g.open:
		return g.JetStream.OrderedConsumer(ctx, stream, cfg)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestDecisionQueryWhileRebuilding: a new history replica on a stream with
// history rebuilds its file; until its follower has applied the decision,
// the query answers history_rebuilding (with the progress), not "not found".
func TestDecisionQueryWhileRebuilding(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := brokertest.Start(t)
	ev := envelope.NewID()
	data, err := json.Marshal(tickDecision(ev))
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subjects.Decisions(project))
	m.Header.Set(runs.HeaderRecord, runs.RecordDecision)
	m.Data = data
	if _, err := srv.JS.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	cat := brokertest.Catalog(t, srv.JS)
	pub, err := trigger.New(ctx, trigger.Options{JS: srv.JS})
	if err != nil {
		t.Fatal(err)
	}
	js := gatedJS{JetStream: srv.JS, open: make(chan struct{})}
	svc, err := history.New(history.Options{
		NC: srv.NC, JS: js, Triggers: pub, Catalog: cat, Path: t.TempDir() + "/history.db",
		Access: access.New(access.Options{Catalog: cat, AdminToken: adminToken}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})

	_, err = history.QueryDecision(ctx, srv.NC, project, ev)
	ae, ok := apierr.As(err)
	if !ok || ae.Status != http.StatusServiceUnavailable || ae.Code != history.CodeRebuilding {
		t.Fatalf("while rebuilding: %v, want 503 %s", err, history.CodeRebuilding)
	}
	if rb, _ := ae.Details.(map[string]any); rb["reason"] != readmodel.RebuildNewFile {
		t.Fatalf("rebuild details %v", ae.Details)
	}

	close(js.open)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := history.QueryDecision(ctx, srv.NC, project, ev)
		if err == nil {
			if d.Summary.Ran != 2 {
				t.Fatalf("after the rebuild: %+v", d)
			}
			return
		}
		if ae, ok := apierr.As(err); !ok || ae.Code != history.CodeRebuilding || time.Now().After(deadline) {
			t.Fatalf("after opening the follower: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by deadline
	}
}

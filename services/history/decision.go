package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// The decision query: GET …/events/{id}'s lookup over NATS
// (subjects.HistoryDecisionQuery), for roles that hold no read model — the
// scheduler's run counts when it runs in a process of its own.
const (
	// DecisionServiceName and DecisionServiceVersion identify the micro
	// service ($SRV.INFO, $SRV.STATS).
	DecisionServiceName    = "switchboard-history"
	DecisionServiceVersion = "1.0.0"
	// DecisionQueueGroup is shared by every history replica, so one of
	// them answers each query.
	DecisionQueueGroup = "sb-history"

	// CodeEventNotFound (404) and CodeRebuilding (503) are the codes GET
	// …/events/{id} answers with, and the decision query too.
	CodeEventNotFound = "event_not_found"
	CodeRebuilding    = "history_rebuilding"
)

// decision is the merged decision record of event in project, as GET
// …/events/{id} and the decision query both answer it: 404
// event_not_found, or 503 history_rebuilding while the read model is
// rebuilt (what it does not hold yet may well exist), as *apierr.Error.
func (s *Service) decision(project, event string) (*runs.Decision, error) {
	d, err := s.store.GetDecision(project, event)
	if errors.Is(err, readmodel.ErrNotFound) {
		if rb := s.rebuildingErr(); rb != nil {
			return nil, rb
		}
		return nil, eventNotFound(event)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	return d, nil
}

func eventNotFound(event string) *apierr.Error {
	return apierr.NotFound(CodeEventNotFound, "event %q does not exist or has not been routed yet", event)
}

// checkDecisionQuery validates a query's ids, on both sides: the project
// must be a plain subject token (a dot or a wildcard would make the
// subject another one), the event an id of the repo's one rule. The event
// is bounded before it is copied into a string.
func checkDecisionQuery(project string, event []byte) error {
	if project == "" || subjects.Token(project) != project || len(project) > wire.MaxIDLen {
		return apierr.BadRequest("invalid_id", "the project id must be a plain subject token of at most %d bytes", wire.MaxIDLen).WithField("project")
	}
	if len(event) > wire.MaxIDLen {
		return apierr.BadRequest("invalid_id", "the event id is longer than %d bytes", wire.MaxIDLen).WithField("event")
	}
	return access.RequireID("event", string(event))
}

// serveDecisions starts the decision query's micro service on the role's
// connection.
func (s *Service) serveDecisions() (micro.Service, error) {
	svc, err := micro.AddService(s.opts.NC, micro.Config{Name: DecisionServiceName, Version: DecisionServiceVersion,
		QueueGroup: DecisionQueueGroup, Description: "Switchboard run history: the merged decision record of an event"})
	if err != nil {
		return nil, fmt.Errorf("history: add decision service: %w", err)
	}
	if err := svc.AddEndpoint("decision", micro.HandlerFunc(s.answerDecision),
		micro.WithEndpointSubject(subjects.HistoryDecisionQueryAll)); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("history: decision endpoint: %w", err)
	}
	return svc, nil
}

// answerDecision answers one decision query: the record without its
// candidates and trigger, or a micro error whose code is the HTTP status
// and whose data is the API error ({"code", "message", "details"}).
func (s *Service) answerDecision(r micro.Request) {
	d, err := s.queryDecision(r.Subject(), r.Data())
	var body []byte
	if err == nil {
		body, err = json.Marshal(d)
		if err == nil && int64(len(body)) > s.opts.NC.MaxPayload() {
			err = fmt.Errorf("history: decision answer of %d bytes is over the server's max_payload", len(body))
		}
	}
	if err != nil {
		ae, ok := apierr.As(err)
		if !ok {
			ae = apierr.Internal(err)
		}
		if ae.Status >= http.StatusInternalServerError && ae.Code != CodeRebuilding {
			s.log.Warn("history: decision query", "subject", r.Subject(), "err", err)
		}
		data, _ := json.Marshal(ae)
		if err := r.Error(strconv.Itoa(ae.Status), ae.Message, data); err != nil {
			s.log.Warn("history: decision answer not sent", "subject", r.Subject(), "err", err)
		}
		return
	}
	if err := r.Respond(body); err != nil {
		s.log.Warn("history: decision answer not sent", "subject", r.Subject(), "err", err)
	}
}

func (s *Service) queryDecision(subject string, data []byte) (*runs.Decision, error) {
	project, _ := subjects.HistoryDecisionProject(subject)
	if err := checkDecisionQuery(project, data); err != nil {
		return nil, err
	}
	d, err := s.decision(project, string(data))
	if err != nil {
		return nil, err
	}
	// The summary is what a caller without the read model needs; the
	// candidates of a large tick (and the trigger) are far more than a NATS
	// message holds, and GET …/events/{id} serves them.
	out := *d
	out.Candidates, out.Trigger = nil, nil
	return &out, nil
}

// QueryDecision asks the history role over NATS for the merged decision
// record of event in project: its summary and ids, without candidates or
// trigger (GET …/events/{id} has those). A history replica in this process
// or any other answers. Its errors are *apierr.Error (apierr.As) with GET
// …/events/{id}'s codes — CodeEventNotFound (404, also "not routed yet"),
// CodeRebuilding (503, with the rebuild's progress as details), invalid_id
// (400), internal (500) — or NATS's: nats.ErrNoResponders when no history
// role runs, ctx's error when none answered in time.
func QueryDecision(ctx context.Context, nc *nats.Conn, project, event string) (*runs.Decision, error) {
	if err := checkDecisionQuery(project, []byte(event)); err != nil {
		return nil, err
	}
	m, err := nc.RequestWithContext(ctx, subjects.HistoryDecisionQuery(project), []byte(event))
	if err != nil {
		return nil, fmt.Errorf("history: decision query of %s: %w", event, err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, fmt.Errorf("history: decision query of %s: %w", event, decisionError(code, m.Header.Get(micro.ErrorHeader), m.Data))
	}
	var d runs.Decision
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return nil, fmt.Errorf("history: decision answer of %s: %w", event, err)
	}
	return &d, nil
}

// decisionError rebuilds the API error of a micro error answer.
func decisionError(code, desc string, data []byte) *apierr.Error {
	status, err := strconv.Atoi(code)
	if err != nil || status < 400 || status > 599 {
		status = http.StatusBadGateway
	}
	var ae apierr.Error
	if json.Unmarshal(data, &ae) != nil || ae.Code == "" {
		return apierr.New(status, "internal", "%s", desc)
	}
	ae.Status = status
	return &ae
}

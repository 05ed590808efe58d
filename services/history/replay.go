package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// ReplayAccepted is the answer of a replay: the new run, linked to the old.
type ReplayAccepted struct {
	RunID    string `json:"runId"`
	EventID  string `json:"eventId"`
	ReplayOf string `json:"replayOf"`
	Status   string `json:"status"`
}

// replayRun starts a new run of the same workflow, user and credential from
// the original trigger event (see replay).
func (s *Service) replayRun(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	return s.answerReplay(c, pr.Project, c.Param("run"))
}

// answerReplay replays run runID of project and answers 202 with the new
// run, or the replay's error. A run the read model does not hold while it
// is rebuilt is 503, not 404: it may well exist.
func (s *Service) answerReplay(c *echo.Context, project, runID string) error {
	acc, err := s.replay(c.Request().Context(), project, runID)
	if ae, ok := apierr.As(err); ok && ae.Code == "run_not_found" {
		if err := s.rebuilding(c); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/projects/"+project+"/runs/"+acc.RunID)
	return c.JSON(http.StatusAccepted, acc)
}

// replay starts a new run of the same workflow, user and credential as run
// runID from the original trigger event, found through the read model: the
// run names its event, whose decision record holds the trigger. The new
// event names the workflow, so an app event replay does not fan out to the
// event's other workflows again. Errors are *apierr.Error.
func (s *Service) replay(ctx context.Context, project, runID string) (ReplayAccepted, error) {
	old, err := s.store.GetRun(project, runID)
	if errors.Is(err, readmodel.ErrNotFound) {
		return ReplayAccepted{}, apierr.NotFound("run_not_found", "run %q does not exist", runID)
	}
	if err != nil {
		return ReplayAccepted{}, apierr.Internal(err)
	}
	dec, err := s.store.GetDecision(project, old.EventID)
	if err != nil {
		return ReplayAccepted{}, apierr.New(http.StatusConflict, "trigger_not_found", "the trigger event %s of run %s is no longer in the history", old.EventID, old.ID).Wrap(err)
	}
	ev, err := envelope.DecodeJSON(dec.Trigger)
	if err != nil {
		return ReplayAccepted{}, apierr.Internal(err)
	}
	ev.Id = envelope.NewID()
	ev.ReplayOf = old.ID
	ev.Workflow = old.Workflow
	ev.User = old.User
	ev.Credential = old.Credential
	ev.Reply = ""
	ev.IdempotencyKey = ""
	ev.ReceivedAt = timestamppb.New(time.Now())
	rep, err := s.publishDecided(ctx, ev)
	if err != nil {
		return ReplayAccepted{}, err
	}
	newID := rep.RunID
	if newID == "" && len(rep.RunIDs) > 0 {
		newID = rep.RunIDs[0]
	}
	if rep.Error != "" || newID == "" {
		return ReplayAccepted{}, apierr.New(http.StatusConflict, "replay_not_possible", "the run cannot start now: %s", rep.Message)
	}
	return ReplayAccepted{RunID: newID, EventID: ev.Id, ReplayOf: old.ID, Status: "accepted"}, nil
}

// publishDecided publishes ev (a replay: a new event id) and waits for the
// router's decision. The router decides a replay as every trigger: ev is
// published with an inbox, and the first decided reply on it is the answer
// (the runs it starts, or why none). Errors are *apierr.Error.
func (s *Service) publishDecided(ctx context.Context, ev *sbv1.TriggerEvent, opts ...trigger.PublishOption) (*runs.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	ev.Reply = s.opts.NC.NewInbox()
	if r := ev.GetRequest(); r != nil {
		// The replay waits for the decision, not for a response.
		r.RespondAsync = true
	}
	sub, err := s.opts.NC.SubscribeSync(ev.Reply)
	if err != nil {
		return nil, apierr.Unavailable(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	opts = append([]trigger.PublishOption{trigger.WithCatalogRevision(s.opts.Catalog.Revision())}, opts...)
	if _, err := s.opts.Triggers.Publish(ctx, ev, opts...); err != nil {
		if wire.Permanent(err) {
			return nil, apierr.Internal(err)
		}
		return nil, apierr.Unavailable(fmt.Errorf("publish trigger: %w", err))
	}
	rep := &runs.Reply{}
	for !rep.Decided {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, apierr.New(http.StatusGatewayTimeout, "routing_timeout", "the replay %s was stored but not decided within %s; it will still be decided", ev.Id, s.opts.PublishTimeout)
		}
		if rep, err = runs.DecodeReply(m); err != nil {
			return nil, apierr.Internal(err)
		}
	}
	return rep, nil
}

// EventReplayAccepted is the answer of an event replay: the new event,
// linked to the old, and the router's decision on it.
type EventReplayAccepted struct {
	EventID  string `json:"eventId"`
	ReplayOf string `json:"replayOf"`
	// RunIDs are the runs the new event started; empty when the router
	// decided that none runs now (Message says why; the decision record of
	// EventID has every candidate).
	RunIDs  []string `json:"runIds"`
	Status  string   `json:"status"`
	Message string   `json:"message,omitempty"`
}

// replayEvent is POST /v1/projects/{p}/events/{event}/replay (API key only):
// the stored trigger event is published again as a new event, decided anew
// against today's workflows and credentials.
func (s *Service) replayEvent(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	acc, err := s.replayStoredEvent(c.Request().Context(), pr.Project, c.Param("event"))
	if ae, ok := apierr.As(err); ok && ae.Code == "event_not_found" {
		// Not in the read model while it is rebuilt is 503: it may exist.
		if err := s.rebuilding(c); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/projects/"+pr.Project+"/events/"+acc.EventID)
	return c.JSON(http.StatusAccepted, acc)
}

// replayStoredEvent finds event eventID of project through its decision
// record (which names its TRIGGERS sequence), reads the stored trigger and
// publishes it again under a new id with Sb-Replay-Of naming the original.
// The envelope is kept as stored — kind, name, user, credential, payload —
// so an app-level webhook event is resolved to the account's credentials
// again and an app event fans out to every workflow it triggers now. Errors
// are *apierr.Error.
func (s *Service) replayStoredEvent(ctx context.Context, project, eventID string) (EventReplayAccepted, error) {
	dec, err := s.store.GetDecision(project, eventID)
	if errors.Is(err, readmodel.ErrNotFound) {
		return EventReplayAccepted{}, apierr.NotFound("event_not_found", "event %q does not exist or has not been routed yet", eventID)
	}
	if err != nil {
		return EventReplayAccepted{}, apierr.Internal(err)
	}
	raw, err := s.storedTrigger(ctx, dec)
	if err != nil {
		return EventReplayAccepted{}, err
	}
	ev, err := envelope.DecodeJSON(raw)
	if err != nil {
		return EventReplayAccepted{}, apierr.Internal(err)
	}
	ev.Id = envelope.NewID()
	// ReplayOf names a replayed run (the executor copies it onto the run);
	// an event replay is linked by Sb-Replay-Of instead.
	ev.ReplayOf = ""
	ev.Reply = ""
	ev.IdempotencyKey = ""
	ev.ReceivedAt = timestamppb.New(time.Now())
	rep, err := s.publishDecided(ctx, ev, trigger.WithHeader(trigger.HeaderReplayOf, eventID))
	if err != nil {
		return EventReplayAccepted{}, err
	}
	ids := rep.RunIDs
	if len(ids) == 0 && rep.RunID != "" {
		ids = []string{rep.RunID}
	}
	if ids == nil {
		ids = []string{}
	}
	return EventReplayAccepted{EventID: ev.Id, ReplayOf: eventID, RunIDs: ids, Status: "accepted", Message: rep.Message}, nil
}

// storedTrigger is the trigger of decision dec as JSON: the record's own
// copy (records written before decisions were paged carry one), or the
// message at its TRIGGERS sequence. A message the stream no longer holds
// (retention) is 409 trigger_not_found; failing to ask is 503.
func (s *Service) storedTrigger(ctx context.Context, dec *runs.Decision) (json.RawMessage, error) {
	if len(dec.Trigger) > 0 {
		return dec.Trigger, nil
	}
	aged := apierr.New(http.StatusConflict, "trigger_not_found",
		"event %s is no longer in the TRIGGERS stream (past its retention); it cannot be replayed", dec.EventID)
	if dec.TriggerSeq == 0 {
		return nil, aged
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	st, err := s.opts.JS.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		return nil, apierr.Unavailable(fmt.Errorf("read trigger %s: %w", dec.EventID, err))
	}
	m, err := st.GetMsg(ctx, dec.TriggerSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, aged
	}
	if err != nil {
		return nil, apierr.Unavailable(fmt.Errorf("read trigger %s: %w", dec.EventID, err))
	}
	ev, err := envelope.Decode(m.Data, m.Header.Get(envelope.HeaderContentType))
	if err != nil {
		return nil, apierr.Internal(fmt.Errorf("trigger %s at %d: %w", dec.EventID, dec.TriggerSeq, err))
	}
	if ev.Id != dec.EventID {
		// Stream sequences are never reused, so this is a record that
		// names the wrong sequence: refuse rather than replay another
		// event.
		return nil, apierr.Internal(fmt.Errorf("TRIGGERS %d holds event %s, not %s", dec.TriggerSeq, ev.Id, dec.EventID))
	}
	b, err := envelope.MarshalJSON(ev)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	return b, nil
}

package history

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/routing"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
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
// the original trigger event, found through the read model: the run names
// its event, whose decision record holds the trigger. The new event names
// the workflow, so an app event replay does not fan out to the event's other
// workflows again.
func (s *Service) replayRun(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := serverSide(pr); err != nil {
		return err
	}
	old, err := s.store.GetRun(pr.Project, c.Param("run"))
	if errors.Is(err, readmodel.ErrNotFound) {
		return apierr.NotFound("run_not_found", "run %q does not exist", c.Param("run"))
	}
	if err != nil {
		return apierr.Internal(err)
	}
	dec, err := s.store.GetDecision(pr.Project, old.EventID)
	if err != nil {
		return apierr.New(http.StatusConflict, "trigger_not_found", "the trigger event %s of run %s is no longer in the history", old.EventID, old.ID).Wrap(err)
	}
	ev, err := envelope.DecodeJSON(dec.Trigger)
	if err != nil {
		return apierr.Internal(err)
	}
	ev.Id = envelope.NewID()
	ev.ReplayOf = old.ID
	ev.Workflow = old.Workflow
	ev.User = old.User
	ev.Credential = old.Credential
	ev.Reply = ""
	ev.IdempotencyKey = ""
	ev.ReceivedAt = timestamppb.New(time.Now())
	cands, err := routing.Decide(c.Request().Context(), s.opts.Catalog, s.opts.Directory, ev)
	if err != nil {
		return apierr.Unavailable(err)
	}
	cand, ok := routing.First(cands)
	if !ok {
		return apierr.New(http.StatusConflict, "replay_not_possible", "the run cannot start now: %s", routing.Why(cands))
	}
	kind, key := subjects.KindAppEvent, ev.User
	if ev.Kind == sbv1.Kind_REQUEST {
		kind, key = subjects.KindRequest, ev.Workflow
	}
	if err := s.publish(c.Request().Context(), subjects.Trigger(pr.Project, kind, key), ev); err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/projects/"+pr.Project+"/runs/"+cand.RunID)
	return c.JSON(http.StatusAccepted, ReplayAccepted{RunID: cand.RunID, EventID: ev.Id, ReplayOf: old.ID, Status: "accepted"})
}

// publish stores ev on TRIGGERS with its id as Nats-Msg-Id and the catalog
// revision this decision was made at, as every trigger producer does.
func (s *Service) publish(ctx context.Context, subject string, ev *sbv1.TriggerEvent) error {
	m, err := envelope.NewMsg(subject, ev)
	if err != nil {
		return apierr.Internal(err)
	}
	m.Header.Set(envelope.HeaderCatalogRevision, strconv.FormatUint(s.opts.Catalog.Revision(), 10))
	ctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	if _, err := s.opts.JS.PublishMsg(ctx, m, jetstream.WithMsgID(ev.Id)); err != nil {
		return apierr.Unavailable(fmt.Errorf("publish trigger: %w", err))
	}
	return nil
}

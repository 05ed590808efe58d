package history

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
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
	// The router decides the replay, as every trigger: publish it with an
	// inbox and wait for the decision (the run it starts, or why none).
	ctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	ev.Reply = s.opts.NC.NewInbox()
	if r := ev.GetRequest(); r != nil {
		// The replay waits for the decision, not for a response.
		r.RespondAsync = true
	}
	sub, err := s.opts.NC.SubscribeSync(ev.Reply)
	if err != nil {
		return ReplayAccepted{}, apierr.Unavailable(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if _, err := s.opts.Triggers.Publish(ctx, ev, trigger.WithCatalogRevision(s.opts.Catalog.Revision())); err != nil {
		if wire.Permanent(err) {
			return ReplayAccepted{}, apierr.Internal(err)
		}
		return ReplayAccepted{}, apierr.Unavailable(fmt.Errorf("publish trigger: %w", err))
	}
	rep := &runs.Reply{}
	for !rep.Decided {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return ReplayAccepted{}, apierr.New(http.StatusGatewayTimeout, "routing_timeout", "the replay %s was stored but not decided within %s; it will still be decided", ev.Id, s.opts.PublishTimeout)
		}
		if rep, err = runs.DecodeReply(m); err != nil {
			return ReplayAccepted{}, apierr.Internal(err)
		}
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

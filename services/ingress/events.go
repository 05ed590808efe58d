package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Request headers of the events API.
const (
	HeaderCredential = "X-Switchboard-Credential"
	HeaderUser       = "X-Switchboard-User"
)

// EventRequest is the body of POST /v1/projects/{p}/events.
type EventRequest struct {
	Name       string          `json:"name"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	User       string          `json:"user,omitempty"`
	OccurredAt *time.Time      `json:"occurredAt,omitempty"`
}

// ParseEventRequest decodes and checks an event body. It is the parser of
// outside input that the fuzz test drives.
func ParseEventRequest(body []byte) (*EventRequest, error) {
	var req EventRequest
	if err := httpx.DecodeJSON(body, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Name) == "" {
		return nil, apierr.BadRequest("missing_field", "the event needs a \"name\"").WithField("name")
	}
	if len(req.Name) > 200 {
		return nil, apierr.BadRequest("invalid_field", "the event name is longer than 200 characters").WithField("name")
	}
	if len(req.Payload) == 0 || string(req.Payload) == "null" {
		req.Payload = json.RawMessage("{}")
	}
	return &req, nil
}

// EventAccepted is the 202 answer.
type EventAccepted struct {
	ID     string   `json:"id"`
	Status string   `json:"status"`
	RunIDs []string `json:"runIds,omitempty"`
}

func (s *Service) postEvent(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	req, err := ParseEventRequest(body)
	if err != nil {
		return err
	}
	requested := req.User
	if requested == "" {
		requested = c.Request().Header.Get(HeaderUser)
	}
	user, err := access.ActingUser(pr, requested)
	if err != nil {
		return err
	}
	if err := access.ID(HeaderCredential, requestedCredential(c.Request())); err != nil {
		return err
	}
	p := pr.Project
	decl, ok := s.opts.Catalog.AppEvent(p, req.Name)
	if !ok {
		return apierr.NotFound("unknown_event", "event %q is not declared in project %s (declare it with kind: AppEvent)", req.Name, p).WithField("name")
	}
	if probs := decl.ValidatePayload(req.Payload); len(probs) > 0 {
		return apierr.BadRequest("validation_failed", "the payload does not match the schema of %q: %s", req.Name, probs.Error()).WithDetails(probs)
	}
	now := time.Now()
	ev := &sbv1.TriggerEvent{
		Id:         envelope.NewID(),
		Project:    p,
		Kind:       sbv1.Kind_APP_EVENT,
		Name:       req.Name,
		User:       user,
		Credential: requestedCredential(c.Request()),
		Payload:    req.Payload,
		ReceivedAt: timestamppb.New(now),
		Trace:      traceparent(c.Request()),
	}
	if req.OccurredAt != nil {
		ev.OccurredAt = timestamppb.New(*req.OccurredAt)
	}
	key, err := s.idempotencyKey(c, sourceEvents, user, []byte(user), []byte(ev.Credential), body)
	if err != nil {
		return err
	}
	waitRouted := c.QueryParam("wait") == "routed"
	var answers <-chan *nats.Msg
	if waitRouted {
		// The router answers on this inbox once the decision is stored.
		var done func()
		ev.Reply, answers, done = s.replies.register()
		defer done()
	}
	res, err := s.publish(c.Request().Context(), ev, key)
	if err != nil {
		return err
	}
	if res.Duplicate {
		// The key's event was stored by an earlier call (or by a copy this
		// retry republished under the claimed id): answer with its id. The
		// router answered that call, not this one, so there is nothing to
		// wait for.
		replayed(c)
		return c.JSON(http.StatusAccepted, EventAccepted{ID: res.EventID, Status: "accepted"})
	}
	s.opts.Metrics.TriggersReceived.WithLabelValues(p, subjects.KindAppEvent).Inc()
	out := EventAccepted{ID: ev.Id, Status: "accepted"}
	if waitRouted {
		ids, err := waitDecision(c.Request().Context(), answers)
		if err != nil {
			return err
		}
		out.Status, out.RunIDs = "routed", ids
	}
	return c.JSON(http.StatusAccepted, out)
}

func waitDecision(ctx context.Context, answers <-chan *nats.Msg) ([]string, error) {
	timer := time.NewTimer(decisionWait)
	defer timer.Stop()
	for {
		select {
		case m := <-answers:
			rep, err := runs.DecodeReply(m)
			if err != nil {
				return nil, apierr.Internal(err)
			}
			if !rep.Decided {
				continue
			}
			if rep.RunIDs == nil {
				rep.RunIDs = []string{}
			}
			return rep.RunIDs, nil
		case <-timer.C:
			return nil, apierr.New(http.StatusGatewayTimeout, "routing_timeout", "the event was stored but not routed within %s; it will still be routed", decisionWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// traceparent returns the request's W3C traceparent, or "" when it is not a
// well-formed one: a malformed header is dropped, not an error.
func traceparent(r *http.Request) string {
	v := r.Header.Get("traceparent")
	if len(v) != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return ""
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '-' && !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return v
}

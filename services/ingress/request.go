package ingress

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/idempotency"
	"github.com/switchboard-hq/switchboard/pkg/reqbody"
	"github.com/switchboard-hq/switchboard/pkg/routing"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// StatusTimeout is what a synchronous caller gets when the workflow did not
// answer in time, compatible with the product Switchboard mirrors.
const StatusTimeout = 542

// Prefer is the parsed Prefer header (RFC 7240).
type Prefer struct {
	RespondAsync bool
	Wait         time.Duration
}

// ParsePrefer reads respond-async and wait=N (seconds).
func ParsePrefer(h string) Prefer {
	var p Prefer
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimSpace(strings.ToLower(part))
		switch {
		case part == "respond-async":
			p.RespondAsync = true
		case strings.HasPrefix(part, "wait="):
			if n, err := strconv.Atoi(strings.TrimSpace(part[5:])); err == nil && n >= 0 {
				// Waits never exceed the longest workflow timeout; capping
				// first also keeps the multiplication from overflowing.
				p.Wait = time.Duration(min(n, int(workflow.MaxRequestTimeout/time.Second))) * time.Second
			}
		}
	}
	return p
}

// RequestAccepted is the 202 answer of an asynchronous request trigger.
type RequestAccepted struct {
	RunID      string `json:"runId"`
	EventID    string `json:"eventId"`
	WorkflowID string `json:"workflowId"`
	Status     string `json:"status"`
}

// RequestTimedOut is the 542 answer.
type RequestTimedOut struct {
	Message    string `json:"message"`
	RunID      string `json:"runId"`
	WorkflowID string `json:"workflowId"`
}

func (s *Service) triggerRequest(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	r := c.Request()
	p, wid := pr.Project, c.Param("w")
	wf, ok := s.opts.Catalog.Workflow(p, wid)
	if !ok || wf.Trigger.Type != workflow.TriggerRequest {
		return apierr.NotFound("workflow_not_found", "no request-triggered workflow %q in project %s", wid, p)
	}
	if !wf.AllowsMethod(r.Method) {
		allowed := wf.Trigger.Methods
		if len(allowed) == 0 {
			allowed = []string{http.MethodPost}
		}
		c.Response().Header().Set("Allow", strings.Join(allowed, ", "))
		return apierr.New(http.StatusMethodNotAllowed, "method_not_allowed", "workflow %s accepts %s", wid, strings.Join(allowed, ", "))
	}
	user, err := access.ActingUser(pr, r.Header.Get(HeaderUser))
	if err != nil {
		return err
	}
	if err := access.ID(HeaderCredential, r.Header.Get(HeaderCredential)); err != nil {
		return err
	}
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	now := time.Now()
	ev := &sbv1.TriggerEvent{
		Id:         envelope.NewID(),
		Project:    p,
		Kind:       sbv1.Kind_REQUEST,
		Workflow:   wid,
		User:       user,
		Credential: r.Header.Get(HeaderCredential),
		Detail:     &sbv1.TriggerEvent_Request{Request: reqbody.ToProto(r, body)},
		ReceivedAt: timestamppb.New(now),
		Trace:      traceparent(r),
	}

	// Who would run: answer 403/404 now rather than after a round trip.
	cands := routing.Decide(s.opts.Catalog, ev)
	cand, ok := routing.First(cands)
	if !ok {
		s.recordRejection(ev, cands)
		return apierr.New(http.StatusForbidden, "workflow_not_enabled", "workflow %s is not enabled for user %s (%s)", wid, user, routing.Why(cands))
	}
	ev.Credential = cand.Credential

	if err := s.validateRequest(wf, r, ev, body); err != nil {
		return err
	}

	// Keys are scoped per user, so two users' keys never collide.
	scope := "req." + p + "." + wid + "." + subjects.Token(user)
	replayed, err := s.claimIdempotency(c, scope, ev, cand.RunID, body)
	if err != nil {
		return err
	}
	if replayed != nil {
		return c.JSON(http.StatusAccepted, RequestAccepted{RunID: replayed.RunID, EventID: replayed.EventID, WorkflowID: wid, Status: "accepted"})
	}

	prefer := ParsePrefer(r.Header.Get("Prefer"))
	sync := wf.HasResponseStep() && !prefer.RespondAsync
	var answers <-chan *nats.Msg
	if sync {
		var done func()
		ev.Reply, answers, done = s.replies.register()
		defer done()
	}
	if err := s.publish(r.Context(), subjects.Trigger(p, subjects.KindRequest, wid), ev); err != nil {
		s.releaseIdempotency(c, scope)
		return err
	}
	s.opts.Metrics.TriggersReceived.WithLabelValues(p, subjects.KindRequest).Inc()
	accepted := RequestAccepted{RunID: cand.RunID, EventID: ev.Id, WorkflowID: wid, Status: "accepted"}
	if !sync {
		if prefer.RespondAsync {
			c.Response().Header().Set("Location", "/v1/projects/"+p+"/runs/"+cand.RunID)
		}
		return c.JSON(http.StatusAccepted, accepted)
	}

	wait := wf.RequestTimeout()
	if prefer.Wait > 0 && prefer.Wait < wait {
		wait = prefer.Wait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m := <-answers:
		return writeReply(c, m, cand.RunID)
	case <-timer.C:
		return c.JSON(StatusTimeout, RequestTimedOut{
			Message: "the workflow did not respond within " + wait.String() + "; the run continues",
			RunID:   cand.RunID, WorkflowID: wid,
		})
	case <-r.Context().Done():
		// The caller hung up; the run is durable and completes anyway.
		return nil
	}
}

// validateRequest applies the trigger's declarative validation.
func (s *Service) validateRequest(wf *workflow.Workflow, r *http.Request, ev *sbv1.TriggerEvent, body []byte) error {
	spec := wf.Trigger.Validation
	ct := r.Header.Get("Content-Type")
	if err := reqbody.CheckMediaType(spec, ct, len(body)); err != nil {
		return apierr.New(http.StatusUnsupportedMediaType, "unsupported_media_type", "%v", err)
	}
	parsed, err := reqbody.Parse(ct, body, reqbody.Limits{})
	switch {
	case errors.Is(err, reqbody.ErrTooLarge):
		return apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large", "%v", err)
	case errors.Is(err, reqbody.ErrMalformed):
		return apierr.BadRequest("invalid_body", "%v", err)
	case err != nil:
		return apierr.BadRequest("invalid_body", "%v", err)
	}
	if spec == nil {
		return nil
	}
	if fes := reqbody.Validate(spec, r.Method, r.Header, r.URL.Query(), parsed); len(fes) > 0 {
		cand := runs.Candidate{Workflow: wf.ID, User: ev.User, Credential: ev.Credential, Outcome: runs.OutcomeSkipped,
			Reason: runs.ReasonValidationFailed, Message: describeFieldErrors(fes)}
		s.recordRejection(ev, []runs.Candidate{cand})
		e := apierr.BadRequest("validation_failed", "the request failed validation: %s", describeFieldErrors(fes)).WithDetails(fes)
		e.Field = fes[0].Field
		return e
	}
	return nil
}

func describeFieldErrors(fes []reqbody.FieldError) string {
	parts := make([]string, len(fes))
	for i, f := range fes {
		parts[i] = f.Field + " " + f.Message
	}
	return strings.Join(parts, "; ")
}

// recordRejection writes the decision record of a request refused before
// it was published, so "why didn't it run?" has an answer for those too.
func (s *Service) recordRejection(ev *sbv1.TriggerEvent, cands []runs.Candidate) {
	trigger, _ := envelope.MarshalJSON(ev)
	d := runs.Decision{EventID: ev.Id, Project: ev.Project, Kind: ev.Kind.String(), Name: ev.Workflow, User: ev.User,
		Trigger: trigger, Candidates: cands, ReceivedAt: ev.ReceivedAt.AsTime(), DecidedAt: time.Now().UTC()}
	b, err := json.Marshal(d)
	if err != nil {
		return
	}
	m := nats.NewMsg(subjects.Decision(ev.Project, ev.Id))
	m.Header.Set(runs.HeaderRecord, runs.RecordDecision)
	m.Data = b
	// Best effort, asynchronous: the caller's answer does not wait on it.
	if _, err := s.opts.JS.PublishMsgAsync(m); err != nil {
		s.log.Warn("decision record not stored", "event", ev.Id, "err", err)
	}
}

// writeReply renders the executor's answer.
func writeReply(c *echo.Context, m *nats.Msg, runID string) error {
	var rep runs.Reply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return apierr.Internal(err)
	}
	if rep.Error != "" {
		e := apierr.New(http.StatusInternalServerError, rep.Error, "%s", rep.Message)
		e.Details = map[string]string{"runId": rep.RunID}
		return e
	}
	h := c.Response().Header()
	for k, v := range rep.Headers {
		h.Set(k, v)
	}
	h.Set("X-Switchboard-Run-Id", runID)
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	c.Response().WriteHeader(rep.Status)
	_, err := c.Response().Write(rep.Body)
	return err
}

func (s *Service) claimIdempotency(c *echo.Context, scope string, ev *sbv1.TriggerEvent, runID string, body []byte) (*idempotency.Record, error) {
	r := c.Request()
	return s.idempotent(c, scope, idempotency.Record{EventID: ev.Id, RunID: runID},
		[]byte(r.Method), []byte(r.URL.RawQuery), []byte(ev.User), []byte(ev.Credential), body)
}

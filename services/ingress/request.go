package ingress

import (
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
	"github.com/switchboard-hq/switchboard/pkg/reqbody"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// StatusTimeout is what a synchronous caller gets when the workflow did not
// answer in time, compatible with the product Switchboard mirrors.
const StatusTimeout = 542

// decisionWait bounds how long a caller that does not wait for the
// workflow's response waits for the router's decision.
const decisionWait = 10 * time.Second

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
	if err := access.ID(HeaderCredential, requestedCredential(r)); err != nil {
		return err
	}
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	if err := s.validateRequest(wf, r, body); err != nil {
		return err
	}
	prefer := ParsePrefer(r.Header.Get("Prefer"))
	// A caller of a workflow without a response step, or one that asked
	// for an async answer, waits only for the router's decision.
	async := !wf.HasResponseStep() || prefer.RespondAsync
	req := reqbody.ToProto(r, body)
	req.RespondAsync = async
	ev := &sbv1.TriggerEvent{
		Id:         envelope.NewID(),
		Project:    p,
		Kind:       sbv1.Kind_REQUEST,
		Workflow:   wid,
		User:       user,
		Credential: requestedCredential(r),
		Detail:     &sbv1.TriggerEvent_Request{Request: req},
		ReceivedAt: timestamppb.New(time.Now()),
		Trace:      traceparent(r),
	}

	// Keys are per workflow and per user, so two users' keys never collide.
	key, err := s.idempotencyKey(c, sourceRequests+wid, user, []byte(r.Method), []byte(r.URL.RawQuery), []byte(ev.User), []byte(ev.Credential), body)
	if err != nil {
		return err
	}

	// The router decides, once, and answers on this inbox: first the
	// decision (the run id, or why nothing runs), then — for a caller that
	// waits — the response step's answer.
	var answers <-chan *nats.Msg
	var done func()
	ev.Reply, answers, done = s.replies.register()
	defer done()
	res, err := s.publish(r.Context(), ev, key)
	if err != nil {
		return err
	}
	// The run id is derived from the stored event's id — with a key, the
	// id claimed for it — so every answer for the key names the same run.
	runID := runs.RequestRunID(res.EventID, wid, user)
	wait := wf.RequestTimeout()
	if prefer.Wait > 0 && prefer.Wait < wait {
		wait = prefer.Wait
	}
	if res.Duplicate {
		// Stored by an earlier call with this key, or by a copy this retry
		// republished under the claimed id; the router answers the call
		// whose copy was stored, not this one. A caller that waits gets
		// the original answer from the run's record instead.
		replayed(c)
		if !async {
			return s.replayResponse(c, p, wid, runID, wait)
		}
		return c.JSON(http.StatusAccepted, RequestAccepted{RunID: runID, EventID: res.EventID, WorkflowID: wid, Status: "accepted"})
	}
	s.opts.Metrics.TriggersReceived.WithLabelValues(p, subjects.KindRequest).Inc()

	if async {
		wait = decisionWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-answers:
			rep, err := runs.DecodeReply(m)
			if err != nil {
				return apierr.Internal(err)
			}
			if !rep.Decided {
				return writeReply(c, rep, runID)
			}
			if rep.Error != "" {
				// Refused and recorded: nothing runs for this event, so the
				// key may be used again once the caller fixed the cause.
				s.forgetKey(ev, key)
				return apierr.New(rep.Status, rep.Error, "%s", rep.Message)
			}
			if async {
				if prefer.RespondAsync {
					c.Response().Header().Set("Location", "/v1/projects/"+p+"/runs/"+runID)
				}
				return c.JSON(http.StatusAccepted, RequestAccepted{RunID: runID, EventID: ev.Id, WorkflowID: wid, Status: "accepted"})
			}
		case <-timer.C:
			if async {
				// Stored but not decided yet (the router is behind or
				// down): it will still be decided, and run under this id.
				return c.JSON(http.StatusAccepted, RequestAccepted{RunID: runID, EventID: ev.Id, WorkflowID: wid, Status: "accepted"})
			}
			return c.JSON(StatusTimeout, RequestTimedOut{
				Message: "the workflow did not respond within " + wait.String() + "; the run continues",
				RunID:   runID, WorkflowID: wid,
			})
		case <-r.Context().Done():
			// The caller hung up; the run is durable and completes anyway.
			return nil
		}
	}
}

// validateRequest applies the trigger's declarative validation. A refusal
// is the caller's answer (400/413/415); nothing is published.
func (s *Service) validateRequest(wf *workflow.Workflow, r *http.Request, body []byte) error {
	spec := wf.Trigger.Validation
	ct := r.Header.Get("Content-Type")
	if err := reqbody.CheckMediaType(spec, ct, len(body)); err != nil {
		return apierr.New(http.StatusUnsupportedMediaType, "unsupported_media_type", "%v", err)
	}
	parsed, err := reqbody.Parse(ct, body, reqbody.Limits{})
	switch {
	case errors.Is(err, reqbody.ErrTooLarge):
		return apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large", "%v", err)
	case err != nil:
		return apierr.BadRequest("invalid_body", "%v", err)
	}
	if spec == nil {
		return nil
	}
	if fes := reqbody.Validate(spec, r.Method, r.Header, r.URL.Query(), parsed); len(fes) > 0 {
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

// writeReply renders the executor's answer.
func writeReply(c *echo.Context, rep *runs.Reply, runID string) error {
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

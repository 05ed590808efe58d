package decide

import (
	"context"
	"fmt"
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// appEvent decides APP_EVENT triggers: every workflow of that event runs for
// the user, once per enabled credential. An envelope naming a workflow (a
// replay) starts only that one.
type appEvent struct{ m *matcher }

func (appEvent) Check(ev *sbv1.TriggerEvent) error {
	switch {
	case ev.Name == "":
		return fmt.Errorf("%w: app event without name", ErrUnroutable)
	case ev.User == "":
		return fmt.Errorf("%w: app event without user", ErrUnroutable)
	}
	return nil
}

// ReasonUnknownEvent: an App Event whose name the project does not
// declare (ingress answers such a publish with 404 unknown_event; one
// published straight to NATS is recorded with this reason).
const ReasonUnknownEvent = "unknown_event"

func (k appEvent) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	var wfs []*workflow.Workflow
	if ev.Workflow != "" {
		w, ok := k.m.cfg.Workflow(ev.Project, ev.Workflow)
		if !ok || w.Trigger.Type != workflow.TriggerAppEvent || w.Trigger.Event != ev.Name {
			return []runs.Candidate{notFound(ev, workflow.TriggerAppEvent)}, nil
		}
		wfs = []*workflow.Workflow{w}
	} else {
		wfs = k.m.cfg.WorkflowsForEvent(ev.Project, ev.Name)
	}
	// Ingress checks the declaration and the payload schema, but a trigger
	// may be published straight to NATS (the trigger subjects are the
	// public publish surface, docs/security.md): the workflows rely on the
	// schema, so the router checks it again, and says so in the record.
	decl, ok := k.m.cfg.AppEvent(ev.Project, ev.Name)
	if !ok {
		return skipAll(ev, wfs, ReasonUnknownEvent,
			fmt.Sprintf("event %q is not declared in project %s", ev.Name, ev.Project)), nil
	}
	if probs := decl.ValidatePayload(ev.Payload); len(probs) > 0 {
		return skipAll(ev, wfs, runs.ReasonValidationFailed,
			fmt.Sprintf("the payload does not match the schema of %q: %s", ev.Name, probs.Error())), nil
	}
	return k.m.forUser(ctx, ev, wfs)
}

// skipAll records every workflow of wfs as skipped for reason — or, when
// no workflow would have run, one candidate without a workflow, so the
// decision still says why the trigger was refused.
func skipAll(ev *sbv1.TriggerEvent, wfs []*workflow.Workflow, reason, msg string) []runs.Candidate {
	c := runs.Candidate{User: ev.User, Credential: ev.Credential, Outcome: runs.OutcomeSkipped, Reason: reason, Message: msg}
	if len(wfs) == 0 {
		c.Workflow = ev.Workflow
		return []runs.Candidate{c}
	}
	out := make([]runs.Candidate, 0, len(wfs))
	for _, w := range wfs {
		c.Workflow = w.ID
		out = append(out, c)
	}
	return out
}

// request decides REQUEST triggers: the named workflow runs at most once,
// for the caller's one usable credential. When the user has several, the
// caller must choose one (X-Switchboard-Credential): picking the first
// silently would act on an account the caller may not have meant.
type request struct{ m *matcher }

func (request) Check(ev *sbv1.TriggerEvent) error {
	switch {
	case ev.Workflow == "" || ev.User == "":
		return fmt.Errorf("%w: request trigger without workflow or user", ErrUnroutable)
	case ev.GetRequest() == nil:
		return fmt.Errorf("%w: request trigger without its request", ErrUnroutable)
	}
	return nil
}

func (k request) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	w, ok := k.m.cfg.Workflow(ev.Project, ev.Workflow)
	if !ok || w.Trigger.Type != workflow.TriggerRequest {
		return []runs.Candidate{notFound(ev, workflow.TriggerRequest)}, nil
	}
	cands, err := k.m.forUser(ctx, ev, []*workflow.Workflow{w})
	if err != nil {
		return nil, err
	}
	var ran []string
	for _, c := range cands {
		if c.Outcome == runs.OutcomeRan {
			ran = append(ran, c.Credential)
		}
	}
	if len(ran) == 1 {
		for i := range cands {
			if cands[i].Outcome == runs.OutcomeRan {
				cands[i].RunID = runs.RequestRunID(ev.Id, w.ID, ev.User)
			}
		}
	}
	if len(ran) > 1 {
		for i := range cands {
			if cands[i].Outcome == runs.OutcomeRan {
				cands[i].Outcome, cands[i].RunID, cands[i].Reason = runs.OutcomeSkipped, "", runs.ReasonCredentialAmbiguous
				cands[i].Message = fmt.Sprintf("the user has %d usable %s credentials (%s): choose one with the X-Switchboard-Credential header",
					len(ran), w.Integration, strings.Join(ran, ", "))
			}
		}
	}
	return cands, nil
}

func notFound(ev *sbv1.TriggerEvent, want string) runs.Candidate {
	return runs.Candidate{Workflow: ev.Workflow, User: ev.User, Outcome: runs.OutcomeSkipped,
		Reason: runs.ReasonWorkflowNotFound, Message: fmt.Sprintf("no %s workflow %q", want, ev.Workflow)}
}

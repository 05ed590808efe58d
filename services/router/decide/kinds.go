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

func (k appEvent) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	if ev.Workflow != "" {
		w, ok := k.m.cfg.Workflow(ev.Project, ev.Workflow)
		if !ok || w.Trigger.Type != workflow.TriggerAppEvent || w.Trigger.Event != ev.Name {
			return []runs.Candidate{notFound(ev, workflow.TriggerAppEvent)}, nil
		}
		return k.m.forUser(ctx, ev, []*workflow.Workflow{w})
	}
	return k.m.forUser(ctx, ev, k.m.cfg.WorkflowsForEvent(ev.Project, ev.Name))
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

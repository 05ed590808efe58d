package decide

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// lifecycleKind decides INTEGRATION_ENABLED and LIFECYCLE triggers, which
// the connection-lifecycle role derives from a stored credential change:
// every workflow with `trigger: {type: integration_enabled}` (or `{type:
// lifecycle, event}` for the event) of the credential's integration runs
// once, for that user and credential, if the workflow is enabled for it.
//
// The credential's status is not checked: the event is the fact at the
// revision it was derived from (a credential.invalid workflow runs because
// the credential is INVALID). integration.disabled is about a credential
// (or user) that no longer exists, so its enablement comes from the
// overrides the event carries, else the workflow's default.
type lifecycleKind struct {
	m    *matcher
	wfs  Integrations
	kind sbv1.Kind
}

func (lifecycleKind) Check(ev *sbv1.TriggerEvent) error {
	switch {
	case ev.Name == "":
		return fmt.Errorf("%w: lifecycle trigger without event name", ErrUnroutable)
	case ev.User == "" || ev.Credential == "":
		return fmt.Errorf("%w: lifecycle trigger without user or credential", ErrUnroutable)
	case ev.Integration == "":
		return fmt.Errorf("%w: lifecycle trigger without integration", ErrUnroutable)
	}
	return nil
}

// matches reports whether w listens to ev.
func (k lifecycleKind) matches(w *workflow.Workflow, ev *sbv1.TriggerEvent) bool {
	if w.Trigger.Integration != ev.Integration {
		return false
	}
	if k.kind == sbv1.Kind_INTEGRATION_ENABLED {
		return w.Trigger.Type == workflow.TriggerIntegrationEnabled
	}
	return w.Trigger.Type == workflow.TriggerLifecycle && w.Trigger.Event == ev.Name
}

func (k lifecycleKind) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	var wfs []*workflow.Workflow
	for _, w := range k.wfs.Workflows(ev.Project) {
		if (ev.Workflow == "" || w.ID == ev.Workflow) && k.matches(w, ev) {
			wfs = append(wfs, w)
		}
	}
	if len(wfs) == 0 {
		return []runs.Candidate{{Workflow: ev.Workflow, User: ev.User, Credential: ev.Credential, Outcome: runs.OutcomeSkipped,
			Reason: ReasonNoWorkflow, Message: fmt.Sprintf("no workflow listens to %s of %s", ev.Name, ev.Integration)}}, nil
	}
	if ev.Name == workflow.EventIntegrationDisabled {
		return k.disabled(ev, wfs), nil
	}
	creds, err := k.m.dir.Credentials(ctx, ev.Project, ev.User)
	if err != nil {
		return nil, fmt.Errorf("decide: credentials of %s: %w", ev.User, err)
	}
	out := make([]runs.Candidate, 0, len(wfs))
	for _, w := range wfs {
		c := runs.Candidate{Workflow: w.ID, User: ev.User, Credential: ev.Credential}
		var found bool
		for _, cr := range creds {
			if cr.ID != ev.Credential || cr.Integration != ev.Integration {
				continue
			}
			found = true
			if cr.Enabled(w) {
				c.Outcome, c.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, ev.User, cr.ID)
			} else {
				c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow is not enabled for this credential"
			}
		}
		if !found {
			c.Outcome, c.Reason = runs.OutcomeSkipped, runs.ReasonCredentialUnknown
			c.Message = fmt.Sprintf("the user has no %s credential %q (any more)", ev.Integration, ev.Credential)
		}
		out = append(out, c)
	}
	return out, nil
}

// disabled decides integration.disabled with the removed credential's
// overrides from the payload.
func (k lifecycleKind) disabled(ev *sbv1.TriggerEvent, wfs []*workflow.Workflow) []runs.Candidate {
	var p struct {
		Workflows map[string]bool `json:"workflows"`
	}
	_ = json.Unmarshal(ev.Payload, &p) // a payload without overrides leaves the defaults
	out := make([]runs.Candidate, 0, len(wfs))
	for _, w := range wfs {
		c := runs.Candidate{Workflow: w.ID, User: ev.User, Credential: ev.Credential}
		on, ok := p.Workflows[w.ID]
		if !ok {
			on = w.IsEnabledByDefault()
		}
		if on {
			c.Outcome, c.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, ev.User, ev.Credential)
		} else {
			c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow was not enabled for this credential"
		}
		out = append(out, c)
	}
	return out
}

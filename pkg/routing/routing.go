// Package routing decides which workflows a trigger event starts, for which
// connected user and credential — and, for every candidate that does not
// run, why. The router uses it for every trigger; ingress uses it to answer
// a request trigger's caller (403, 404) before anything is published.
package routing

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// ReasonWorkflowNotFound is a request or replay naming no usable workflow.
const ReasonWorkflowNotFound = "workflow_not_found"

// Decide lists every candidate (workflow × credential) for ev.
//
// App events start every workflow of that event; an envelope that names a
// workflow (a replay) starts only that one. Request triggers name their
// workflow. A workflow with an integration runs once per VALID, enabled
// credential of the user for it (or only ev.Credential when set); one
// without an integration runs once for the user unless disabled for them.
// Workflows come from the catalog, users and credentials from dir; an error
// is a directory read that failed (decide again later), never a reason to
// skip a candidate.
func Decide(ctx context.Context, cat *catalog.Catalog, dir directory.Reader, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	var wfs []*workflow.Workflow
	switch {
	case ev.Workflow != "":
		w, ok := cat.Workflow(ev.Project, ev.Workflow)
		want := workflow.TriggerAppEvent
		if ev.Kind == sbv1.Kind_REQUEST {
			want = workflow.TriggerRequest
		}
		if !ok || w.Trigger.Type != want || (want == workflow.TriggerAppEvent && w.Trigger.Event != ev.Name) {
			return []runs.Candidate{{Workflow: ev.Workflow, User: ev.User, Outcome: runs.OutcomeSkipped,
				Reason: ReasonWorkflowNotFound, Message: fmt.Sprintf("no %s workflow %q", want, ev.Workflow)}}, nil
		}
		wfs = []*workflow.Workflow{w}
	case ev.Kind == sbv1.Kind_APP_EVENT:
		wfs = cat.WorkflowsForEvent(ev.Project, ev.Name)
	}
	if len(wfs) == 0 {
		return []runs.Candidate{}, nil
	}
	user, err := dir.User(ctx, ev.Project, ev.User)
	userOK := err == nil
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return nil, fmt.Errorf("routing: user %s: %w", ev.User, err)
	}
	out := make([]runs.Candidate, 0, len(wfs))
	for _, w := range wfs {
		base := runs.Candidate{Workflow: w.ID, User: ev.User}
		switch {
		case !userOK:
			base.Outcome, base.Reason, base.Message = runs.OutcomeSkipped, runs.ReasonUnknownUser, "the user is not a connected user of this project"
			out = append(out, base)
		case w.Integration == "":
			if !user.Enabled(w) {
				base.Outcome, base.Reason, base.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow is not enabled for this user"
			} else {
				base.Outcome, base.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, ev.User, "")
			}
			out = append(out, base)
		default:
			cands, err := credentialCandidates(ctx, dir, ev, w, base)
			if err != nil {
				return nil, err
			}
			out = append(out, cands...)
		}
	}
	return out, nil
}

func credentialCandidates(ctx context.Context, dir directory.Reader, ev *sbv1.TriggerEvent, w *workflow.Workflow, base runs.Candidate) ([]runs.Candidate, error) {
	var creds []*directory.Credential
	if ev.Credential != "" {
		cr, err := dir.Credential(ctx, ev.Project, ev.User, ev.Credential)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return nil, fmt.Errorf("routing: credential %s: %w", ev.Credential, err)
		}
		if err != nil || cr.Integration != w.Integration {
			base.Credential = ev.Credential
			base.Outcome, base.Reason = runs.OutcomeSkipped, runs.ReasonCredentialUnknown
			base.Message = fmt.Sprintf("the user has no %s credential %q", w.Integration, ev.Credential)
			return []runs.Candidate{base}, nil
		}
		creds = []*directory.Credential{cr}
	} else {
		all, err := dir.Credentials(ctx, ev.Project, ev.User)
		if err != nil {
			return nil, fmt.Errorf("routing: credentials of %s: %w", ev.User, err)
		}
		for _, cr := range all {
			if cr.Integration == w.Integration {
				creds = append(creds, cr)
			}
		}
	}
	if len(creds) == 0 {
		base.Outcome, base.Reason = runs.OutcomeSkipped, runs.ReasonNoCredential
		base.Message = fmt.Sprintf("the user has not connected %s", w.Integration)
		return []runs.Candidate{base}, nil
	}
	out := make([]runs.Candidate, 0, len(creds))
	for _, cr := range creds {
		c := base
		c.Credential = cr.ID
		switch {
		case cr.Status != directory.CredentialValid:
			c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonCredentialInvalid, "the credential's status is "+cr.Status
		case !cr.Enabled(w):
			c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow is not enabled for this credential"
		default:
			c.Outcome, c.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, ev.User, cr.ID)
		}
		out = append(out, c)
	}
	return out, nil
}

// First returns the first candidate that runs, if any; a request trigger
// runs at most once, so ingress narrows a request to this candidate's
// credential before publishing.
func First(cands []runs.Candidate) (runs.Candidate, bool) {
	for _, c := range cands {
		if c.Outcome == runs.OutcomeRan {
			return c, true
		}
	}
	return runs.Candidate{}, false
}

// Why describes why none of cands runs, from the first one's reason.
func Why(cands []runs.Candidate) string {
	if len(cands) == 0 {
		return "no workflow matches"
	}
	return cands[0].Reason + ": " + cands[0].Message
}

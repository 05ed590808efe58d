package decide

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Integrations is what the integration decider reads beyond Config: every
// workflow of a project (integration triggers are few; no index needed) and
// the integration manifests. The catalog is one.
type Integrations interface {
	Workflows(project string) []*workflow.Workflow
	Integration(project, id string) (*workflow.Integration, bool)
}

// Accounts is the directory's index of credentials by provider account id.
type Accounts interface {
	CredentialsByAccount(ctx context.Context, project, integration, accountID string) ([]*directory.Credential, error)
}

// Reasons an integration trigger's candidate did not run.
const (
	// ReasonNoWorkflow: no workflow listens to this provider event.
	ReasonNoWorkflow = "no_workflow"
	// ReasonTenantUnknown: an app-level event named no provider account.
	ReasonTenantUnknown = "tenant_unknown"
	// ReasonNoCredentialForAccount: no credential of the integration has
	// the event's provider account id.
	ReasonNoCredentialForAccount = "no_credential_for_account"
	// ReasonFilter: the workflow's trigger filter is false for the event.
	ReasonFilter = "filter"
	// ReasonFilterError: the filter could not be evaluated.
	ReasonFilterError = "filter_error"
	// ReasonParamsMismatch: the integration's match rule for the trigger's
	// params (e.g. recordType) is false for the event.
	ReasonParamsMismatch = "params_mismatch"
)

// integrationKind decides INTEGRATION triggers (verified provider webhooks):
// every workflow with `trigger: {type: integration}` for the event's
// integration and event runs once per credential the event resolved to —
// the one named by a per-credential URL, or every credential with the
// event's provider account id (two users in one Slack workspace both get
// it) — whose user has the workflow enabled and for which the trigger's
// filter holds. Every one that does not run says which rule stopped it.
type integrationKind struct {
	m    *matcher
	cfg  Integrations
	accs Accounts
}

func (integrationKind) Check(ev *sbv1.TriggerEvent) error {
	switch {
	case ev.Name == "":
		return fmt.Errorf("%w: integration event without a type (name)", ErrUnroutable)
	case ev.Integration == "":
		return fmt.Errorf("%w: integration event without integration", ErrUnroutable)
	case ev.GetProvider() == nil:
		return fmt.Errorf("%w: integration event without its provider detail", ErrUnroutable)
	case ev.Credential != "" && ev.User == "":
		return fmt.Errorf("%w: integration event names a credential without its user", ErrUnroutable)
	}
	return nil
}

func (k integrationKind) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	wfs := k.workflows(ev)
	if len(wfs) == 0 {
		return []runs.Candidate{{Outcome: runs.OutcomeSkipped, User: ev.User, Credential: ev.Credential, Reason: ReasonNoWorkflow,
			Message: fmt.Sprintf("no workflow has an integration trigger for %s event %q", ev.Integration, ev.Name)}}, nil
	}
	creds, skip, err := k.credentials(ctx, ev)
	if err != nil {
		return nil, err
	}
	if skip != nil {
		out := make([]runs.Candidate, 0, len(wfs))
		for _, w := range wfs {
			c := *skip
			c.Workflow = w.ID
			out = append(out, c)
		}
		return out, nil
	}
	payload := decodePayload(ev.Payload)
	out := make([]runs.Candidate, 0, len(wfs)*len(creds))
	for _, w := range wfs {
		for _, cr := range creds {
			out = append(out, k.candidate(ev, w, cr, payload))
		}
	}
	return out, nil
}

// workflows lists the workflows whose integration trigger is this event:
// by the manifest's declaration of the trigger's event (its provider type
// or glob), else by the event name itself.
func (k integrationKind) workflows(ev *sbv1.TriggerEvent) []*workflow.Workflow {
	var out []*workflow.Workflow
	in, _ := k.cfg.Integration(ev.Project, ev.Integration)
	for _, w := range k.cfg.Workflows(ev.Project) {
		t := &w.Trigger
		if t.Type != workflow.TriggerIntegration || t.Integration != ev.Integration {
			continue
		}
		if ev.Workflow != "" && ev.Workflow != w.ID {
			continue // a replay of one workflow's run
		}
		if in != nil {
			if decl, ok := in.Effective().Trigger(t.Event); ok {
				if decl.Matches(ev.Name) {
					out = append(out, w)
				}
				continue
			}
		}
		if t.Event == ev.Name {
			out = append(out, w)
		}
	}
	return out
}

// credentials resolves the event's tenant: the credential of a
// per-credential URL, or the account's credentials. A non-nil skip is the
// candidate every workflow gets when nothing resolves.
func (k integrationKind) credentials(ctx context.Context, ev *sbv1.TriggerEvent) ([]*directory.Credential, *runs.Candidate, error) {
	skip := func(reason, format string, args ...any) *runs.Candidate {
		return &runs.Candidate{User: ev.User, Credential: ev.Credential, Outcome: runs.OutcomeSkipped, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	if ev.Credential != "" {
		all, err := k.m.dir.Credentials(ctx, ev.Project, ev.User)
		if err != nil {
			return nil, nil, fmt.Errorf("decide: credentials of %s: %w", ev.User, err)
		}
		for _, cr := range all {
			if cr.ID == ev.Credential && cr.Integration == ev.Integration {
				return []*directory.Credential{cr}, nil, nil
			}
		}
		return nil, skip(runs.ReasonCredentialUnknown, "user %s has no %s credential %q (removed since the delivery?)", ev.User, ev.Integration, ev.Credential), nil
	}
	if ev.User != "" || k.appLevel(ev) {
		return k.userCredentials(ctx, ev, skip) // an API Resource's webhook.userId (resource.go)
	}
	acct := ev.GetProvider().GetProviderAccountId()
	if acct == "" {
		return nil, skip(ReasonTenantUnknown, "the %s event names no provider account (the manifest's accountId gave nothing): it cannot be routed to a credential; use a per-credential webhook URL", ev.Integration), nil
	}
	creds, err := k.accs.CredentialsByAccount(ctx, ev.Project, ev.Integration, acct)
	if err != nil {
		return nil, nil, fmt.Errorf("decide: credentials of account %s: %w", acct, err)
	}
	if len(creds) == 0 {
		return nil, skip(ReasonNoCredentialForAccount, "no credential for %s account %q", ev.Integration, acct), nil
	}
	sort.Slice(creds, func(i, j int) bool {
		if creds[i].User != creds[j].User {
			return creds[i].User < creds[j].User
		}
		return creds[i].ID < creds[j].ID
	})
	return creds, nil, nil
}

func (k integrationKind) candidate(ev *sbv1.TriggerEvent, w *workflow.Workflow, cr *directory.Credential, payload any) runs.Candidate {
	c := runs.Candidate{Workflow: w.ID, User: cr.User, Credential: cr.ID, Outcome: runs.OutcomeSkipped}
	switch {
	case cr.Status != directory.CredentialValid:
		c.Reason, c.Message = runs.ReasonCredentialInvalid, "the credential's status is "+cr.Status
		return c
	case !cr.Enabled(w):
		c.Reason, c.Message = runs.ReasonNotEnabled, "the workflow is not enabled for this credential"
		return c
	}
	pe := ev.GetProvider()
	if in, ok := k.cfg.Integration(ev.Project, ev.Integration); ok {
		if decl, ok := in.Effective().Trigger(w.Trigger.Event); ok && decl.MatchExpr() != nil {
			params := map[string]any{}
			for k, v := range w.Trigger.Params {
				params[k] = v
			}
			env := map[string]any{
				"event":  map[string]any{"type": ev.Name, "id": pe.GetEventId(), "accountId": pe.GetProviderAccountId(), "payload": payload},
				"params": params,
			}
			ok, err := decl.MatchExpr().Bool(env)
			switch {
			case err != nil:
				c.Reason, c.Message = ReasonParamsMismatch, fmt.Sprintf("the %s match rule of %q failed: %v", ev.Integration, w.Trigger.Event, err)
				return c
			case !ok:
				c.Reason, c.Message = ReasonParamsMismatch, fmt.Sprintf("the event does not match the trigger's params (%s rule %q)", ev.Integration, decl.MatchExpr().String())
				return c
			}
		}
	}
	if f := w.Trigger.FilterExpr(); f != nil {
		ok, err := f.Bool(filterEnv(ev, cr, payload))
		switch {
		case err != nil:
			c.Reason, c.Message = ReasonFilterError, fmt.Sprintf("filter %q: %v", f.String(), err)
			return c
		case !ok:
			c.Reason, c.Message = ReasonFilter, fmt.Sprintf("filter %q is false for this event", f.String())
			return c
		}
	}
	c.Outcome, c.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, cr.User, cr.ID)
	return c
}

// filterEnv is what a trigger filter sees: the event as the run will
// (trigger.payload …), the credential it would run for, and its user.
func filterEnv(ev *sbv1.TriggerEvent, cr *directory.Credential, payload any) map[string]any {
	pe := ev.GetProvider()
	return map[string]any{
		"trigger": map[string]any{
			"id": ev.Id, "kind": ev.Kind.String(), "name": ev.Name, "integration": ev.Integration,
			"payload": payload, "eventId": pe.GetEventId(), "providerAccountId": pe.GetProviderAccountId(),
		},
		"credential": map[string]any{
			"id": cr.ID, "integration": cr.Integration, "providerAccountId": cr.ProviderAccountID, "settings": cr.Settings,
		},
		"user": map[string]any{"id": cr.User},
	}
}

func decodePayload(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	return v
}

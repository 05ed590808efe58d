package decide

import (
	"context"
	"fmt"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// userCredentials resolves an API Resource event that names its user (the
// manifest's webhook.userId, read from the verified payload) and no
// credential: the user must be a connected user of the project, else every
// workflow records unknown_user (the sender was answered 200 all the same,
// like an unknown account). An app-level resource's one credential serves
// every user, so the user's single candidate has no credential of its own
// and the user's workflow enablement decides; a user-level resource runs
// for each of the user's credentials of it.
func (k integrationKind) userCredentials(ctx context.Context, ev *sbv1.TriggerEvent,
	skip func(reason, format string, args ...any) *runs.Candidate) ([]*directory.Credential, *runs.Candidate, error) {
	if ev.User == "" {
		return nil, skip(ReasonTenantUnknown, "the %s event names no user (the manifest's webhook.userId gave nothing): an app-level resource's events run for the user they name", ev.Integration), nil
	}
	u, ok, err := k.m.dir.User(ctx, ev.Project, ev.User)
	if err != nil {
		return nil, nil, fmt.Errorf("decide: user %s: %w", ev.User, err)
	}
	if !ok {
		return nil, skip(runs.ReasonUnknownUser, "the %s event names user %q, who is not a connected user of this project", ev.Integration, ev.User), nil
	}
	if k.appLevel(ev) {
		// A credential-less stand-in carrying the user's enablement: the
		// run's `auth: credential` steps use the app-level credential.
		return []*directory.Credential{{Project: ev.Project, User: u.ID, Integration: ev.Integration,
			Status: directory.CredentialValid, Workflows: u.Workflows}}, nil, nil
	}
	all, err := k.m.dir.Credentials(ctx, ev.Project, ev.User)
	if err != nil {
		return nil, nil, fmt.Errorf("decide: credentials of %s: %w", ev.User, err)
	}
	var out []*directory.Credential
	for _, cr := range all {
		if cr.Integration == ev.Integration {
			out = append(out, cr)
		}
	}
	if len(out) == 0 {
		return nil, skip(runs.ReasonNoCredential, "user %s has not connected %s", ev.User, ev.Integration), nil
	}
	return out, nil, nil
}

// appLevel reports whether ev's integration is an app-level API Resource.
func (k integrationKind) appLevel(ev *sbv1.TriggerEvent) bool {
	in, ok := k.cfg.Integration(ev.Project, ev.Integration)
	return ok && in.Effective().AppLevel()
}

package lifecycle

import (
	"context"
	"errors"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// SDKResource is one API Resource the user is connected to, in GET
// /projects/{p}/sdk/me's resources: a user-level resource once per
// credential the user connected (POST …/sdk/resources/{r}/connect), an
// app-level one (level: app) for every user once its one credential is
// stored.
type SDKResource struct {
	// ID is the resource (its Integration document's id).
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Level is manifest.LevelUser or manifest.LevelApp.
	Level string `json:"level"`
	// Status is the credential's status (VALID, INVALID).
	Status string `json:"status"`
	// CredentialID is the user's credential of a user-level resource.
	CredentialID string `json:"credentialId,omitempty"`
}

// sdkResources lists the resources user creds connect, plus the project's
// app-level resources whose credential is stored, sorted by resource. A
// stored app credential this process cannot open (another key) still
// counts: it is connected, the runs that use it say why they fail.
func (s *Service) sdkResources(ctx context.Context, p string, creds []*directory.Credential) ([]SDKResource, error) {
	out := []SDKResource{}
	for _, in := range s.cat.Integrations(p) {
		m := in.Effective()
		if !m.Resource {
			continue
		}
		if m.AppLevel() {
			_, err := s.dir.AppCredential(ctx, p, in.ID)
			switch {
			case errors.Is(err, directory.ErrNotFound):
				continue
			case err != nil && !errors.Is(err, directory.ErrSecretUnavailable):
				return nil, err
			}
			out = append(out, SDKResource{ID: in.ID, Name: m.Name, Level: manifest.LevelApp, Status: directory.CredentialValid})
			continue
		}
		for _, cr := range creds {
			if cr.Integration == in.ID {
				out = append(out, SDKResource{ID: in.ID, Name: m.Name, Level: manifest.LevelUser, Status: cr.Status, CredentialID: cr.ID})
			}
		}
	}
	return out, nil
}

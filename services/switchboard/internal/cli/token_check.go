package cli

import (
	"context"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// checkTokenProject fails unless project exists at baseURL and trusts pub.
// The data dir's signing key is the one `switchboard dev` gives project
// dev; a token for any other project is refused by the server unless that
// project lists the key, so minting one silently (a typo in --project, a
// project never created) only moves the error to the first request, where
// it reads as a bare 401. The question goes to the API with the data dir's
// operator token.
func checkTokenProject(ctx context.Context, baseURL, dataDir, project string, pub *rsa.PublicKey) error {
	admin, err := os.ReadFile(filepath.Join(dataDir, dev.AdminTokenFile))
	if err != nil {
		return fmt.Errorf("project %q: the data dir's key signs tokens for project %s; to check %q exists, %s needs the operator token (%s): %w",
			project, dev.Project, project, filepath.Join(dataDir, dev.AdminTokenFile), baseURL, err)
	}
	api, err := client.New(client.Options{BaseURL: baseURL, Token: strings.TrimSpace(string(admin))})
	if err != nil {
		return err
	}
	p, err := api.GetProject(ctx, project)
	switch {
	case client.IsCode(err, "project_not_found"):
		return fmt.Errorf("project %q does not exist at %s (create it with PUT /v1/projects/%s, or leave --project at %s)", project, baseURL, project, dev.Project)
	case err != nil:
		return fmt.Errorf("cannot check that project %q exists at %s (--url, SWITCHBOARD_URL): %w", project, baseURL, err)
	}
	if !slices.Contains(p.UserTokenKeys, auth.EncodePublicKeyPEM(pub)) {
		return fmt.Errorf("project %q does not trust the signing key in %s: its tokens would be refused (add the public key to its userTokenKeys, or sign with the project's own key)", project, dataDir)
	}
	return nil
}

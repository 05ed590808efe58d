package lifecycle

import (
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// TestIntegrationState checks what sdk/me says of one integration: the
// SDK's workflow() needs a VALID credential in allCredentials, and
// credentialId is what it shows as connected.
func TestIntegrationState(t *testing.T) {
	off := false
	sync := &workflow.Workflow{ID: "sync", Integration: "crm"}
	manual := &workflow.Workflow{ID: "manual", Integration: "crm", EnabledByDefault: &off}
	crm := sdkIntegration{id: "crm", name: "CRM", workflows: []*workflow.Workflow{sync, manual}}
	none := sdkIntegration{id: NoIntegration, workflows: []*workflow.Workflow{{ID: "quote"}}}
	cred := func(id, integration, status string, overrides map[string]bool) *directory.Credential {
		return &directory.Credential{ID: id, Integration: integration, Status: status, Workflows: overrides}
	}
	for _, tc := range []struct {
		name        string
		in          sdkIntegration
		user        *directory.User
		creds       []*directory.Credential
		enabled     bool
		credential  string
		ids         []string
		syncEnabled bool // the first credential's workflowSettings.sync.enabled
	}{
		{name: "no credential", in: crm, user: &directory.User{ID: "u1"}},
		{name: "other integration only", in: crm, user: &directory.User{ID: "u1"},
			creds: []*directory.Credential{cred("g1", "gmail", directory.CredentialValid, nil)}},
		{name: "one valid", in: crm, user: &directory.User{ID: "u1"},
			creds:   []*directory.Credential{cred("c1", "crm", directory.CredentialValid, nil)},
			enabled: true, credential: "c1", ids: []string{"c1"}, syncEnabled: true},
		{name: "invalid first, valid second", in: crm, user: &directory.User{ID: "u1"},
			creds: []*directory.Credential{
				cred("c1", "crm", directory.CredentialInvalid, nil),
				cred("c2", "crm", directory.CredentialValid, map[string]bool{"sync": false}),
			},
			enabled: true, credential: "c2", ids: []string{"c1", "c2"}, syncEnabled: true},
		{name: "only invalid", in: crm, user: &directory.User{ID: "u1"},
			creds:      []*directory.Credential{cred("c1", "crm", directory.CredentialInvalid, map[string]bool{"sync": false})},
			credential: "c1", ids: []string{"c1"}},
		{name: "no integration, known user", in: none, user: &directory.User{ID: "u1"},
			enabled: true, credential: NoIntegrationCredential, ids: []string{NoIntegrationCredential}},
		{name: "no integration, unknown user", in: none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := integrationState(tc.in, tc.user, tc.creds)
			if st.Enabled != tc.enabled || st.CredentialID != tc.credential || st.AllCredentials == nil || len(st.AllCredentials) != len(tc.ids) {
				t.Fatalf("state = %+v, want enabled %v, credentialId %q, credentials %v", st, tc.enabled, tc.credential, tc.ids)
			}
			for i, id := range tc.ids {
				c := st.AllCredentials[i]
				if c.ID != id || c.ExternalID != id || len(c.Configurations) != 1 || !c.Configurations[0].IsDefault || c.Configurations[0].ConnectCredentialID != id {
					t.Errorf("allCredentials[%d] = %+v, want %s with one default configuration", i, c, id)
				}
				for _, w := range tc.in.workflows {
					if _, ok := c.Configurations[0].WorkflowSettings[w.ID]; !ok {
						t.Errorf("allCredentials[%d] has no workflowSettings for %s", i, w.ID)
					}
				}
			}
			if tc.in.id == "crm" && len(tc.ids) > 0 {
				ws := st.AllCredentials[0].Configurations[0].WorkflowSettings
				if ws["sync"].Enabled != tc.syncEnabled || ws["manual"].Enabled {
					t.Errorf("workflowSettings = %+v, want sync %v (override or default), manual off (enabledByDefault false)", ws, tc.syncEnabled)
				}
			}
		})
	}
}

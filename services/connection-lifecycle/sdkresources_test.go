package lifecycle_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// TestSDKMeResources: GET sdk/me lists the user's connected API Resources —
// a user-level resource once per credential of it, an app-level one for
// every user once its credential is stored — and nothing else.
func TestSDKMeResources(t *testing.T) {
	ev := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := workflow.Parse([]byte(`kind: Integration
id: tasklab
name: TaskLab
resource: true
level: app
---
kind: Integration
id: crmlab
resource: true
`), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := ev.cat.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	me := func() []lifecycle.SDKResource {
		t.Helper()
		r := ev.do(t, http.MethodGet, "/projects/proj/sdk/me", ev.tokU1, "")
		if r.status != http.StatusOK {
			t.Fatalf("sdk/me: %d %s", r.status, r.body)
		}
		return decode[lifecycle.SDKMe](t, r.body).Resources
	}
	if got := me(); len(got) != 0 {
		t.Fatalf("nothing connected, resources %+v", got)
	}
	for _, c := range []struct{ id, integration string }{{"crm-1", "crmlab"}, {"hs-1", "hubspot"}} {
		if _, _, err := ev.dir.UpdateCredential(ctx, "proj", "u1", c.id, func(cr *directory.Credential, _ bool) error {
			cr.Integration, cr.Status, cr.Secret = c.integration, directory.CredentialValid, map[string]any{"accessToken": "t"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ev.dir.SetAppCredential(ctx, "proj", "tasklab", &directory.AppCredential{Secret: map[string]any{"apiKey": "k"}}); err != nil {
		t.Fatal(err)
	}
	got := me()
	want := []lifecycle.SDKResource{
		{ID: "crmlab", Level: "user", Status: directory.CredentialValid, CredentialID: "crm-1"},
		{ID: "tasklab", Name: "TaskLab", Level: "app", Status: directory.CredentialValid},
	}
	if len(got) != len(want) {
		t.Fatalf("resources %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("resources[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

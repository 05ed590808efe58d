package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// lifecycleDocs: integration crm connecting with OAuth at the fake
// provider (required setting portalId), a workflow on Integration Enabled
// calling the listener with the credential's token, and one on
// credential.invalid.
func lifecycleDocs(provider, listener string) string {
	return fmt.Sprintf(`kind: Integration
id: crm
auth: {type: bearer}
settings:
  - {key: portalId, type: string, required: true}
  - {key: color, type: string}
oauth:
  authorizeUrl: %[1]s/authorize
  tokenUrl: %[1]s/token
  scopes: [contacts]
  accountId: {url: %[1]s/me, field: id}
---
kind: Workflow
id: welcome
trigger: {type: integration_enabled, integration: crm}
steps:
  - id: hello
    type: http
    method: POST
    url: %[2]s/enabled
    auth: credential
    json: {user: "{{ user.id }}", credential: "{{ trigger.payload.credentialId }}", portal: "{{ trigger.payload.settings.portalId }}", account: "{{ trigger.payload.providerAccountId }}"}
---
kind: Workflow
id: reconnect-mail
trigger: {type: lifecycle, event: credential.invalid, integration: crm}
steps:
  - id: tell
    type: http
    method: POST
    url: %[2]s/invalid
    json: {user: "{{ user.id }}", credential: "{{ trigger.payload.credentialId }}"}
`, provider, listener)
}

// TestLifecycleWalkthrough is the README's connect walk-through on a dev
// system: curl -L through the OAuth flow, the credential VALID, the
// Integration Enabled run only after the required setting is saved (and
// exactly once), then a refresh the provider refuses marks it INVALID and
// runs the credential.invalid workflow once.
func TestLifecycleWalkthrough(t *testing.T) {
	l := newListener(t)
	fake := fakeprovider.New(fakeprovider.Options{ClientID: "switchboard-dev", ClientSecret: "dev-secret"})
	fp := httptest.NewServer(fake.Handler())
	t.Cleanup(fp.Close)
	sys, _ := startDev(t, dev.Options{})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, lifecycleDocs(fp.URL, l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/integrations/crm/oauth-client", key,
		map[string]any{"clientId": "switchboard-dev", "clientSecret": "dev-secret"})
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fake.SetNextAccount("acct-42")

	// curl -L: start → provider authorize → callback → the credential.
	res, err := http.Get(a.base + "/v1/connect/dev/crm/start?credential=c1&token=" + url.QueryEscape(token))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"status":"VALID"`) || !strings.Contains(string(body), `"providerAccountId":"acct-42"`) {
		t.Fatalf("connect: %d %s", res.StatusCode, body)
	}
	// Not enabled yet: portalId is required. The optional setting alone
	// does not enable it either.
	a.must(t, http.StatusOK, "PATCH", "/v1/projects/dev/users/u1/credentials/c1/settings", key, map[string]any{"color": "blue"})
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{"name": "Ada"}})
	if got := l.matching("user", "u1"); len(got) != 0 {
		t.Fatalf("runs before the required setting: %+v", got)
	}
	expectError(t, a.call(t, "PATCH", "/v1/projects/dev/users/u1/credentials/c1/settings", key, map[string]any{"portalId": 7}),
		http.StatusBadRequest, "invalid_settings")
	a.must(t, http.StatusOK, "PATCH", "/v1/projects/dev/users/u1/credentials/c1/settings", key, map[string]any{"portalId": "p-1"})
	got := l.waitFor(t, "user", "u1", 1)
	if got[0].Path != "/enabled" || got[0].Body["portal"] != "p-1" || got[0].Body["account"] != "acct-42" || !strings.HasPrefix(got[0].Auth, "Bearer ") {
		t.Fatalf("enabled run: %+v", got[0])
	}

	fake.Revoke("acct-42")
	r := a.must(t, http.StatusOK, "POST", "/v1/projects/dev/users/u1/credentials/c1/refresh", key, nil)
	if !strings.Contains(string(r.Body), `"status":"INVALID"`) {
		t.Fatalf("refused refresh: %s", r)
	}
	inv := l.waitFor(t, "credential", "c1", 2)
	if inv[1].Path != "/invalid" {
		t.Fatalf("second run: %+v", inv[1])
	}
	// Settle: a later change of the user runs nothing more.
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{"name": "Ada L"}})
	eventually(t, 5*time.Second, "no further runs", func() (bool, string) {
		n := len(l.matching("credential", "c1"))
		return n == 2, fmt.Sprintf("%d runs", n)
	})
	enabled := 0
	for _, r := range l.all() {
		if r.Path == "/enabled" {
			enabled++
		}
	}
	if enabled != 1 {
		t.Fatalf("%d Integration Enabled runs, want 1", enabled)
	}
}

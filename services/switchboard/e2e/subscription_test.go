package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestSubscriptionWalkthrough is the README's subscription step on a dev
// system: the built-in asana manifest extended to connect and subscribe at
// the fake provider; turning a workflow on creates the user's webhook at
// Asana's API (whose X-Hook-Secret handshake the webhook receiver answers
// at the credential's URL), a delivery signed with that secret runs the
// workflow, turning it off deletes the webhook, and removing the
// credential deletes a new one.
func TestSubscriptionWalkthrough(t *testing.T) {
	l := newListener(t)
	fake, fp, sys := startWithProvider(t, fakeprovider.Options{ClientID: "switchboard-dev", ClientSecret: "dev-secret"})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, fmt.Sprintf(`kind: Integration
id: asana
oauth:
  authorizeUrl: %[1]s/authorize
  tokenUrl: %[1]s/token
  accountId: {url: %[1]s/me, field: id}
subscription: {baseUrl: %[1]s/api/1.0}
---
kind: Workflow
id: task-added
enabledByDefault: false
trigger: {type: integration, integration: asana, event: task.added}
steps:
  - {id: tell, type: http, method: POST, url: %[2]s/task, json: {user: "{{ user.id }}", task: "{{ trigger.payload.resource.gid }}"}}
`, fp.URL, l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/integrations/asana/oauth-client", key,
		map[string]any{"clientId": "switchboard-dev", "clientSecret": "dev-secret"})
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(cred string) {
		t.Helper()
		res, err := http.Get(a.base + "/v1/connect/dev/asana/start?credential=" + cred + "&token=" + url.QueryEscape(token))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), `"status":"VALID"`) {
			t.Fatalf("connect: %d %s", res.StatusCode, body)
		}
		a.must(t, http.StatusOK, "PATCH", "/v1/projects/dev/users/u1/credentials/"+cred+"/settings", key, map[string]any{"resource": "1201"})
	}
	enable := func(cred string, on bool) {
		t.Helper()
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1/credentials/"+cred+"/workflows/task-added", key, map[string]any{"enabled": on})
	}
	live := func(n int) func() (bool, string) {
		return func() (bool, string) {
			s := fake.Subscriptions()
			return len(s) == n, fmt.Sprintf("%d subscriptions at the provider: %+v", len(s), s)
		}
	}

	connect("a1")
	enable("a1", true)
	eventually(t, 20*time.Second, "the webhook created", live(1))
	sub := fake.Subscriptions()[0]
	if !strings.HasPrefix(sub.Target, "http://"+sys.HTTPAddr+"/v1/hooks/dev/asana/") || sub.Resource != "1201" {
		t.Fatalf("subscription %+v", sub)
	}
	eventually(t, 10*time.Second, "active on the credential", func() (bool, string) {
		r := a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1/credentials/a1", key, nil)
		return strings.Contains(string(r.Body), `"subscriptions":[{"trigger":"*","status":"active","providerId":"`+sub.ID+`"}]`), string(r.Body)
	})
	// The provider's delivery, signed with the handshake's secret, runs
	// the workflow.
	status, body, err := fake.Deliver(t.Context(), sub.ID)
	if err != nil || status != 200 || !strings.Contains(body, `"accepted"`) {
		t.Fatalf("deliver: %d %s %v", status, body, err)
	}
	if got := l.waitFor(t, "user", "u1", 1); got[0].Path != "/task" || got[0].Body["task"] == "" {
		t.Fatalf("run: %+v", got[0])
	}

	enable("a1", false)
	eventually(t, 20*time.Second, "the webhook deleted", live(0))
	// On again: a new webhook, whose handshake is accepted (the old
	// secret went with the old webhook); then the credential removed.
	enable("a1", true)
	eventually(t, 20*time.Second, "the webhook created again", live(1))
	a.must(t, http.StatusNoContent, "DELETE", "/v1/projects/dev/users/u1/credentials/a1", key, nil)
	eventually(t, 20*time.Second, "the webhook deleted with the credential", live(0))
	if c := fake.SubscriptionCalls(); c.Creates != 2 || c.Deletes != 2 {
		t.Fatalf("calls %+v", c)
	}
}

// TestSubscriptionStripeSecret: the built-in stripe manifest extended with
// endpoints created per connected account at the fake provider (a project's
// own subscription section); the endpoint created for a credential answers its signing
// secret, which is kept on the credential, so a delivery Stripe signs with
// it to the credential's URL is verified and runs the workflow.
func TestSubscriptionStripeSecret(t *testing.T) {
	l := newListener(t)
	fake, fp, sys := startWithProvider(t, fakeprovider.Options{})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, fmt.Sprintf(`kind: Integration
id: stripe
subscription:
  baseUrl: %[1]s
  create:
    url: /v1/webhook_endpoints
    headers: {Authorization: 'Bearer {{ credential.accessToken }}'}
    form: {url: '{{ trigger.callbackUrl }}', 'enabled_events[]': ['{{ trigger.type }}']}
    id: body.id
    secret: body.secret
  delete:
    url: '/v1/webhook_endpoints/{{ credential.subscriptionId }}'
    headers: {Authorization: 'Bearer {{ credential.accessToken }}'}
---
kind: Workflow
id: new-customer
trigger: {type: integration, integration: stripe, event: customer.created}
steps:
  - {id: tell, type: http, method: POST, url: %[2]s/customer, json: {user: "{{ user.id }}", customer: "{{ trigger.payload.data.object.id }}"}}
`, fp.URL, l.URL))
	// Enabled by default: connecting the account subscribes it.
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u7/credentials/s1", key,
		map[string]any{"integration": "stripe", "secret": map[string]any{"accessToken": "sk_test_e2e"}})
	eventually(t, 20*time.Second, "the endpoint created", func() (bool, string) {
		s := fake.Subscriptions()
		return len(s) == 1, fmt.Sprintf("%+v", s)
	})
	sub := fake.Subscriptions()[0]
	if strings.Join(sub.Events, ",") != "customer.created" || !strings.HasPrefix(sub.Target, "http://"+sys.HTTPAddr+"/v1/hooks/dev/stripe/") {
		t.Fatalf("endpoint %+v", sub)
	}
	status, body, err := fake.Deliver(t.Context(), sub.ID)
	if err != nil || status != 200 || !strings.Contains(body, `"accepted"`) {
		t.Fatalf("deliver: %d %s %v", status, body, err)
	}
	if got := l.waitFor(t, "user", "u7", 1); got[0].Path != "/customer" || !strings.HasPrefix(fmt.Sprint(got[0].Body["customer"]), "cus_") {
		t.Fatalf("run: %+v", got[0])
	}
	a.must(t, http.StatusNoContent, "DELETE", "/v1/projects/dev/users/u7/credentials/s1", key, nil)
	eventually(t, 20*time.Second, "the endpoint deleted", func() (bool, string) {
		s := fake.Subscriptions()
		return len(s) == 0, fmt.Sprintf("%+v", s)
	})
}

// TestSubscriptionClickUp: the built-in clickup manifest (pointed at the
// fake provider by its baseUrl) creates one webhook per trigger event for a
// connected workspace; each answers its own secret, kept on the
// credential, and a delivery signed with either runs its workflow.
func TestSubscriptionClickUp(t *testing.T) {
	l := newListener(t)
	fake, fp, sys := startWithProvider(t, fakeprovider.Options{})
	a, key := newAPI(sys.HTTPAddr), sys.APIKey
	docs := fmt.Sprintf("kind: Integration\nid: clickup\nsubscription: {baseUrl: %s/api/v2}\n", fp.URL)
	for i, ev := range []string{"taskCreated", "taskUpdated"} {
		docs += fmt.Sprintf("---\nkind: Workflow\nid: on-task-%[3]d\ntrigger: {type: integration, integration: clickup, event: %[1]s}\nsteps:\n  - {id: tell, type: http, method: POST, url: %[2]s/%[1]s, json: {user: \"{{ user.id }}\", event: \"{{ trigger.payload.event }}\"}}\n", ev, l.URL, i)
	}
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, docs)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u9/credentials/cu", key,
		map[string]any{"integration": "clickup", "providerAccountId": "9001", "secret": map[string]any{"apiKey": "pk_e2e"}})
	eventually(t, 20*time.Second, "a webhook per trigger", func() (bool, string) {
		s := fake.Subscriptions()
		return len(s) == 2, fmt.Sprintf("%+v", s)
	})
	for _, s := range fake.Subscriptions() {
		if s.Resource != "9001" || len(s.Events) != 1 {
			t.Fatalf("webhook %+v", s)
		}
		status, body, err := fake.Deliver(t.Context(), s.ID)
		if err != nil || status != 200 || !strings.Contains(body, `"accepted"`) {
			t.Fatalf("deliver to %s: %d %s %v", s.Events[0], status, body, err)
		}
	}
	got := l.waitFor(t, "user", "u9", 2)
	paths := map[string]bool{got[0].Path: true, got[1].Path: true}
	if !paths["/taskCreated"] || !paths["/taskUpdated"] {
		t.Fatalf("runs %+v", got)
	}
	a.must(t, http.StatusNoContent, "DELETE", "/v1/projects/dev/users/u9/credentials/cu", key, nil)
	eventually(t, 20*time.Second, "both deleted", func() (bool, string) {
		s := fake.Subscriptions()
		return len(s) == 0, fmt.Sprintf("%+v", s)
	})
}

// startWithProvider starts the fake provider and a dev system on a port
// known before it starts: the callback URL subscriptions give the provider
// is the listen address (no SWITCHBOARD_PUBLIC_URL).
func startWithProvider(t *testing.T, opts fakeprovider.Options) (*fakeprovider.Provider, *httptest.Server, *dev.System) {
	t.Helper()
	fake := fakeprovider.New(opts)
	fp := httptest.NewServer(fake.Handler())
	t.Cleanup(fp.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sys, _ := startDev(t, dev.Options{HTTPAddr: addr})
	return fake, fp, sys
}

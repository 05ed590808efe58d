package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestAPIResourceRuns: the customer's own API as an API Resource — a user
// connects it through the SDK route, the API's signed webhook (Standard
// Webhooks) reaches the resource's app-level URL, and the workflow runs for
// that user with the connected access token.
func TestAPIResourceRuns(t *testing.T) {
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, fmt.Sprintf(`kind: Integration
id: tasklab
resource: true
auth: {type: bearer}
webhook:
  verification: {preset: standard-webhooks}
  eventType: body.type
  eventId: 'headers["webhook-id"]'
  accountId: body.workspace
---
kind: Workflow
id: tasklab-created
trigger: {type: integration, integration: tasklab, event: task.created}
steps:
  - {id: call, type: http, method: POST, url: '%s/tasklab', auth: credential, json: {task: "{{ trigger.payload.task.id }}", user: "{{ user.id }}"}}
`, l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/integrations/tasklab/webhook-secrets", key, map[string]any{"secrets": []map[string]any{{"value": secret}}})
	a.must(t, http.StatusOK, "POST", "/projects/dev/sdk/resources/tasklab/connect", key,
		map[string]any{"access_token": "tl-token", "providerAccountId": "ws-9"}, "X-Switchboard-User", "ana")

	sw, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"type":"task.created","workspace":"ws-9","task":{"id":"T-1"}}`
	now := time.Now()
	sig, _ := sw.Sign("msg_tl_1", now, []byte(body))
	r := a.call(t, "POST", "/v1/hooks/dev/tasklab", "", body, "Content-Type", "application/json",
		"webhook-id", "msg_tl_1", "webhook-timestamp", strconv.FormatInt(now.Unix(), 10), "webhook-signature", sig)
	if r.Status != http.StatusOK {
		t.Fatalf("delivery: %s", r)
	}
	got := l.waitFor(t, "task", "T-1", 1)[0]
	if got.Body["user"] != "ana" || got.Auth != "Bearer tl-token" {
		t.Fatalf("run called the listener with %s (auth %q)", got.Raw, got.Auth)
	}
}

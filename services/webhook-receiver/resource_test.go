package receiver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

// TestAPIResource: a customer's own API as a resource manifest; a user
// connects it through the SDK route (the mirrored product's connectAction
// body), and its webhooks — verified like any integration's — become
// API_RESOURCE triggers for that user's credential, app-level (by account)
// or on the credential's own URL.
func TestAPIResource(t *testing.T) {
	e := newEnv(t)
	e.apply(`kind: Integration
id: tasklab
resource: true
auth: {type: bearer}
webhook:
  verification: {preset: standard-webhooks}
  eventType: body.type
  eventId: 'headers["webhook-id"]'
  accountId: body.workspace
`)
	e.secrets("tasklab", directory.WebhookSecret{Value: swSecret})
	connect := func(resource, user, body string) response {
		r, _ := http.NewRequest(http.MethodPost, e.base+"/projects/"+project+"/sdk/resources/"+resource+"/connect", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+apiKey)
		r.Header.Set("X-Switchboard-User", user)
		r.Header.Set("Content-Type", "application/json")
		return e.do(r)
	}
	r := connect("tasklab", "alice", `{"access_token":"at-1","refresh_token":"rt-1","providerAccountId":"ws-1"}`)
	if r.status != 200 {
		t.Fatalf("connect: %d %s", r.status, r.body)
	}
	var conn receiver.ResourceConnection
	if err := json.Unmarshal([]byte(r.body), &conn); err != nil || conn.Credential == nil || conn.WebhookURL == "" {
		t.Fatalf("answer %s", r.body)
	}
	if conn.Credential.ID != "tasklab" || conn.Credential.Status != directory.CredentialValid || conn.Credential.ProviderAccountID != "ws-1" || strings.Contains(r.body, "at-1") {
		t.Fatalf("credential %+v (answer %s)", conn.Credential, r.body)
	}
	sec, err := e.dir.Secret(e.ctx, project, "alice", "tasklab")
	if err != nil || sec["accessToken"] != "at-1" || sec["refreshToken"] != "rt-1" {
		t.Fatalf("secret %v %v", sec, err)
	}
	for _, bad := range []struct{ resource, body string }{{"stripe", `{"access_token":"x"}`}, {"nope", `{"access_token":"x"}`}} {
		if r := connect(bad.resource, "alice", bad.body); r.status != 404 {
			t.Fatalf("connect %s: %d %s", bad.resource, r.status, r.body)
		}
	}
	if r := connect("tasklab", "alice", `{}`); r.status != 400 {
		t.Fatalf("no values: %d", r.status)
	}

	sw, _ := standardwebhooks.NewWebhook(swSecret)
	deliver := func(path, id string) {
		t.Helper()
		body := `{"type":"task.created","workspace":"ws-1","task":{"id":"t1"}}`
		now := time.Now()
		sig, _ := sw.Sign(id, now, []byte(body))
		req, _ := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		if r := e.do(req); r.status != 200 {
			t.Fatalf("delivery to %s: %d %s", path, r.status, r.body)
		}
	}
	deliver("/v1/hooks/acme/tasklab", "msg_app")
	deliver(strings.TrimPrefix(conn.WebhookURL, e.base), "msg_cred")
	evs := e.stored()
	if len(evs) != 2 {
		t.Fatalf("%d stored", len(evs))
	}
	for _, ev := range evs {
		if ev.Kind != sbv1.Kind_API_RESOURCE || ev.Integration != "tasklab" || ev.Name != "task.created" || ev.GetProvider().GetProviderAccountId() != "ws-1" {
			t.Fatalf("stored %+v", ev)
		}
	}
	if evs[1].User != "alice" || evs[1].Credential != "tasklab" {
		t.Fatalf("per-credential event for %q/%q", evs[1].User, evs[1].Credential)
	}
}

package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestAppLevelResourceRuns: an app-level API Resource — one credential set
// for every user, stored with the API key — whose signed webhook names the
// user in its body (webhook.userId): the delivery to the resource's
// app-level URL runs the workflow for that user, its http step carrying the
// app-level credential; a delivery naming a user nobody connected is
// answered 200 and recorded.
func TestAppLevelResourceRuns(t *testing.T) {
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, fmt.Sprintf(`kind: Integration
id: tasklab
resource: true
level: app
auth: {type: bearer}
webhook:
  verification: {preset: standard-webhooks}
  eventType: body.type
  eventId: 'headers["webhook-id"]'
  userId: body.data.userId
---
kind: Workflow
id: tasklab-created
trigger: {type: integration, integration: tasklab, event: task.created}
steps:
  - {id: call, type: http, method: POST, url: '%s/tasklab', auth: credential, json: {task: "{{ trigger.payload.data.task }}", user: "{{ user.id }}"}}
`, l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/integrations/tasklab/webhook-secrets", key, map[string]any{"secrets": []map[string]any{{"value": secret}}})
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/resources/tasklab/credential", key, map[string]any{"access_token": "app-wide-token"})
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/ana", key, map[string]any{})
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/bo", key, map[string]any{})
	expectError(t, a.call(t, "POST", "/projects/dev/sdk/resources/tasklab/connect", key, map[string]any{"access_token": "x"}, "X-Switchboard-User", "ana"),
		http.StatusConflict, "resource_app_level")
	token, err := sys.Token("ana", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, a.call(t, "PUT", "/v1/projects/dev/resources/tasklab/credential", token, map[string]any{"access_token": "mine"}), http.StatusForbidden, "forbidden")
	var me lifecycle.SDKMe
	a.must(t, http.StatusOK, "GET", "/projects/dev/sdk/me", token, nil).decode(t, &me)
	if len(me.Resources) != 1 || me.Resources[0] != (lifecycle.SDKResource{ID: "tasklab", Level: "app", Status: "VALID"}) {
		t.Fatalf("sdk/me resources %+v", me.Resources)
	}

	sw, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(id, body string) []string {
		t.Helper()
		now := time.Now()
		sig, _ := sw.Sign(id, now, []byte(body))
		r := a.call(t, "POST", "/v1/hooks/dev/tasklab", "", body, "Content-Type", "application/json",
			"webhook-id", id, "webhook-timestamp", strconv.FormatInt(now.Unix(), 10), "webhook-signature", sig)
		if r.Status != http.StatusOK {
			t.Fatalf("delivery %s: %s", id, r)
		}
		var ans struct{ Events []string }
		r.decode(t, &ans)
		return ans.Events
	}
	deliver("msg_app_1", `{"type":"task.created","data":{"userId":"ana","task":"T-1"}}`)
	got := l.waitFor(t, "task", "T-1", 1)
	if len(got) != 1 || got[0].Body["user"] != "ana" || got[0].Auth != "Bearer app-wide-token" {
		t.Fatalf("run called the listener with %+v", got)
	}

	evs := deliver("msg_app_2", `{"type":"task.created","data":{"userId":"nobody","task":"T-2"}}`)
	d := getDecision(t, a, key, evs[0])
	if len(d.Candidates) != 1 || d.Candidates[0].Reason != "unknown_user" || d.Candidates[0].User != "nobody" {
		t.Fatalf("decision %+v", d.Candidates)
	}
	if n := len(l.matching("task", "T-2")); n != 0 {
		t.Fatalf("%d calls for an unknown user", n)
	}
}

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

// appResourceDocs are an app-level resource (one credential for every
// user, deliveries routed by the user they name) and a user-level one.
const appResourceDocs = `kind: Integration
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
kind: Integration
id: crmlab
resource: true
webhook:
  verification: {preset: standard-webhooks}
  eventType: body.type
  userId: body.user
`

// TestAppResourceCredential: an app-level resource's credential is the
// project's, set with the API key in the connect body's shape, shown
// without its values, sealed apart from any user, and removed; every
// malformed or misdirected request is a 4xx that says why.
func TestAppResourceCredential(t *testing.T) {
	e := newEnv(t)
	e.apply(appResourceDocs)
	call := func(method, path, key, body string, header ...string) response {
		t.Helper()
		r, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		r.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return e.do(r)
	}
	const cred = "/v1/projects/" + project + "/resources/tasklab/credential"

	if r := call(http.MethodGet, cred, apiKey, ""); r.status != 404 || errCode(r) != "no_app_credential" {
		t.Fatalf("GET before PUT: %d %s", r.status, r.body)
	}
	r := call(http.MethodPut, cred, apiKey, `{"access_token":"app-token-1","refresh_token":"rt"}`)
	if r.status != 200 || strings.Contains(r.body, "app-token-1") {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	var info receiver.AppCredentialInfo
	if err := json.Unmarshal([]byte(r.body), &info); err != nil || info.Resource != "tasklab" || info.Level != "app" ||
		info.Status != directory.CredentialValid || strings.Join(info.Keys, ",") != "accessToken,refreshToken" || info.UpdatedAt.IsZero() {
		t.Fatalf("PUT answer %s (%v)", r.body, err)
	}
	if r := call(http.MethodGet, cred, apiKey, ""); r.status != 200 || strings.Contains(r.body, "app-token-1") || !strings.Contains(r.body, `"accessToken"`) {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	if ac, err := e.dir.AppCredential(e.ctx, project, "tasklab"); err != nil || ac.Secret["accessToken"] != "app-token-1" {
		t.Fatalf("stored %+v %v", ac, err)
	}

	bad := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
		header                        []string
	}{
		{"no key", http.MethodPut, cred, "", `{"access_token":"x"}`, 401, "", nil},
		{"wrong key", http.MethodGet, cred, "sk_test_wrong_key_000000000000", "", 401, "", nil},
		{"not JSON", http.MethodPut, cred, apiKey, `{"access_token":`, 400, "invalid_json", nil},
		{"not an object", http.MethodPut, cred, apiKey, `["x"]`, 400, "invalid_json", nil},
		{"two objects", http.MethodPut, cred, apiKey, `{"a":"1"} {"b":"2"}`, 400, "invalid_json", nil},
		{"no values", http.MethodPut, cred, apiKey, `{}`, 400, "missing_field", nil},
		{"a credential id", http.MethodPut, cred, apiKey, `{"access_token":"x","credentialId":"c"}`, 400, "invalid_field", nil},
		{"an account id", http.MethodPut, cred, apiKey, `{"access_token":"x","providerAccountId":"a"}`, 400, "invalid_field", nil},
		{"too large", http.MethodPut, cred, apiKey, `{"apiKey":"` + strings.Repeat("k", receiver.MaxCredentialValuesBody) + `"}`, 413, "", nil},
		{"unknown resource", http.MethodPut, "/v1/projects/" + project + "/resources/nope/credential", apiKey, `{"access_token":"x"}`, 404, "unknown_resource", nil},
		{"an integration is no resource", http.MethodGet, "/v1/projects/" + project + "/resources/stripe/credential", apiKey, "", 404, "unknown_resource", nil},
		{"another project", http.MethodGet, "/v1/projects/other/resources/tasklab/credential", apiKey, "", 403, "", nil},
		{"a user-level resource", http.MethodPut, "/v1/projects/" + project + "/resources/crmlab/credential", apiKey, `{"access_token":"x"}`, 409, "resource_user_level", nil},
		{"user-level connect of an app-level resource", http.MethodPost, "/projects/" + project + "/sdk/resources/tasklab/connect", apiKey, `{"access_token":"x"}`, 409, "resource_app_level", []string{"X-Switchboard-User", "ana"}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			r := call(b.method, b.path, b.key, b.body, b.header...)
			if r.status != b.status || (b.code != "" && errCode(r) != b.code) {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, b.status, b.code)
			}
		})
	}
	if cs, _ := e.dir.Credentials(e.ctx, project, "ana"); len(cs) != 0 {
		t.Fatalf("the refused connect stored %+v", cs)
	}
	if ac, err := e.dir.AppCredential(e.ctx, project, "tasklab"); err != nil || ac.Secret["accessToken"] != "app-token-1" {
		t.Fatalf("a refused PUT changed the credential: %+v %v", ac, err)
	}

	if r := call(http.MethodDelete, cred, apiKey, ""); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := call(http.MethodGet, cred, apiKey, ""); r.status != 404 {
		t.Fatalf("GET after DELETE: %d %s", r.status, r.body)
	}
}

// TestAppResourceRoutesByUser: a delivery to an app-level resource's URL
// carries the user its verified body names (webhook.userId), per item; it
// is verified and deduplicated like any other, and a delivery naming no
// user still answers 200 (the router records that no user matched).
func TestAppResourceRoutesByUser(t *testing.T) {
	e := newEnv(t)
	e.apply(appResourceDocs)
	e.secrets("tasklab", directory.WebhookSecret{Value: swSecret})
	sw, err := standardwebhooks.NewWebhook(swSecret)
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(id, body string, sign bool) response {
		t.Helper()
		now := time.Now()
		req, _ := http.NewRequest(http.MethodPost, e.base+"/v1/hooks/"+project+"/tasklab", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		if sign {
			sig, _ := sw.Sign(id, now, []byte(body))
			req.Header.Set("webhook-signature", sig)
		}
		return e.do(req)
	}
	if r := deliver("msg_1", `{"type":"task.created","data":{"userId":"ana"}}`, true); r.status != 200 || answer(t, r).Status != receiver.StatusAccepted {
		t.Fatalf("delivery: %d %s", r.status, r.body)
	}
	if r := deliver("msg_1", `{"type":"task.created","data":{"userId":"ana"}}`, true); r.status != 200 || answer(t, r).Status != receiver.StatusDeduplicated {
		t.Fatalf("repeat: %d %s", r.status, r.body)
	}
	if r := deliver("msg_2", `{"type":"task.created","data":{}}`, true); r.status != 200 {
		t.Fatalf("no user: %d %s", r.status, r.body)
	}
	if r := deliver("msg_3", `{"type":"task.created","data":{"userId":"mallory"}}`, false); r.status != 401 {
		t.Fatalf("unsigned: %d %s", r.status, r.body)
	}
	evs := e.stored()
	if len(evs) != 2 {
		t.Fatalf("%d stored: %+v", len(evs), evs)
	}
	if ev := evs[0]; ev.Kind != sbv1.Kind_API_RESOURCE || ev.Integration != "tasklab" || ev.User != "ana" || ev.Credential != "" {
		t.Fatalf("stored %+v", ev)
	}
	if evs[1].User != "" {
		t.Fatalf("an item naming no user was stored for %q", evs[1].User)
	}
}

package manifest_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

const subHook = `webhook: {verification: {preset: stripe}, eventType: body.type, accountId: body.account}`

// stripeEndpoints is a project's manifest extending the built-in stripe
// with endpoints created in each connected account (webhook_endpoints),
// whose answer carries the endpoint's signing secret.
const stripeEndpoints = `
id: stripe
subscription:
  baseUrl: https://api.stripe.com
  create:
    url: /v1/webhook_endpoints
    headers: {Authorization: 'Bearer {{ credential.accessToken }}'}
    form:
      url: '{{ trigger.callbackUrl }}'
      'enabled_events[]': ['{{ trigger.type }}']
    id: body.id
    secret: body.secret
  delete:
    url: '/v1/webhook_endpoints/{{ credential.subscriptionId }}'
    headers: {Authorization: 'Bearer {{ credential.accessToken }}'}
`

// stripeWithEndpoints is the built-in stripe extended by stripeEndpoints.
func stripeWithEndpoints(t testing.TB) *manifest.Manifest {
	t.Helper()
	over, err := manifest.Parse([]byte(stripeEndpoints))
	if err != nil && over == nil {
		t.Fatal(err)
	}
	base, _ := manifest.Builtin("stripe")
	m := over.Extend(base)
	if p := m.Compile(); len(p) > 0 {
		t.Fatal(p)
	}
	return m
}

func TestSubscriptionSection(t *testing.T) {
	const okCreate = `create: {url: /hooks, headers: {Authorization: 'Bearer {{ credential.accessToken }}'}, body: {url: '{{ trigger.callbackUrl }}'}, id: body.id}`
	const okDelete = `delete: {url: '/hooks/{{ credential.subscriptionId }}'}`
	tests := []struct {
		name, sub, wantErr string
	}{
		{"valid", `{baseUrl: 'https://p.example/api', ` + okCreate + `, ` + okDelete + `}`, ""},
		{"absolute urls without base", `{create: {url: 'https://p.example/hooks', id: body.id}, delete: {url: 'https://p.example/hooks/{{ credential.subscriptionId }}'}}`, ""},
		{"app callback with account routing", `{callback: app, baseUrl: 'https://p.example', ` + okCreate + `, ` + okDelete + `}`, ""},
		{"form body", `{baseUrl: 'https://p.example', create: {url: /e, form: {url: '{{ trigger.callbackUrl }}', 'events[]': ['{{ trigger.type }}']}, id: body.id, secret: body.secret}, ` + okDelete + `}`, ""},
		{"create required", `{baseUrl: 'https://p.example', ` + okDelete + `}`, "subscription.create: is required"},
		{"delete required", `{baseUrl: 'https://p.example', ` + okCreate + `}`, "subscription.delete: is required"},
		{"id required", `{baseUrl: 'https://p.example', create: {url: /h}, ` + okDelete + `}`, "subscription.create.id"},
		{"relative url without base", `{` + okCreate + `, ` + okDelete + `}`, "subscription.create.url"},
		{"bad url", `{create: {url: 'ftp://x', id: body.id}, ` + okDelete + `}`, "subscription.create.url"},
		{"bad base", `{baseUrl: '/api', ` + okCreate + `, ` + okDelete + `}`, "subscription.baseUrl"},
		{"bad method", `{baseUrl: 'https://p.example', create: {method: TRACE, url: /h, id: body.id}, ` + okDelete + `}`, "subscription.create.method"},
		{"bad header name", `{baseUrl: 'https://p.example', create: {url: /h, id: body.id, headers: {'a b': x}}, ` + okDelete + `}`, "subscription.create.headers.a b"},
		{"bad template", `{baseUrl: 'https://p.example', create: {url: '/h/{{ credential.( }}', id: body.id}, ` + okDelete + `}`, "subscription.create.url"},
		{"unknown template variable", `{baseUrl: 'https://p.example', create: {url: '/h/{{ secrets.x }}', id: body.id}, ` + okDelete + `}`, "subscription.create.url"},
		{"bad id expression", `{baseUrl: 'https://p.example', create: {url: /h, id: 'body.('}, ` + okDelete + `}`, "subscription.create.id"},
		{"id reads only the answer", `{baseUrl: 'https://p.example', create: {url: /h, id: credential.id}, ` + okDelete + `}`, "subscription.create.id"},
		{"body and form", `{baseUrl: 'https://p.example', create: {url: /h, id: body.id, body: {a: 1}, form: {a: b}}, ` + okDelete + `}`, "subscription.create.form"},
		{"form value not a string", `{baseUrl: 'https://p.example', create: {url: /h, id: body.id, form: {a: {b: c}}}, ` + okDelete + `}`, "subscription.create.form.a"},
		{"delete has no id", `{baseUrl: 'https://p.example', ` + okCreate + `, delete: {url: /h, id: body.id}}`, "subscription.delete.id"},
		{"bad per", `{per: user, baseUrl: 'https://p.example', ` + okCreate + `, ` + okDelete + `}`, "subscription.per"},
		{"bad callback", `{callback: x, baseUrl: 'https://p.example', ` + okCreate + `, ` + okDelete + `}`, "subscription.callback"},
		{"unknown field", `{baseUrl: 'https://p.example', ` + okCreate + `, ` + okDelete + `, nope: 1}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte(`{id: p, ` + subHook + `, subscription: ` + tt.sub + `}`))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Subscription == nil || m.Subscription.Create == nil {
					t.Fatalf("subscription %+v", m.Subscription)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("app callback needs account routing", func(t *testing.T) {
		_, err := manifest.Parse([]byte(`{id: p, webhook: {verification: {preset: stripe}, eventType: body.type}, subscription: {callback: app, create: {url: 'https://p.example/h', id: body.id}, delete: {url: 'https://p.example/h'}}}`))
		if err == nil || !strings.Contains(err.Error(), "subscription.callback") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("needs a webhook", func(t *testing.T) {
		_, err := manifest.Parse([]byte(`{id: p, subscription: {create: {url: 'https://p.example/h', id: body.id}, delete: {url: 'https://p.example/h'}}}`))
		if err == nil || !strings.Contains(err.Error(), "needs a webhook") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestSubscriptionRequests(t *testing.T) {
	vars := manifest.SubscriptionVars{CredentialID: "c1", AccessToken: "tok", User: "u1", Event: "customer.created",
		EventType: "customer.created", CallbackURL: "https://sb.example/v1/hooks/p/stripe/abc", SubscriptionID: "we_1",
		Settings: map[string]any{"resource": "123"}}
	t.Run("stripe create is a form with the event list", func(t *testing.T) {
		m := stripeWithEndpoints(t)
		req, err := m.Subscription.CreateRequest(context.Background(), vars)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method != http.MethodPost || req.URL.String() != "https://api.stripe.com/v1/webhook_endpoints" || req.Header.Get("Authorization") != "Bearer tok" {
			t.Fatalf("%s %s %v", req.Method, req.URL, req.Header)
		}
		b, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(b))
		if form.Get("url") != vars.CallbackURL || form["enabled_events[]"][0] != "customer.created" || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Fatalf("form %v", form)
		}
		id, secret, err := m.Subscription.Created(nil, "application/json", []byte(`{"id":"we_9","object":"webhook_endpoint","secret":"whsec_x"}`))
		if err != nil || id != "we_9" || secret != "whsec_x" {
			t.Fatalf("%q %q %v", id, secret, err)
		}
		del, err := m.Subscription.DeleteRequest(context.Background(), vars)
		if err != nil || del.Method != http.MethodDelete || del.URL.String() != "https://api.stripe.com/v1/webhook_endpoints/we_1" {
			t.Fatalf("%v %v", del, err)
		}
	})
	t.Run("asana create is JSON on the chosen resource", func(t *testing.T) {
		m, _ := manifest.Builtin("asana")
		if !m.Subscription.PerCredential() {
			t.Fatal("asana subscribes per credential")
		}
		req, err := m.Subscription.CreateRequest(context.Background(), vars)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(req.Body)
		if req.URL.String() != "https://app.asana.com/api/1.0/webhooks" || string(b) != `{"data":{"resource":"123","target":"https://sb.example/v1/hooks/p/stripe/abc"}}` {
			t.Fatalf("%s %s", req.URL, b)
		}
		id, secret, err := m.Subscription.Created(nil, "application/json", []byte(`{"data":{"gid":"1200","active":true}}`))
		if err != nil || id != "1200" || secret != "" {
			t.Fatalf("%q %q %v", id, secret, err)
		}
	})
	t.Run("clickup create is JSON on the workspace, the secret in the answer", func(t *testing.T) {
		m, _ := manifest.Builtin("clickup")
		req, err := m.Subscription.CreateRequest(context.Background(), manifest.SubscriptionVars{AccessToken: "pk_1", ProviderAccountID: "9001",
			EventType: "taskCreated", CallbackURL: "https://sb.example/h"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(req.Body)
		if req.URL.String() != "https://api.clickup.com/api/v2/team/9001/webhook" || req.Header.Get("Authorization") != "pk_1" ||
			string(b) != `{"endpoint":"https://sb.example/h","events":["taskCreated"]}` {
			t.Fatalf("%s %v %s", req.URL, req.Header, b)
		}
		id, secret, err := m.Subscription.Created(nil, "application/json", []byte(`{"id":"4b67ac88","webhook":{"id":"4b67ac88","secret":"O94IM25S"}}`))
		if err != nil || id != "4b67ac88" || secret != "O94IM25S" {
			t.Fatalf("%q %q %v", id, secret, err)
		}
	})
	t.Run("an answer without an id is an error", func(t *testing.T) {
		m := stripeWithEndpoints(t)
		if _, _, err := m.Subscription.Created(nil, "application/json", []byte(`{"error":{"message":"nope"}}`)); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("extend overrides the base URL only", func(t *testing.T) {
		base, _ := manifest.Builtin("asana")
		over, err := manifest.Parse([]byte(`{id: asana, subscription: {baseUrl: 'http://127.0.0.1:9100/api/1.0'}}`))
		if err == nil {
			t.Fatal("a subscription without create/delete alone should not compile")
		}
		got := over.Extend(base)
		if p := got.Compile(); len(p) > 0 {
			t.Fatal(p)
		}
		req, err := got.Subscription.CreateRequest(context.Background(), vars)
		if err != nil || req.URL.String() != "http://127.0.0.1:9100/api/1.0/webhooks" || !got.Subscription.PerCredential() {
			t.Fatalf("%v %v", req, err)
		}
	})
}

// FuzzSubscriptionAnswer: a create answer of any bytes never panics, and
// an id read from it is non-empty and bounded.
func FuzzSubscriptionAnswer(f *testing.F) {
	f.Add(`{"id":"we_1","secret":"whsec_x"}`, "application/json")
	f.Add(`{"data":{"gid":12345678901234567}}`, "application/json")
	f.Add(`[[[[`, "text/plain")
	f.Add(`id=1&secret=2`, "application/x-www-form-urlencoded")
	subs := []*manifest.Subscription{stripeWithEndpoints(f).Subscription}
	for _, id := range []string{"clickup", "asana"} {
		m, _ := manifest.Builtin(id)
		subs = append(subs, m.Subscription)
	}
	f.Fuzz(func(t *testing.T, body, ctype string) {
		for _, s := range subs {
			id, secret, err := s.Created(http.Header{"X-Id": {body}}, ctype, []byte(body))
			if err == nil && (id == "" || len(id) > 1024 || len(secret) > 4096) {
				t.Fatalf("id %q secret %q", id, secret)
			}
		}
	})
}

// FuzzSubscriptionSection: any subscription section parses or is refused
// with problems, never a panic, and a valid one renders its requests.
func FuzzSubscriptionSection(f *testing.F) {
	f.Add(`{baseUrl: 'https://p.example', create: {url: /h, id: body.id, form: {a: '{{ credential.id }}'}}, delete: {url: '/h/{{ credential.subscriptionId }}'}}`)
	f.Add(`{create: {url: 'https://x/{{ trigger.type', id: body.id}, delete: {url: 'http://x'}}`)
	f.Add(`{per: credential, callback: app, create: {method: put, url: 'https://x', body: [1, '{{ user.id }}'], id: body.id}, delete: {url: 'https://x'}}`)
	f.Fuzz(func(t *testing.T, sub string) {
		m, err := manifest.Parse([]byte(`{id: p, ` + subHook + `, subscription: ` + sub + `}`))
		if err != nil || m.Subscription == nil {
			return
		}
		vars := manifest.SubscriptionVars{CredentialID: "c", AccessToken: "t", CallbackURL: "https://sb/x", SubscriptionID: "s"}
		_, _ = m.Subscription.CreateRequest(context.Background(), vars)
		_, _ = m.Subscription.DeleteRequest(context.Background(), vars)
	})
}

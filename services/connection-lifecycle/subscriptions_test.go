package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/workflow"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// subEnv is an oauthEnv whose project extends the built-in stripe
// manifest with a subscription at the fake provider's webhook_endpoints
// API, with three
// workflows (off by default): two on customer.created, one on invoice.paid.
type subEnv struct {
	*oauthEnv
	h    *env
	r1   *lifecycle.Service
	opts func(*lifecycle.Options)
}

func newSubEnv(t *testing.T) *subEnv {
	t.Helper()
	o := newOAuthEnv(t, time.Hour)
	// The built-in stripe manifest subscribes nobody (platforms mostly
	// use one app-level endpoint); this project adds endpoints created in
	// each connected account, Stripe answering their signing secret.
	docs := fmt.Sprintf(`
kind: Integration
id: stripe
subscription:
  baseUrl: %q
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
`, o.fakeURL)
	for _, w := range []struct{ id, event string }{{"w1", "customer.created"}, {"w2", "customer.created"}, {"w3", "invoice.paid"}} {
		docs += fmt.Sprintf(`---
kind: Workflow
id: %s
enabledByDefault: false
trigger: {type: integration, integration: stripe, event: %s}
steps: [{id: s, type: http, method: POST, url: "http://127.0.0.1:9/x"}]
`, w.id, w.event)
	}
	objs, err := workflow.Parse([]byte(docs), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := o.cat.Apply(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.cat.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	e := &subEnv{oauthEnv: o, opts: func(opts *lifecycle.Options) {
		opts.Subscriptions = lifecycle.SubscriptionOptions{Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			TeardownAttempts: 3, Interval: 20 * time.Millisecond, CatalogInterval: 20 * time.Millisecond}
	}}
	e.h, e.r1 = e.serve(t, "r1")
	return e
}

// serve starts a replica serving HTTP at its own public URL (the
// callbacks' base), as serveOAuth does, and returns it too.
func (e *subEnv) serve(t *testing.T, name string) (*env, *lifecycle.Service) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	svc := e.replicaWith(t, name, nil, func(opts *lifecycle.Options) {
		opts.PublicURL = public
		e.opts(opts)
	})
	ec := httpx.NewEcho(slog.New(slog.DiscardHandler))
	svc.Register(ec)
	srv := httptest.NewUnstartedServer(ec)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{srv: srv, cat: e.cat, dir: e.dir, key: e.key}, svc
}

// until polls cond until it holds (10 s deadline).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *subEnv) connect(t *testing.T, cred, key string) {
	t.Helper()
	if r := e.h.do(t, http.MethodPut, "/v1/projects/proj/users/u1/credentials/"+cred, e.key,
		`{"integration":"stripe","secret":{"accessToken":"`+key+`"}}`); r.status != 200 {
		t.Fatalf("connect: %d %s", r.status, r.body)
	}
}

func (e *subEnv) enable(t *testing.T, cred, wf string, on bool) {
	t.Helper()
	if r := e.h.do(t, http.MethodPut, "/v1/projects/proj/users/u1/credentials/"+cred+"/workflows/"+wf, e.key,
		fmt.Sprintf(`{"enabled":%t}`, on)); r.status != 200 {
		t.Fatalf("enable %s: %d %s", wf, r.status, r.body)
	}
}

type credWithSubs struct {
	directory.Credential
	Subscriptions []lifecycle.SubscriptionStatus `json:"subscriptions"`
}

func (e *subEnv) view(t *testing.T, cred string) (int, credWithSubs) {
	t.Helper()
	r := e.h.do(t, http.MethodGet, "/v1/projects/proj/users/u1/credentials/"+cred, e.key, "")
	if r.status != 200 {
		return r.status, credWithSubs{}
	}
	return r.status, decode[credWithSubs](t, r.body)
}

func (e *subEnv) subsOf(key string) []fakeprovider.Subscription {
	var out []fakeprovider.Subscription
	for _, s := range e.fake.Subscriptions() {
		if s.Account == key {
			out = append(out, s)
		}
	}
	return out
}

// TestSubscriptions: the first workflow on a trigger creates the
// subscription at the provider (once), a second one on the same trigger
// creates none, another trigger its own; disabling the last one deletes
// it; the provider's signing secret is kept on the credential.
func TestSubscriptions(t *testing.T) {
	e := newSubEnv(t)
	const key = "sk_test_lifecycle"
	e.connect(t, "c1", key)
	e.enable(t, "c1", "w1", true)
	until(t, "one subscription", func() bool { return len(e.subsOf(key)) == 1 })
	sub := e.subsOf(key)[0]
	cr, _ := e.h.cred("u1", "c1")
	if want := e.h.srv.URL + "/v1/hooks/proj/stripe/" + cr.WebhookToken; sub.Target != want || strings.Join(sub.Events, ",") != "customer.created" {
		t.Fatalf("subscription %+v, want target %s", sub, want)
	}
	until(t, "active on the credential", func() bool {
		_, v := e.view(t, "c1")
		return len(v.Subscriptions) == 1 && v.Subscriptions[0].Status == lifecycle.SubActive && v.Subscriptions[0].ProviderID == sub.ID
	})
	// The SDK's view of the user shows it too.
	if r := e.h.do(t, http.MethodGet, "/projects/proj/sdk/me", e.token, ""); r.status != 200 ||
		!strings.Contains(string(r.body), `"subscriptions":[{"trigger":"customer.created","status":"active","providerId":"`+sub.ID+`"}]`) {
		t.Fatalf("sdk/me: %d %s", r.status, r.body)
	}
	// The endpoint's secret verifies its deliveries: it is on the
	// credential's sealed secret, next to the API key.
	sec := e.h.secret(t, "u1", "c1")
	if list, _ := sec["webhookSecrets"].([]any); len(list) != 1 || list[0].(map[string]any)["value"] != sub.Secret || sec["accessToken"] != key {
		t.Fatalf("secret %v", sec)
	}

	e.enable(t, "c1", "w2", true) // same trigger: no second create
	e.enable(t, "c1", "w3", true) // another trigger: its own
	until(t, "two subscriptions", func() bool { return len(e.subsOf(key)) == 2 })
	until(t, "both active", func() bool {
		_, v := e.view(t, "c1")
		return len(v.Subscriptions) == 2 && v.Subscriptions[0].Status == lifecycle.SubActive && v.Subscriptions[1].Status == lifecycle.SubActive
	})
	if c := e.fake.SubscriptionCalls(); c.Creates != 2 {
		t.Fatalf("creates %+v, want 2", c)
	}

	e.enable(t, "c1", "w1", false) // w2 still needs customer.created
	e.enable(t, "c1", "w3", false)
	until(t, "invoice.paid deleted", func() bool { return len(e.subsOf(key)) == 1 })
	if s := e.subsOf(key); s[0].Events[0] != "customer.created" {
		t.Fatalf("left %+v", s)
	}
	e.enable(t, "c1", "w2", false)
	until(t, "all deleted", func() bool { return len(e.subsOf(key)) == 0 })
	until(t, "none on the credential", func() bool {
		_, v := e.view(t, "c1")
		return len(v.Subscriptions) == 0
	})
	if c := e.fake.SubscriptionCalls(); c.Creates != 2 || c.Deletes != 2 {
		t.Fatalf("calls %+v", c)
	}
	if list, _ := e.h.secret(t, "u1", "c1")["webhookSecrets"].([]any); len(list) != 0 {
		t.Fatalf("secrets left %v", list)
	}
}

// TestSubscriptionCreateFails: a provider refusing the create (500 or
// 400) leaves the credential connected with the error on it; the create
// is retried with backoff and succeeds once the provider accepts it.
func TestSubscriptionCreateFails(t *testing.T) {
	e := newSubEnv(t)
	for i, status := range []int{500, 400} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			key, cred := fmt.Sprintf("sk_test_fail%d", i), fmt.Sprintf("f%d", i)
			e.connect(t, cred, key)
			e.fake.FailSubscriptions("create", status, 0)
			e.enable(t, cred, "w1", true)
			var failed lifecycle.SubscriptionStatus
			until(t, "the failure on the credential", func() bool {
				_, v := e.view(t, cred)
				if len(v.Subscriptions) == 1 && v.Subscriptions[0].Status == lifecycle.SubFailed && v.Subscriptions[0].Attempts >= 2 {
					failed = v.Subscriptions[0]
					return true
				}
				return false
			})
			if !strings.Contains(failed.Error, fmt.Sprint(status)) || failed.NextAttemptAt == nil {
				t.Fatalf("status %+v", failed)
			}
			if _, v := e.view(t, cred); v.Status != directory.CredentialValid {
				t.Fatalf("credential %s", v.Status)
			}
			e.fake.FailSubscriptions("create", 0, 0)
			until(t, "created after the provider recovers", func() bool {
				_, v := e.view(t, cred)
				return len(v.Subscriptions) == 1 && v.Subscriptions[0].Status == lifecycle.SubActive && v.Subscriptions[0].Error == ""
			})
			if n := len(e.subsOf(key)); n != 1 {
				t.Fatalf("%d subscriptions at the provider", n)
			}
		})
	}
}

// TestSubscriptionTeardown: removing the credential deletes it at once,
// even while the provider refuses the delete; the delete is retried in
// the background, and given up (recorded) after TeardownAttempts.
func TestSubscriptionTeardown(t *testing.T) {
	e := newSubEnv(t)
	t.Run("retried until the provider deletes it", func(t *testing.T) {
		const key = "sk_test_td1"
		e.connect(t, "d1", key)
		e.enable(t, "d1", "w1", true)
		until(t, "created", func() bool { return len(e.subsOf(key)) == 1 })
		e.fake.FailSubscriptions("delete", 503, 2)
		if r := e.h.do(t, http.MethodDelete, "/v1/projects/proj/users/u1/credentials/d1", e.key, ""); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		if status, _ := e.view(t, "d1"); status != 404 {
			t.Fatalf("credential still there: %d", status)
		}
		until(t, "deleted at the provider", func() bool { return len(e.subsOf(key)) == 0 })
		if c := e.fake.SubscriptionCalls(); c.FailedDeletes != 2 {
			t.Fatalf("calls %+v", c)
		}
	})
	t.Run("given up and recorded", func(t *testing.T) {
		const key = "sk_test_td2"
		e.connect(t, "d2", key)
		e.enable(t, "d2", "w1", true)
		until(t, "created", func() bool { return len(e.subsOf(key)) == 1 })
		before := e.fake.SubscriptionCalls().FailedDeletes
		e.fake.FailSubscriptions("delete", 500, 0)
		t.Cleanup(func() { e.fake.FailSubscriptions("delete", 0, 0) })
		if r := e.h.do(t, http.MethodDelete, "/v1/projects/proj/users/u1/credentials/d2", e.key, ""); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		var rec []lifecycle.SubscriptionStatus
		until(t, "the teardown given up", func() bool {
			rec = e.r1.SubscriptionStates(context.Background(), "proj", "u1", "d2")
			return len(rec) == 1 && rec[0].Status == lifecycle.SubAbandoned
		})
		if got := e.fake.SubscriptionCalls().FailedDeletes - before; got != 3 || !strings.Contains(rec[0].Error, "given up after 3") {
			t.Fatalf("%d deletes tried, record %+v", got, rec[0])
		}
	})
}

// TestSubscriptionReplicas: two replicas sharing the change stream create
// each credential's subscription once.
func TestSubscriptionReplicas(t *testing.T) {
	e := newSubEnv(t)
	e.replicaWith(t, "r2", nil, e.opts)
	const n = 20
	for i := range n {
		c := fmt.Sprintf("m%d", i)
		e.connect(t, c, "sk_test_many")
		e.enable(t, c, "w1", true)
	}
	until(t, "every subscription", func() bool { return len(e.subsOf("sk_test_many")) == n })
	until(t, "every one active", func() bool {
		for i := range n {
			if _, v := e.view(t, fmt.Sprintf("m%d", i)); len(v.Subscriptions) != 1 || v.Subscriptions[0].Status != lifecycle.SubActive {
				return false
			}
		}
		return true
	})
	if c := e.fake.SubscriptionCalls(); c.Creates != n {
		t.Fatalf("creates %+v, want %d", c, n)
	}
}

// TestSubscriptionCatalogChange: a workflow applied enabled by default
// subscribes the integration's existing credentials, without any change to
// them; deleting the workflow deletes their subscriptions.
func TestSubscriptionCatalogChange(t *testing.T) {
	e := newSubEnv(t)
	e.connect(t, "k1", "sk_test_cat1")
	e.connect(t, "k2", "sk_test_cat2")
	objs, err := workflow.Parse([]byte(`
kind: Workflow
id: w4
trigger: {type: integration, integration: stripe, event: invoice.paid}
steps: [{id: s, type: http, method: POST, url: "http://127.0.0.1:9/x"}]
`), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := e.cat.Apply(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cat.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	until(t, "both credentials subscribed", func() bool { return len(e.subsOf("sk_test_cat1")) == 1 && len(e.subsOf("sk_test_cat2")) == 1 })
	if s := e.subsOf("sk_test_cat1")[0]; s.Events[0] != "invoice.paid" {
		t.Fatalf("subscription %+v", s)
	}
	e.enable(t, "k2", "w4", false)
	until(t, "k2's deleted", func() bool { return len(e.subsOf("sk_test_cat2")) == 0 })
	rev, err = e.cat.DeleteWorkflow(t.Context(), "proj", "w4")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cat.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	until(t, "k1's deleted with the workflow", func() bool { return len(e.subsOf("sk_test_cat1")) == 0 })
	if c := e.fake.SubscriptionCalls(); c.Creates != 2 || c.Deletes != 2 {
		t.Fatalf("calls %+v", c)
	}
}

// TestRefreshKeepsWebhookSecrets: a token refresh replaces the token
// fields only; the webhook secrets on the credential's secret (a
// subscription's, a handshake's) stay.
func TestRefreshKeepsWebhookSecrets(t *testing.T) {
	o := newOAuthEnv(t, time.Hour)
	h := o.serveOAuth(t, "r1", nil)
	res, err := http.Get(h.srv.URL + "/v1/connect/proj/crm/start?credential=c1&token=" + url.QueryEscape(o.token))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	sec := h.secret(t, "u1", "c1")
	sec["webhookSecrets"] = []any{map[string]any{"id": "hook-secret", "value": "s3cret"}}
	if _, err := o.dir.SetSecret(t.Context(), "proj", "u1", "c1", sec); err != nil {
		t.Fatal(err)
	}
	if r := h.do(t, http.MethodPost, "/v1/projects/proj/users/u1/credentials/c1/refresh", o.key, ""); r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	after := h.secret(t, "u1", "c1")
	list, _ := after["webhookSecrets"].([]any)
	if after["accessToken"] == sec["accessToken"] || len(list) != 1 || list[0].(map[string]any)["value"] != "s3cret" {
		t.Fatalf("secret after the refresh %v", after)
	}
}

// TestSubscriptionWaitsForValid: a credential that is INVALID (its token
// refused) gets no subscription, nor loses one, until it is VALID again;
// a credential needing many subscriptions gets them all.
func TestSubscriptionWaitsForValid(t *testing.T) {
	e := newSubEnv(t)
	const key = "sk_test_invalid"
	if r := e.h.do(t, http.MethodPut, "/v1/projects/proj/users/u1/credentials/v1", e.key,
		`{"integration":"stripe","status":"INVALID","secret":{"accessToken":"`+key+`"}}`); r.status != 200 {
		t.Fatalf("connect: %d %s", r.status, r.body)
	}
	e.enable(t, "v1", "w1", true)
	e.enable(t, "v1", "w3", true)
	e.connect(t, "v2", "sk_test_other") // a later change of the same user, derived after those
	e.enable(t, "v2", "w1", true)
	until(t, "the other credential's subscription", func() bool { return len(e.subsOf("sk_test_other")) == 1 })
	if n := len(e.subsOf(key)); n != 0 {
		t.Fatalf("%d subscriptions for an INVALID credential", n)
	}
	if r := e.h.do(t, http.MethodPut, "/v1/projects/proj/users/u1/credentials/v1", e.key, `{"integration":"stripe","status":"VALID"}`); r.status != 200 {
		t.Fatalf("valid: %d %s", r.status, r.body)
	}
	e.enable(t, "v1", "w2", true)
	until(t, "both of v1's once VALID", func() bool { return len(e.subsOf(key)) == 2 })
	if c := e.fake.SubscriptionCalls(); c.Creates != 3 {
		t.Fatalf("creates %+v", c)
	}
}

// TestSubscriptionManyTriggers: more subscriptions due at once than one
// hold of the user's lock makes (maxCallsPerLock) are all created, each
// once.
func TestSubscriptionManyTriggers(t *testing.T) {
	e := newSubEnv(t)
	const key = "sk_test_many_triggers"
	e.connect(t, "t1", key)
	events := []string{"charge.refunded", "payment_intent.succeeded", "checkout.session.completed", "invoice.payment_failed", "customer.subscription.created"}
	docs := ""
	for i, ev := range events {
		docs += fmt.Sprintf("---\nkind: Workflow\nid: many%d\ntrigger: {type: integration, integration: stripe, event: %s}\nsteps: [{id: s, type: http, method: POST, url: \"http://127.0.0.1:9/x\"}]\n", i, ev)
	}
	objs, err := workflow.Parse([]byte(docs), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := e.cat.Apply(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cat.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	until(t, "one subscription per trigger", func() bool { return len(e.subsOf(key)) == len(events) })
	until(t, "all active", func() bool {
		_, v := e.view(t, "t1")
		for _, s := range v.Subscriptions {
			if s.Status != lifecycle.SubActive {
				return false
			}
		}
		return len(v.Subscriptions) == len(events)
	})
	if c := e.fake.SubscriptionCalls(); c.Creates != len(events) {
		t.Fatalf("creates %+v", c)
	}
}

// TestSubscriptionReplicaCrash kills a replica (closes its NATS
// connection) after the consumer stored what a change wants but before it
// queued the work, and while it holds a user's lock before calling the
// provider: the survivor creates the subscription, once.
func TestSubscriptionReplicaCrash(t *testing.T) {
	for _, stage := range []string{lifecycle.StageSubAfterState, lifecycle.StageSubLocked} {
		t.Run(stage, func(t *testing.T) {
			e := newSubEnv(t)
			short := func(opts *lifecycle.Options) {
				e.opts(opts)
				opts.Subscriptions.LockTTL = time.Second
				// Stripe's API never calls the callback: any base will do.
				opts.Subscriptions.HookBaseURL = "http://127.0.0.1:9"
			}
			killed := make(chan struct{})
			var once sync.Once
			e.replicaWith(t, "doomed", func(nc *nats.Conn, s string) error {
				if s != stage {
					return nil
				}
				once.Do(func() { nc.Close(); close(killed) })
				return errors.New("killed")
			}, short)
			// r1 (newSubEnv's) would do the work itself: stop it first.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.r1.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.dir.UpdateCredential(t.Context(), "proj", "u1", "x1", func(c *directory.Credential, _ bool) error {
				c.Integration, c.Secret, c.HasSecret, c.Workflows = "stripe", map[string]any{"accessToken": "sk_test_crash"}, true, map[string]bool{"w1": true}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-killed:
			case <-time.After(20 * time.Second):
				t.Fatal("the replica never reached " + stage)
			}
			e.replicaWith(t, "survivor", nil, short)
			until(t, "the subscription created by the survivor", func() bool { return len(e.subsOf("sk_test_crash")) == 1 })
			if c := e.fake.SubscriptionCalls(); c.Creates != 1 {
				t.Fatalf("creates %+v", c)
			}
		})
	}
}

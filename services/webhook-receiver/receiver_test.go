package receiver_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v82/webhook"
	svix "github.com/svix/svix-webhooks/go"
	"github.com/twilio/twilio-go/client"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

const (
	stripeSecret = "whsec_receiver_stripe_test"
	swSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	slackSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	twilioToken  = "12345"
	githubSecret = "gh-receiver-secret"
)

// TestSignedByProviderLibraries: deliveries signed by the providers' own
// libraries (stripe-go, standard-webhooks, svix) — or by our signer and
// accepted by theirs (slack-go, twilio-go, which have no signer) — are
// accepted and stored as one INTEGRATION trigger each, with the type, id
// and tenant the manifest reads.
func TestSignedByProviderLibraries(t *testing.T) {
	e := newEnv(t)
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	e.secrets("standard-webhooks", directory.WebhookSecret{Value: swSecret})
	e.secrets("svix", directory.WebhookSecret{Value: swSecret})
	e.secrets("slack", directory.WebhookSecret{Value: slackSecret})
	e.secrets("twilio", directory.WebhookSecret{Value: twilioToken})
	now := time.Now()
	sw, err := standardwebhooks.NewWebhook(swSecret)
	if err != nil {
		t.Fatal(err)
	}
	sx, err := svix.NewWebhook(swSecret)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name                 string
		req                  func(t *testing.T) *http.Request
		wantType, wantID     string
		wantAccount          string
		wantHashedID         bool
		wantBody, wantStatus string // manifest-defined answer
	}{
		{name: "stripe-go", wantType: "invoice.paid", wantID: "evt_stripe_1", wantAccount: "acct_42", req: func(t *testing.T) *http.Request {
			body := `{"id":"evt_stripe_1","object":"event","type":"invoice.paid","account":"acct_42","data":{"object":{"id":"in_1"}}}`
			sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: stripeSecret, Timestamp: now, Scheme: "v1"})
			return e.hook("POST", "stripe", "application/json", body, "Stripe-Signature", sp.Header)
		}},
		{name: "standard-webhooks", wantType: "user.created", wantID: "msg_sw_1", req: func(t *testing.T) *http.Request {
			body := `{"type":"user.created","data":{"id":"u_1"}}`
			sig, err := sw.Sign("msg_sw_1", now, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			return e.hook("POST", "standard-webhooks", "application/json", body,
				"webhook-id", "msg_sw_1", "webhook-timestamp", strconv.FormatInt(now.Unix(), 10), "webhook-signature", sig)
		}},
		{name: "svix", wantType: "invoice.created", wantID: "msg_svix_1", req: func(t *testing.T) *http.Request {
			body := `{"type":"invoice.created","data":{}}`
			sig, err := sx.Sign("msg_svix_1", now, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			return e.hook("POST", "svix", "application/json", body,
				"svix-id", "msg_svix_1", "svix-timestamp", strconv.FormatInt(now.Unix(), 10), "svix-signature", sig)
		}},
		{name: "slack (slack-go verifies our signature)", wantType: "app_mention", wantID: "Ev_slack_1", wantAccount: "T0001", req: func(t *testing.T) *http.Request {
			body := `{"type":"event_callback","team_id":"T0001","event_id":"Ev_slack_1","event":{"type":"app_mention","text":"hi"}}`
			r := e.sign(e.hook("POST", "slack", "application/json", body), "slack", slackSecret, now)
			sv, err := slack.NewSecretsVerifier(r.Header, slackSecret)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = sv.Write([]byte(body))
			if err := sv.Ensure(); err != nil {
				t.Fatalf("slack-go refuses the delivery: %v", err)
			}
			return r
		}},
		{name: "twilio (twilio-go validates our signature)", wantType: "message.received", wantAccount: "AC123", wantHashedID: true,
			wantStatus: "200", wantBody: "<Response/>", req: func(t *testing.T) *http.Request {
				form := url.Values{"AccountSid": {"AC123"}, "SmsStatus": {"received"}, "Body": {"hello"}, "From": {"+15550001"}}
				r := e.sign(e.hook("POST", "twilio", "application/x-www-form-urlencoded", form.Encode()), "twilio", twilioToken, now)
				params := map[string]string{}
				for k := range form {
					params[k] = form.Get(k)
				}
				rv := client.NewRequestValidator(twilioToken)
				if !rv.Validate(r.URL.String(), params, r.Header.Get("X-Twilio-Signature")) {
					t.Fatal("twilio-go refuses the delivery")
				}
				return r
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.stored())
			res := e.do(tt.req(t))
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			if tt.wantBody != "" {
				if res.body != tt.wantBody {
					t.Fatalf("answer %q, want the manifest's %q", res.body, tt.wantBody)
				}
			} else if a := answer(t, res); a.Status != receiver.StatusAccepted || len(a.Events) != 1 {
				t.Fatalf("answer %+v", a)
			}
			evs := e.stored()
			if len(evs) != before+1 {
				t.Fatalf("%d events stored, want %d", len(evs), before+1)
			}
			ev := evs[len(evs)-1]
			pe := ev.GetProvider()
			if ev.Name != tt.wantType || pe.GetEventType() != tt.wantType || pe.GetProviderAccountId() != tt.wantAccount || pe.GetSource() != "webhook" {
				t.Fatalf("stored %s %+v", ev.Name, pe)
			}
			if tt.wantHashedID != strings.HasPrefix(pe.GetEventId(), "sha256:") || (!tt.wantHashedID && pe.GetEventId() != tt.wantID) {
				t.Fatalf("event id %q, want %q (hashed %v)", pe.GetEventId(), tt.wantID, tt.wantHashedID)
			}
		})
	}
}

// TestBadInput: the list of hostile and broken deliveries. None is
// answered 500 (env.do fails the test on any 5xx but a deliberate 503), and
// nothing that was verified is lost: every accepted item is in TRIGGERS.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	e.secrets("github", directory.WebhookSecret{Value: githubSecret})
	e.secrets("hubspot", directory.WebhookSecret{Value: "hubspot-client-secret"})
	now := time.Now()
	stripeReq := func(body string, at time.Time, secret string) *http.Request {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: secret, Timestamp: at, Scheme: "v1"})
		return e.hook("POST", "stripe", "application/json", body, "Stripe-Signature", sp.Header)
	}
	evt := func(id string) string { return `{"id":"` + id + `","type":"customer.created","data":{"object":{}}}` }
	offCredential := e.credential("u-off", "c-off", "stripe", "", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })

	tests := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
		wantCode   string // error code, or the answer's status
		stored     int    // events this delivery adds
	}{
		{"accepted", func() *http.Request { return stripeReq(evt("evt_ok"), now, stripeSecret) }, 200, receiver.StatusAccepted, 1},
		{"bad signature", func() *http.Request { return stripeReq(evt("evt_bad"), now, "whsec_wrong") }, 401, "bad_signature", 0},
		{"expired timestamp", func() *http.Request { return stripeReq(evt("evt_old"), now.Add(-10*time.Minute), stripeSecret) }, 401, "timestamp_out_of_range", 0},
		{"future timestamp", func() *http.Request { return stripeReq(evt("evt_future"), now.Add(10*time.Minute), stripeSecret) }, 401, "timestamp_out_of_range", 0},
		{"replay is deduplicated", func() *http.Request { return stripeReq(evt("evt_ok"), now, stripeSecret) }, 200, receiver.StatusDeduplicated, 0},
		{"replay re-signed later is still the same event", func() *http.Request { return stripeReq(evt("evt_ok"), now.Add(time.Second), stripeSecret) }, 200, receiver.StatusDeduplicated, 0},
		{"missing signature header", func() *http.Request { return e.hook("POST", "stripe", "application/json", evt("evt_unsigned")) }, 401, "missing_signature", 0},
		{"signature over re-serialized JSON", func() *http.Request {
			signed := `{"id":"evt_reser","type":"customer.created"}`
			sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(signed), Secret: stripeSecret, Timestamp: now, Scheme: "v1"})
			return e.hook("POST", "stripe", "application/json", `{"type": "customer.created", "id": "evt_reser"}`, "Stripe-Signature", sp.Header)
		}, 401, "bad_signature", 0},
		{"body over the cap", func() *http.Request {
			return stripeReq(`{"id":"evt_big","pad":"`+strings.Repeat("x", maxBody)+`"}`, now, stripeSecret)
		}, 413, "payload_too_large", 0},
		{"chunked body over the cap", func() *http.Request {
			r := stripeReq(`{"id":"evt_big2","pad":"`+strings.Repeat("x", maxBody)+`"}`, now, stripeSecret)
			r.ContentLength = -1 // no Content-Length: sent chunked
			r.Body = io.NopCloser(struct{ io.Reader }{r.Body})
			return r
		}, 413, "payload_too_large", 0},
		{"unknown integration", func() *http.Request { return e.hook("POST", "nope", "application/json", "{}") }, 404, "unknown_integration", 0},
		{"unknown project", func() *http.Request {
			r := e.hook("POST", "stripe", "application/json", "{}")
			r.URL.Path = "/v1/hooks/ghost/stripe"
			return r
		}, 404, "unknown_integration", 0},
		{"unknown token", func() *http.Request { return e.hook("POST", "stripe/AAAAAAAAAAAAAAAAAAAAAA", "application/json", "{}") }, 404, "webhook_not_found", 0},
		{"disabled credential's token", func() *http.Request {
			return e.hook("POST", "stripe/"+offCredential.WebhookToken, "application/json", "{}")
		}, 404, "webhook_not_found", 0},
		{"token of another integration", func() *http.Request {
			return e.hook("POST", "github/"+offCredential.WebhookToken, "application/json", "{}")
		}, 404, "webhook_not_found", 0},
		{"handshake on a source without one", func() *http.Request {
			return e.hook("POST", "stripe", "application/json", `{"type":"url_verification","challenge":"c123"}`)
		}, 401, "missing_signature", 0},
		{"method not allowed", func() *http.Request { return e.hook("GET", "stripe", "", "") }, 405, "method_not_allowed", 0},
		{"deeply nested JSON", func() *http.Request {
			return stripeReq(strings.Repeat("[", 20000)+strings.Repeat("]", 20000), now, stripeSecret)
		}, 200, receiver.StatusAccepted, 1},
		{"huge flat JSON under the cap", func() *http.Request {
			items := make([]string, 3000)
			for i := range items {
				items[i] = fmt.Sprintf(`{"k%d":%d}`, i, i)
			}
			return stripeReq(`{"id":"evt_huge","type":"customer.updated","data":[`+strings.Join(items, ",")+`]}`, now, stripeSecret)
		}, 200, receiver.StatusAccepted, 1},
		{"batch with one bad item: every item kept", func() *http.Request {
			body := `[{"eventId":1,"subscriptionType":"contact.creation","portalId":62515},"garbage",{"eventId":3,"subscriptionType":"deal.creation","portalId":62515}]`
			return e.sign(e.hook("POST", "hubspot", "application/json", body), "hubspot-v3", "hubspot-client-secret", now)
		}, 200, receiver.StatusAccepted, 3},
		{"no secret configured: fail closed", func() *http.Request {
			return e.sign(e.hook("POST", "zoom", "application/json", `{"event":"meeting.started"}`), "zoom", "zoom-secret", now)
		}, 503, "no_secret", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.stored())
			res := e.do(tt.req())
			if res.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if tt.wantStatus == 200 {
				if a := answer(t, res); a.Status != tt.wantCode {
					t.Fatalf("answer %+v, want %s", a, tt.wantCode)
				}
			} else if code := errCode(res); code != tt.wantCode {
				t.Fatalf("code %q, want %q: %s", code, tt.wantCode, res.body)
			}
			if n := len(e.stored()) - before; n != tt.stored {
				t.Fatalf("%d events stored, want %d", n, tt.stored)
			}
		})
	}
}

// TestHeaderSpoofedEventType: GitHub signs only the body, so the manifest
// reads the event type from the payload; an X-GitHub-Event header that
// claims another type changes nothing. (A manifest that reads the header
// is refused at apply: pkg/manifest TestParseRefusesUnsignedRouting.)
func TestHeaderSpoofedEventType(t *testing.T) {
	e := newEnv(t)
	e.secrets("github", directory.WebhookSecret{Value: githubSecret})
	body := `{"ref":"refs/heads/main","pusher":{"name":"octo"},"repository":{"owner":{"id":99}}}`
	r := e.sign(e.hook("POST", "github", "application/json", body, "X-GitHub-Event", "issues"), "github", githubSecret, time.Now())
	if res := e.do(r); res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	evs := e.stored()
	if len(evs) != 1 || evs[0].Name != "push" || evs[0].GetProvider().GetProviderAccountId() != "99" {
		t.Fatalf("stored %+v", evs)
	}
	r = e.sign(e.hook("POST", "github", "application/json", body, "X-GitHub-Event", "push"), "github", githubSecret, time.Now())
	if a := answer(t, e.do(r)); a.Status != receiver.StatusDeduplicated {
		t.Fatalf("the same body with another header is a new event: %+v", a)
	}
}

// TestRotation: two secrets active during a roll; the old one is accepted
// until its expiresAt, refused from then on.
func TestRotation(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	deliver := func(id, secret string) response {
		body := `{"id":"` + id + `","type":"customer.created"}`
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: secret, Timestamp: now, Scheme: "v1"})
		return e.do(e.hook("POST", "stripe", "application/json", body, "Stripe-Signature", sp.Header))
	}
	e.secrets("stripe", directory.WebhookSecret{Value: "whsec_new"}, directory.WebhookSecret{Value: "whsec_old", ExpiresAt: now.Add(time.Hour)})
	if r := deliver("evt_r1", "whsec_old"); r.status != 200 {
		t.Fatalf("old secret inside the grace window: %d %s", r.status, r.body)
	}
	if r := deliver("evt_r2", "whsec_new"); r.status != 200 {
		t.Fatalf("new secret: %d %s", r.status, r.body)
	}
	e.secrets("stripe", directory.WebhookSecret{Value: "whsec_new"}, directory.WebhookSecret{Value: "whsec_old", ExpiresAt: now.Add(-time.Second)})
	if r := deliver("evt_r3", "whsec_old"); r.status != 401 || errCode(r) != "bad_signature" {
		t.Fatalf("old secret after the grace window: %d %s", r.status, r.body)
	}
	if r := deliver("evt_r4", "whsec_new"); r.status != 200 {
		t.Fatalf("new secret after the roll: %d %s", r.status, r.body)
	}
}

// TestTokenNotFoundTiming: an unknown token and a disabled credential's
// token get the same 404, neither sooner than the not-found floor, so the
// answer's timing does not tell a guesser which tokens exist.
func TestTokenNotFoundTiming(t *testing.T) {
	e := newEnv(t)
	off := e.credential("u", "c", "stripe", "", func(cr *directory.Credential) { cr.Status = directory.CredentialInvalid })
	for _, tok := range []string{"AAAAAAAAAAAAAAAAAAAAAA", off.WebhookToken, "short"} {
		start := time.Now()
		r := e.do(e.hook("POST", "stripe/"+tok, "application/json", "{}"))
		took := time.Since(start)
		if r.status != 404 || errCode(r) != "webhook_not_found" {
			t.Fatalf("token %q: %d %s", tok, r.status, r.body)
		}
		if took < receiver.DefaultNotFoundFloor {
			t.Fatalf("token %q answered after %s, before the %s floor", tok, took, receiver.DefaultNotFoundFloor)
		}
	}
}

// TestHandshakes: Slack url_verification (signed), Microsoft Graph's
// validationToken and Asana's X-Hook-Secret (stored on the credential, then
// used to verify its deliveries; a second one refused) are answered, and
// none of them stores an event.
func TestHandshakes(t *testing.T) {
	e := newEnv(t)
	e.secrets("slack", directory.WebhookSecret{Value: slackSecret})
	e.secrets("microsoft-graph", directory.WebhookSecret{Value: "client-state-1"})
	now := time.Now()

	r := e.do(e.sign(e.hook("POST", "slack", "application/json", `{"token":"x","challenge":"ch4ll3nge","type":"url_verification"}`), "slack", slackSecret, now))
	if r.status != 200 || r.body != "ch4ll3nge" {
		t.Fatalf("slack url_verification: %d %q", r.status, r.body)
	}
	r = e.do(e.hook("POST", "slack", "application/json", `{"token":"x","challenge":"ch4ll3nge","type":"url_verification"}`))
	if r.status != 401 {
		t.Fatalf("unsigned slack url_verification: %d %q", r.status, r.body)
	}
	r = e.do(e.hook("POST", "microsoft-graph?validationToken=tok%20123", "text/plain", ""))
	if r.status != 200 || r.body != "tok 123" {
		t.Fatalf("graph validation: %d %q", r.status, r.body)
	}

	cr := e.credential("u-asana", "a1", "asana", "", nil)
	path := "asana/" + cr.WebhookToken
	r = e.do(e.hook("POST", path, "application/json", "", "X-Hook-Secret", "asana-hook-secret"))
	if r.status != 200 || r.header.Get("X-Hook-Secret") != "asana-hook-secret" {
		t.Fatalf("asana handshake: %d %v %q", r.status, r.header, r.body)
	}
	body := `{"events":[{"action":"added","resource":{"gid":"1","resource_type":"task"}}]}`
	r = e.do(e.sign(e.hook("POST", path, "application/json", body), "asana", "asana-hook-secret", now))
	if r.status != 200 {
		t.Fatalf("asana delivery with the stored secret: %d %s", r.status, r.body)
	}
	evs := e.stored()
	if len(evs) != 1 || evs[0].Name != "task.added" || evs[0].User != "u-asana" || evs[0].Credential != "a1" {
		t.Fatalf("stored %+v", evs)
	}
	r = e.do(e.hook("POST", path, "application/json", "", "X-Hook-Secret", "attacker-secret"))
	if r.status != 409 || errCode(r) != "hook_secret_already_set" {
		t.Fatalf("second asana handshake: %d %s", r.status, r.body)
	}
	r = e.do(e.hook("POST", "asana", "application/json", "", "X-Hook-Secret", "s"))
	if r.status != 400 {
		t.Fatalf("asana handshake on the app-level URL: %d %s", r.status, r.body)
	}
}

// TestBatchSplitAndDedupe: a HubSpot batch becomes one trigger per event;
// sent again (a provider retry) it is answered "deduplicated" and adds
// nothing; a per-credential delivery carries the credential.
func TestBatchSplitAndDedupe(t *testing.T) {
	e := newEnv(t)
	e.secrets("hubspot", directory.WebhookSecret{Value: "hs-secret"})
	body := `[{"eventId":11,"subscriptionType":"contact.creation","portalId":62515,"objectId":1},` +
		`{"eventId":12,"subscriptionType":"contact.creation","portalId":62515,"objectId":2}]`
	send := func(path string) receiver.Answer {
		r := e.do(e.sign(e.hook("POST", path, "application/json", body), "hubspot-v3", "hs-secret", time.Now()))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return answer(t, r)
	}
	if a := send("hubspot"); a.Status != receiver.StatusAccepted || len(a.Events) != 2 {
		t.Fatalf("first: %+v", a)
	}
	if a := send("hubspot"); a.Status != receiver.StatusDeduplicated || a.Duplicates != 2 {
		t.Fatalf("retry: %+v", a)
	}
	cr := e.credential("u-hs", "h1", "hubspot", "62515", nil)
	// The same payload on a credential's own URL is that credential's event.
	if a := send("hubspot/" + cr.WebhookToken); a.Status != receiver.StatusAccepted {
		t.Fatalf("per-credential: %+v", a)
	}
	evs := e.stored()
	if len(evs) != 4 {
		t.Fatalf("%d stored, want 4", len(evs))
	}
	for i, ev := range evs {
		if ev.GetProvider().GetProviderAccountId() != "62515" || ev.Name != "contact.creation" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if evs[2].User != "u-hs" || evs[2].Credential != "h1" || evs[0].User != "" {
		t.Fatalf("credentials: %q/%q and %q", evs[2].User, evs[2].Credential, evs[0].User)
	}
	// A batch's events are stored concurrently: in either order.
	if ids := evs[0].GetProvider().GetEventId() + "," + evs[1].GetProvider().GetEventId(); ids != "11,12" && ids != "12,11" {
		t.Fatalf("event ids %s", ids)
	}
}

// TestSecretsAPI: only an API key sets secrets, never for an unknown
// integration, and the answer shows ids and expiry, never values.
func TestSecretsAPI(t *testing.T) {
	e := newEnv(t)
	put := func(auth, integration, body string) response {
		r, _ := http.NewRequest(http.MethodPut, e.base+"/v1/projects/"+project+"/integrations/"+integration+"/webhook-secrets", strings.NewReader(body))
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		r.Header.Set("Content-Type", "application/json")
		return e.do(r)
	}
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name, auth, integration, body string
		status                        int
	}{
		{"no auth", "", "stripe", `{"secrets":[{"value":"a"}]}`, 401},
		{"wrong key", "sk_wrong", "stripe", `{"secrets":[{"value":"a"}]}`, 401},
		{"unknown integration", apiKey, "nope", `{"secrets":[{"value":"a"}]}`, 404},
		{"missing secrets", apiKey, "stripe", `{}`, 400},
		{"empty value", apiKey, "stripe", `{"secrets":[{"value":""}]}`, 400},
		{"unknown field", apiKey, "stripe", `{"secrets":[{"value":"a","expires":"x"}]}`, 400},
		{"ok", apiKey, "stripe", `{"secrets":[{"value":"whsec_one"},{"id":"old","value":"whsec_two","expiresAt":"` + exp + `"}]}`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := put(tt.auth, tt.integration, tt.body)
			if r.status != tt.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if strings.Contains(r.body, "whsec_") {
				t.Fatalf("answer shows a secret: %s", r.body)
			}
		})
	}
	got, err := e.dir.WebhookSecrets(e.ctx, project, "stripe")
	if err != nil || len(got) != 2 || got[1].ID != "old" || got[1].ExpiresAt.IsZero() {
		t.Fatalf("stored %+v %v", got, err)
	}
}

// TestProjectManifest: a project's own Integration document — a generic
// HMAC with a signed event-type header — is a webhook source like a
// built-in, and one with a built-in's id extends it (here: answers 204).
func TestProjectManifest(t *testing.T) {
	e := newEnv(t)
	e.apply(`kind: Integration
id: acme-crm
webhook:
  verification:
    scheme: hmac
    header: X-Acme-Signature
    content: "{header:X-Acme-Event}.{body}"
  eventType: 'headers["x-acme-event"]'
  eventId: body.id
  accountId: body.tenant
---
kind: Integration
id: stripe
webhook:
  response: {status: 204}
`)
	e.secrets("acme-crm", directory.WebhookSecret{Value: "acme-secret"})
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	body := `{"id":"a-1","tenant":"t-9"}`
	mac := hmacHex("acme-secret", "lead.created."+body)
	r := e.do(e.hook("POST", "acme-crm", "application/json", body, "X-Acme-Event", "lead.created", "X-Acme-Signature", mac))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r = e.do(e.hook("POST", "acme-crm", "application/json", body, "X-Acme-Event", "lead.deleted", "X-Acme-Signature", mac))
	if r.status != 401 {
		t.Fatalf("a changed signed header must fail: %d %s", r.status, r.body)
	}
	evs := e.stored()
	if len(evs) != 1 || evs[0].Name != "lead.created" || evs[0].GetProvider().GetProviderAccountId() != "t-9" {
		t.Fatalf("stored %+v", evs)
	}
	sbody := `{"id":"evt_p","type":"customer.created"}`
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(sbody), Secret: stripeSecret, Timestamp: time.Now(), Scheme: "v1"})
	if r := e.do(e.hook("POST", "stripe", "application/json", sbody, "Stripe-Signature", sp.Header)); r.status != 204 {
		t.Fatalf("extended stripe: %d %s", r.status, r.body)
	}
	_ = manifest.UnknownEvent
}

// TestWebhookURL: a credential's own URL is handed out (API key), and a
// delivery to it runs as that credential.
func TestWebhookURL(t *testing.T) {
	e := newEnv(t)
	e.apply(`kind: Integration
id: custom-hook
webhook:
  verification: {preset: bearer}
  eventType: body.type
`)
	cr := e.credential("u-c", "c1", "custom-hook", "", func(cr *directory.Credential) {
		cr.Secret = map[string]any{receiver.CredentialSecretKey: "per-user-token"}
	})
	get := func(auth, path string) response {
		r, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		return e.do(r)
	}
	r := get(apiKey, "/v1/projects/"+project+"/users/u-c/credentials/c1/webhook-url")
	if r.status != 200 || !strings.Contains(r.body, `"url":"`+e.base+`/v1/hooks/acme/custom-hook/`+cr.WebhookToken+`"}`) {
		t.Fatalf("webhook-url: %d %s", r.status, r.body)
	}
	if r := get("", "/v1/projects/"+project+"/users/u-c/credentials/c1/webhook-url"); r.status != 401 {
		t.Fatalf("without auth: %d", r.status)
	}
	if r := get(apiKey, "/v1/projects/"+project+"/users/u-c/credentials/nope/webhook-url"); r.status != 404 {
		t.Fatalf("unknown credential: %d", r.status)
	}
	// A manual user-level custom webhook: the user's own bearer token on
	// the user's own URL.
	path := "custom-hook/" + cr.WebhookToken
	if r := e.do(e.hook("POST", path, "application/json", `{"type":"ping"}`, "Authorization", "Bearer wrong")); r.status != 401 {
		t.Fatalf("wrong token: %d %s", r.status, r.body)
	}
	if r := e.do(e.hook("POST", path, "application/json", `{"type":"ping"}`, "Authorization", "Bearer per-user-token")); r.status != 200 {
		t.Fatalf("right token: %d %s", r.status, r.body)
	}
	evs := e.stored()
	if len(evs) != 1 || evs[0].User != "u-c" || evs[0].Credential != "c1" || evs[0].Name != "ping" {
		t.Fatalf("stored %+v", evs)
	}
}

// TestLargeBatch: a 200-event batch is stored whole (concurrently), and its
// retry is deduplicated item by item.
func TestLargeBatch(t *testing.T) {
	e := newEnv(t)
	e.secrets("hubspot", directory.WebhookSecret{Value: "hs-secret"})
	items := make([]string, 200)
	for i := range items {
		items[i] = fmt.Sprintf(`{"eventId":%d,"subscriptionType":"contact.creation","portalId":1,"objectId":%d}`, 5000+i, i)
	}
	body := "[" + strings.Join(items, ",") + "]"
	send := func() receiver.Answer {
		r := e.do(e.sign(e.hook("POST", "hubspot", "application/json", body), "hubspot-v3", "hs-secret", time.Now()))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return answer(t, r)
	}
	if a := send(); a.Status != receiver.StatusAccepted || len(a.Events) != 200 || a.Duplicates != 0 {
		t.Fatalf("first: %s, %d events, %d duplicates", a.Status, len(a.Events), a.Duplicates)
	}
	if a := send(); a.Status != receiver.StatusDeduplicated || a.Duplicates != 200 {
		t.Fatalf("retry: %s, %d duplicates", a.Status, a.Duplicates)
	}
	seen := map[string]bool{}
	for _, ev := range e.stored() {
		seen[ev.GetProvider().GetEventId()] = true
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct events stored, want 200", len(seen))
	}
}

// TestEventTooLargeForTheBus: a verified delivery under the body cap whose
// event cannot fit a JetStream message is 413, not a 503 the provider would
// retry for days; nothing is stored and its retry gets the same answer.
func TestEventTooLargeForTheBus(t *testing.T) {
	e := newEnvWith(t, nil, 4<<20)
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	body := `{"id":"evt_huge_bus","type":"customer.created","pad":"` + strings.Repeat("x", 1200<<10) + `"}`
	for range 2 {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: stripeSecret, Timestamp: time.Now(), Scheme: "v1"})
		r := e.do(e.hook("POST", "stripe", "application/json", body, "Stripe-Signature", sp.Header))
		if r.status != http.StatusRequestEntityTooLarge || errCode(r) != "event_too_large" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if n := len(e.stored()); n != 0 {
		t.Fatalf("%d stored", n)
	}
}

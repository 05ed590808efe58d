package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/verify"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

func webhookDocs(listener string) string {
	return fmt.Sprintf(`kind: Workflow
id: hubspot-new-contact
trigger: {type: integration, integration: hubspot, event: contact.creation, filter: 'trigger.payload.objectId > 0'}
steps:
  - id: notify
    type: http
    method: POST
    url: %[1]s/hubspot
    auth: credential
    json: {objectId: "{{ trigger.payload.objectId }}", user: "{{ user.id }}", portal: "{{ credential.providerAccountId }}", event: "{{ trigger.id }}"}
---
kind: Workflow
id: stripe-paid
trigger: {type: integration, integration: stripe, event: invoice.paid}
steps:
  - {id: notify, type: http, method: POST, url: '%[1]s/stripe', json: {invoice: "{{ trigger.payload.data.object.id }}"}}
`, listener)
}

// signHubSpot signs body like HubSpot (signature v3: method, URL, body,
// timestamp) for the receiver at url.
func signHubSpot(t *testing.T, url, body, secret string) []string {
	t.Helper()
	s, err := verify.NewSigner(verify.Spec{Preset: "hubspot-v3"}, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Request{Method: http.MethodPost, URL: url, Header: http.Header{}, Body: []byte(body)}
	if err := s.Sign(&r, verify.Secret{Value: secret}, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := []string{"Content-Type", "application/json"}
	for k := range r.Header {
		out = append(out, k, r.Header.Get(k))
	}
	return out
}

// TestWebhooks is the webhook walk-through end to end on a dev system: a
// HubSpot batch signed like HubSpot reaches the app-level URL, is verified,
// split, and runs the workflow once for each of the two users connected to
// that HubSpot portal (and not for a user of another portal); sent again it
// is deduplicated; unsigned it is refused; Slack's url_verification is
// answered; a Stripe-signed event (stripe-go) for an account nobody
// connected is answered 200 and recorded as no_credential_for_account.
func TestWebhooks(t *testing.T) {
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, webhookDocs(l.URL))
	for _, c := range []struct{ user, portal string }{{"alice", "62515"}, {"bob", "62515"}, {"carol", "99999"}} {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/"+c.user+"/credentials/hs", key,
			map[string]any{"integration": "hubspot", "providerAccountId": c.portal, "secret": map[string]any{"accessToken": "tok-" + c.user}})
	}
	for integration, secret := range map[string]string{"hubspot": "hubspot-app-secret", "stripe": "whsec_e2e", "slack": "slack-signing-secret"} {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/integrations/"+integration+"/webhook-secrets", key,
			map[string]any{"secrets": []map[string]any{{"value": secret}}})
	}

	const path = "/v1/hooks/dev/hubspot"
	body := `[{"eventId":1001,"subscriptionType":"contact.creation","portalId":62515,"objectId":501,"occurredAt":1700000000000},` +
		`{"eventId":1002,"subscriptionType":"contact.creation","portalId":62515,"objectId":0,"occurredAt":1700000000001}]`
	var events []string
	t.Run("signed batch runs for every credential of the portal", func(t *testing.T) {
		r := a.call(t, "POST", path, "", body, signHubSpot(t, a.base+path, body, "hubspot-app-secret")...)
		if r.Status != http.StatusOK {
			t.Fatalf("delivery: %s", r)
		}
		var ans struct {
			Status string   `json:"status"`
			Events []string `json:"events"`
		}
		r.decode(t, &ans)
		if ans.Status != "accepted" || len(ans.Events) != 2 {
			t.Fatalf("answer %s", r)
		}
		events = ans.Events
		got := l.waitFor(t, "portal", "62515", 2)
		var who []string
		for _, g := range got {
			who = append(who, fmt.Sprint(g.Body["user"], "@", g.Body["portal"], " ", g.Auth))
		}
		sort.Strings(who)
		if strings.Join(who, ", ") != "alice@62515 Bearer tok-alice, bob@62515 Bearer tok-bob" {
			t.Fatalf("runs for %v", who)
		}
		d := getDecision(t, a, key, events[0])
		var ran []string
		for _, c := range d.Candidates {
			if c.Outcome == runs.OutcomeRan {
				ran = append(ran, c.User)
				if run := waitRun(t, a, key, c.RunID); run.Status != runs.StatusSucceeded {
					t.Fatalf("run %s: %s", c.RunID, run.Status)
				}
			}
		}
		if strings.Join(ran, ",") != "alice,bob" {
			t.Fatalf("decision %+v", d.Candidates)
		}
		// The second item (objectId 0) is stopped by the trigger filter,
		// and the record says so for each credential.
		d2 := getDecision(t, a, key, events[1])
		for _, c := range d2.Candidates {
			if c.Outcome != runs.OutcomeSkipped || c.Reason != "filter" {
				t.Fatalf("second item: %+v", d2.Candidates)
			}
		}
	})
	t.Run("the provider's retry is deduplicated", func(t *testing.T) {
		r := a.call(t, "POST", path, "", body, signHubSpot(t, a.base+path, body, "hubspot-app-secret")...)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"status":"deduplicated"`) {
			t.Fatalf("retry: %s", r)
		}
		if !strings.Contains(string(r.Body), events[0]) {
			t.Fatalf("the retry does not name the first delivery's events: %s", r)
		}
	})
	t.Run("unsigned is refused", func(t *testing.T) {
		r := a.call(t, "POST", path, "", body, "Content-Type", "application/json")
		expectError(t, r, http.StatusUnauthorized, "missing_signature")
	})
	t.Run("slack url_verification", func(t *testing.T) {
		s, _ := verify.NewSigner(verify.Spec{Preset: "slack"}, verify.Options{})
		b := `{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
		vr := verify.Request{Method: "POST", URL: a.base + "/v1/hooks/dev/slack", Header: http.Header{}, Body: []byte(b)}
		if err := s.Sign(&vr, verify.Secret{Value: "slack-signing-secret"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		r := a.call(t, "POST", "/v1/hooks/dev/slack", "", b, "Content-Type", "application/json",
			"X-Slack-Signature", vr.Header.Get("X-Slack-Signature"), "X-Slack-Request-Timestamp", vr.Header.Get("X-Slack-Request-Timestamp"))
		if r.Status != http.StatusOK || string(r.Body) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
			t.Fatalf("url_verification: %s", r)
		}
	})
	t.Run("unknown account is recorded and answered 200", func(t *testing.T) {
		b := `{"id":"evt_e2e_1","object":"event","type":"invoice.paid","account":"acct_nobody","data":{"object":{"id":"in_1"}}}`
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(b), Secret: "whsec_e2e", Timestamp: time.Now(), Scheme: "v1"})
		r := a.call(t, "POST", "/v1/hooks/dev/stripe", "", b, "Content-Type", "application/json", "Stripe-Signature", sp.Header)
		if r.Status != http.StatusOK {
			t.Fatalf("stripe: %s", r)
		}
		var ans struct{ Events []string }
		r.decode(t, &ans)
		d := getDecision(t, a, key, ans.Events[0])
		if len(d.Candidates) != 1 || d.Candidates[0].Reason != "no_credential_for_account" || !strings.Contains(d.Candidates[0].Message, "acct_nobody") {
			t.Fatalf("decision %+v", d.Candidates)
		}
	})
}

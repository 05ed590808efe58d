package manifest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

func TestParseRefusesUnsignedRouting(t *testing.T) {
	tests := []struct {
		name, doc string
		wantErr   string // "" = valid
	}{
		{"github event type from header", `{id: gh, webhook: {verification: {preset: github}, eventType: 'headers["x-github-event"]'}}`, "x-github-event"},
		{"github tenant from header", `{id: gh, webhook: {verification: {preset: github}, eventType: body.action, accountId: 'headers["x-account"]'}}`, "x-account"},
		{"shopify topic from header", `{id: s, webhook: {verification: {preset: shopify}, eventType: 'headers["X-Shopify-Topic"]'}}`, "X-Shopify-Topic"},
		{"query on a body-only source", `{id: s, webhook: {verification: {preset: stripe}, eventType: query.type}}`, "query"},
		{"whole headers map", `{id: s, webhook: {verification: {preset: stripe}, eventType: 'string(headers)'}}`, "as a whole"},
		{"dynamic header name", `{id: s, webhook: {verification: {preset: stripe}, eventType: 'headers[body.h]'}}`, "as a whole"},
		{"signed header (standard webhooks)", `{id: s, webhook: {verification: {preset: standard-webhooks}, eventType: body.type, eventId: 'headers["webhook-id"]'}}`, ""},
		{"svix alternatives", `{id: s, webhook: {verification: {preset: svix}, eventType: body.type, eventId: 'headers["webhook-id"]'}}`, ""},
		{"token scheme signs nothing: headers as trusted as body", `{id: s, webhook: {verification: {preset: gitlab}, eventType: 'headers["x-gitlab-event"]'}}`, ""},
		{"query on a URL-signing source", `{id: s, webhook: {verification: {preset: twilio}, eventType: query.kind}}`, ""},
		{"no verification", `{id: s, webhook: {eventType: body.type}}`, "never accepted unverified"},
		{"unknown preset", `{id: s, webhook: {verification: {preset: nope}, eventType: body.type}}`, "webhook.verification"},
		{"bad expression", `{id: s, webhook: {verification: {preset: stripe}, eventType: 'body.('}}`, "webhook.eventType"},
		{"unknown variable", `{id: s, webhook: {verification: {preset: stripe}, eventType: secrets.x}}`, "webhook.eventType"},
		{"event type required", `{id: s, webhook: {verification: {preset: stripe}}}`, "webhook.eventType: is required"},
		{"unknown field", `{id: s, webhook: {verification: {preset: stripe}, eventType: body.type, evenType: x}}`, "unknown field"},
		{"non-2xx response", `{id: s, webhook: {verification: {preset: stripe}, eventType: body.type, response: {status: 302}}}`, "2xx"},
		{"duplicate trigger", `{id: s, triggers: [{event: a}, {event: a}]}`, "duplicate"},
		{"bad match", `{id: s, triggers: [{event: a, match: 'body.x'}]}`, "match"},
		{"bad param key", `{id: s, triggers: [{event: a, params: [{key: "a b"}]}]}`, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.Parse([]byte(tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func builtin(t *testing.T, id string) *manifest.Webhook {
	t.Helper()
	m, ok := manifest.Builtin(id)
	if !ok || m.Webhook == nil {
		t.Fatalf("no built-in %s", id)
	}
	return m.Webhook
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name, integration, ctype, body string
		header                         http.Header
		want                           []manifest.Item // Payload unchecked when nil
	}{
		{name: "stripe connect event", integration: "stripe", body: `{"id":"evt_1","type":"invoice.paid","account":"acct_9"}`,
			want: []manifest.Item{{Type: "invoice.paid", ID: "evt_1", AccountID: "acct_9"}}},
		{name: "stripe platform event", integration: "stripe", body: `{"id":"evt_2","type":"customer.created"}`,
			want: []manifest.Item{{Type: "customer.created", ID: "evt_2"}}},
		{name: "hubspot batch splits", integration: "hubspot",
			body: `[{"eventId":101,"subscriptionType":"contact.creation","portalId":62515},{"eventId":102,"subscriptionType":"deal.creation","portalId":62515}]`,
			want: []manifest.Item{{Type: "contact.creation", ID: "101", AccountID: "62515"}, {Type: "deal.creation", ID: "102", AccountID: "62515"}}},
		{name: "64-bit ids keep their digits", integration: "hubspot", body: `[{"eventId":9007199254740993,"subscriptionType":"contact.creation","portalId":1}]`,
			want: []manifest.Item{{Type: "contact.creation", ID: "9007199254740993", AccountID: "1"}}},
		{name: "slack event callback", integration: "slack", body: `{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{"type":"app_mention"}}`,
			want: []manifest.Item{{Type: "app_mention", ID: "Ev1", AccountID: "T1"}}},
		{name: "github push by shape, hashed id", integration: "github", body: `{"ref":"refs/heads/main","pusher":{"name":"x"},"repository":{"owner":{"id":7}}}`,
			want: []manifest.Item{{Type: "push", AccountID: "7", HashedID: true}}},
		{name: "twilio form", integration: "twilio", ctype: "application/x-www-form-urlencoded", body: "AccountSid=AC1&SmsStatus=received&Body=hi",
			want: []manifest.Item{{Type: "message.received", AccountID: "AC1", HashedID: true}}},
		{name: "standard webhooks id from signed header", integration: "standard-webhooks", body: `{"type":"user.created"}`,
			header: http.Header{"Webhook-Id": {"msg_1"}}, want: []manifest.Item{{Type: "user.created", ID: "msg_1"}}},
		{name: "not JSON: kept as one unrecognized event", integration: "stripe", body: `not json`,
			want: []manifest.Item{{Type: manifest.UnknownEvent, HashedID: true}}},
		{name: "graph notifications", integration: "microsoft-graph", body: `{"value":[{"subscriptionId":"s","changeType":"created","tenantId":"t1","resource":"r1"},{"subscriptionId":"s","changeType":"deleted","tenantId":"t2","resource":"r2"}]}`,
			want: []manifest.Item{{Type: "created", ID: "s:r1:created:", AccountID: "t1"}, {Type: "deleted", ID: "s:r2:deleted:", AccountID: "t2"}}},
		{name: "batch with one bad item", integration: "hubspot", body: `[{"eventId":1,"subscriptionType":"contact.creation","portalId":5},"garbage"]`,
			want: []manifest.Item{{Type: "contact.creation", ID: "1", AccountID: "5"}, {Type: manifest.UnknownEvent, HashedID: true}}},
		{name: "dropbox fan-out", integration: "dropbox", body: `{"list_folder":{"accounts":["dbid:a","dbid:b"]}}`,
			want: []manifest.Item{{Type: "list_folder.changed", AccountID: "dbid:a", HashedID: true}, {Type: "list_folder.changed", AccountID: "dbid:b", HashedID: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := builtin(t, tt.integration)
			if tt.ctype == "" {
				tt.ctype = "application/json"
			}
			items, err := w.Extract(manifest.Delivery{Header: tt.header, Query: url.Values{}, ContentType: tt.ctype, Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(tt.want) {
				t.Fatalf("%d items, want %d: %+v", len(items), len(tt.want), items)
			}
			for i, got := range items {
				want := tt.want[i]
				if got.Type != want.Type || got.AccountID != want.AccountID || got.HashedID != want.HashedID || (!want.HashedID && got.ID != want.ID) {
					t.Errorf("item %d = %+v, want %+v", i, got, want)
				}
				if want.HashedID && !strings.HasPrefix(got.ID, "sha256:") {
					t.Errorf("item %d id %q, want a payload hash", i, got.ID)
				}
			}
		})
	}
}

func TestExtractRefusesHugeBatch(t *testing.T) {
	w := builtin(t, "hubspot")
	body := "[" + strings.Repeat(`{"eventId":1},`, manifest.MaxItems) + `{"eventId":1}]`
	_, err := w.Extract(manifest.Delivery{ContentType: "application/json", Body: []byte(body)})
	if _, ok := err.(*manifest.TooManyItemsError); !ok {
		t.Fatalf("err = %v, want TooManyItemsError", err)
	}
}

func TestDeeplyNestedJSON(t *testing.T) {
	w := builtin(t, "stripe")
	body := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	items, err := w.Extract(manifest.Delivery{ContentType: "application/json", Body: []byte(body)})
	if err != nil || len(items) != 1 || items[0].Type != manifest.UnknownEvent {
		t.Fatalf("items %+v err %v, want one unrecognized event", items, err)
	}
}

func TestExtend(t *testing.T) {
	base, _ := manifest.Builtin("hubspot")
	over, err := manifest.Parse([]byte(`{id: hubspot, webhook: {response: {status: 204}}, triggers: [{event: contact.creation, title: New contact}, {event: ticket.creation}]}`))
	if err == nil {
		t.Fatal("a partial webhook alone must not compile (no verification)")
	}
	m := over.Extend(base)
	if p := m.Compile(); len(p) > 0 {
		t.Fatal(p)
	}
	if m.Webhook.Response.Status != 204 || m.Webhook.EventType != base.Webhook.EventType {
		t.Fatalf("webhook not merged: %+v", m.Webhook)
	}
	if tr, ok := m.Trigger("contact.creation"); !ok || tr.Title != "New contact" {
		t.Fatalf("override lost: %+v", tr)
	}
	if _, ok := m.Trigger("ticket.creation"); !ok {
		t.Fatal("extension lost")
	}
	if _, ok := m.Trigger("deal.creation"); !ok {
		t.Fatal("base trigger lost")
	}
	if base.Webhook.Response != nil {
		t.Fatal("Extend modified the built-in")
	}
}

func FuzzParse(f *testing.F) {
	ids, _ := manifest.BuiltinIDs()
	for _, id := range ids[:5] {
		f.Add([]byte("id: " + id + "\nwebhook: {verification: {preset: " + id + "}, eventType: body.type}\n"))
	}
	f.Add([]byte(`{id: x, webhook: {verification: {scheme: hmac, header: X-Sig, content: "{timestamp}.{body}", timestamp: {header: X-T}}, eventType: 'headers["x-t"]', split: body}}`))
	f.Add([]byte(`{"id":"x","triggers":[{"event":"a","match":"event.type == params.k","params":[{"key":"k"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Parse(data)
		if err != nil || m == nil || m.Webhook == nil {
			return
		}
		// A manifest that compiles extracts from any body without panicking.
		_, _ = m.Webhook.Extract(manifest.Delivery{ContentType: "application/json", Body: data})
	})
}

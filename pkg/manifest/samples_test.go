package manifest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// sample is a delivery shaped like the provider's documented example, and
// what the manifest must read from it.
type sample struct {
	ctype, body string
	header      http.Header
	query       string
	// want: type, id ("#" = the payload hash), account, per item
	want [][3]string
}

func h(kv ...string) http.Header {
	out := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// samples has one entry per built-in manifest (TestEveryBuiltinHasASample).
var samples = map[string]sample{
	"asana":                   {body: `{"events":[{"user":{"gid":"1"},"created_at":"2024-01-01T00:00:00Z","action":"changed","resource":{"gid":"12","resource_type":"task"}}]}`, want: [][3]string{{"task.changed", "#", ""}}},
	"basic":                   {body: `{"type":"order.paid","id":"o1"}`, want: [][3]string{{"order.paid", "o1", ""}}},
	"bearer":                  {body: `{"event":"ping"}`, want: [][3]string{{"ping", "#", ""}}},
	"brex":                    {body: `{"type":"EXPENSE_PAYMENT_UPDATED"}`, header: h("svix-id", "msg_b"), want: [][3]string{{"EXPENSE_PAYMENT_UPDATED", "msg_b", ""}}},
	"calendly":                {body: `{"created_by":"https://api.calendly.com/users/AAA","event":"invitee.created","payload":{}}`, want: [][3]string{{"invitee.created", "#", "https://api.calendly.com/users/AAA"}}},
	"clerk":                   {body: `{"type":"user.created","object":"event","data":{}}`, header: h("svix-id", "msg_c"), want: [][3]string{{"user.created", "msg_c", ""}}},
	"clickup":                 {body: `{"event":"taskCreated","history_items":[{"id":"2800763136717140857"}],"task_id":"1vj37mc","webhook_id":"7fa3ec74"}`, want: [][3]string{{"taskCreated", "2800763136717140857", "7fa3ec74"}}},
	"discord":                 {body: `{"id":"786008729715212338","type":2,"application_id":"1","guild_id":"290926798626357250","data":{"name":"ping"}}`, want: [][3]string{{"command.ping", "786008729715212338", "290926798626357250"}}},
	"docusign":                {body: `{"event":"envelope-completed","generatedDateTime":"2024-01-01T00:00:00Z","data":{"accountId":"acc-1","envelopeId":"env-1"}}`, want: [][3]string{{"envelope-completed", "env-1:2024-01-01T00:00:00Z", "acc-1"}}},
	"dropbox":                 {body: `{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[12345678]}}`, want: [][3]string{{"list_folder.changed", "#", "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"}}},
	"github":                  {body: `{"action":"opened","pull_request":{"id":1},"repository":{"owner":{"id":7}},"installation":{"id":42}}`, want: [][3]string{{"pull_request.opened", "#", "42"}}},
	"github-sha1":             {body: `{"action":"opened","issue":{"id":1},"organization":{"id":8}}`, want: [][3]string{{"issues.opened", "#", "8"}}},
	"gitlab":                  {body: `{"object_kind":"push","project":{"id":15}}`, header: h("X-Gitlab-Event-UUID", "uuid-1"), want: [][3]string{{"push", "uuid-1", "15"}}},
	"google-calendar":         {header: h("X-Goog-Channel-ID", "ch-1", "X-Goog-Resource-State", "exists", "X-Goog-Message-Number", "7"), want: [][3]string{{"exists", "ch-1:7", "ch-1"}}},
	"google-drive":            {header: h("X-Goog-Channel-ID", "ch-2", "X-Goog-Resource-State", "update", "X-Goog-Message-Number", "8"), want: [][3]string{{"update", "ch-2:8", "ch-2"}}},
	"hubspot":                 {body: `[{"eventId":1,"subscriptionId":2,"portalId":62515,"occurredAt":1,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM"}]`, want: [][3]string{{"contact.creation", "1", "62515"}}},
	"hubspot-v1":              {body: `[{"eventId":3,"portalId":9,"subscriptionType":"deal.creation"}]`, want: [][3]string{{"deal.creation", "3", "9"}}},
	"hubspot-v2":              {body: `{"eventId":4,"portalId":9,"subscriptionType":"company.creation"}`, want: [][3]string{{"company.creation", "4", "9"}}},
	"hubspot-v3":              {body: `[{"eventId":5,"portalId":9,"subscriptionType":"contact.propertyChange","propertyName":"email"},{"eventId":6,"portalId":9,"subscriptionType":"contact.deletion"}]`, want: [][3]string{{"contact.propertyChange", "5", "9"}, {"contact.deletion", "6", "9"}}},
	"intercom":                {body: `{"type":"notification_event","app_id":"abc","id":"notif_1","topic":"conversation.user.created","data":{}}`, want: [][3]string{{"conversation.user.created", "notif_1", "abc"}}},
	"jira":                    {body: `{"timestamp":1700000000000,"webhookEvent":"jira:issue_created","issue":{"id":"10001"}}`, want: [][3]string{{"jira:issue_created", "1700000000000:10001", ""}}},
	"jira-oauth":              {body: `{"webhookEvent":"jira:issue_updated"}`, header: h("X-Atlassian-Webhook-Identifier", "wh-1"), want: [][3]string{{"jira:issue_updated", "wh-1", ""}}},
	"linear":                  {body: `{"action":"create","type":"Issue","organizationId":"org-1","webhookId":"wh-9","webhookTimestamp":1700000000000,"data":{}}`, want: [][3]string{{"issue.create", "wh-9:1700000000000", "org-1"}}},
	"mailchimp-transactional": {ctype: "application/x-www-form-urlencoded", body: "mandrill_events=" + url.QueryEscape(`[{"event":"send","_id":"m1","msg":{}},{"event":"open","_id":"m2"}]`), want: [][3]string{{"send", "m1", ""}, {"open", "m2", ""}}},
	"mailgun":                 {body: `{"signature":{"token":"tok","timestamp":"1","signature":"x"},"event-data":{"event":"delivered","id":"ev-1"}}`, want: [][3]string{{"delivered", "ev-1", ""}}},
	"meta":                    {body: `{"object":"page","entry":[{"id":"page-1","time":1,"changes":[{"field":"feed","value":{}}]},{"id":"page-2","time":2,"messaging":[{}]}]}`, want: [][3]string{{"page.feed", "#", "page-1"}, {"page.messaging", "#", "page-2"}}},
	"microsoft-graph":         {body: `{"value":[{"subscriptionId":"s1","clientState":"c","changeType":"updated","resource":"Users/1","tenantId":"t1","resourceData":{"@odata.etag":"W/1"}}]}`, want: [][3]string{{"updated", "s1:Users/1:updated:W/1", "t1"}}},
	"monday":                  {body: `{"event":{"type":"create_pulse","triggerUuid":"tu-1","accountId":123}}`, want: [][3]string{{"create_pulse", "tu-1", "123"}}},
	"paddle":                  {body: `{"event_id":"evt_01","event_type":"transaction.completed","data":{}}`, want: [][3]string{{"transaction.completed", "evt_01", ""}}},
	"pipedrive":               {body: `{"meta":{"action":"create","entity":"deal","company_id":77,"id":555}}`, want: [][3]string{{"deal.create", "555", "77"}}},
	"razorpay":                {body: `{"entity":"event","account_id":"acc_1","event":"payment.captured","created_at":1,"payload":{"payment":{"entity":{"id":"pay_1"}}}}`, want: [][3]string{{"payment.captured", "acc_1:payment.captured:1:pay_1", "acc_1"}}},
	"replicate":               {body: `{"id":"pred","status":"succeeded"}`, header: h("webhook-id", "msg_r"), want: [][3]string{{"succeeded", "msg_r", ""}}},
	"resend":                  {body: `{"type":"email.delivered","data":{}}`, header: h("svix-id", "msg_rs"), want: [][3]string{{"email.delivered", "msg_rs", ""}}},
	"sendgrid":                {body: `[{"email":"a@b.c","event":"delivered","sg_event_id":"sg1"},{"email":"a@b.c","event":"open","sg_event_id":"sg2"}]`, want: [][3]string{{"delivered", "sg1", ""}, {"open", "sg2", ""}}},
	"sentry":                  {body: `{"action":"created","installation":{"uuid":"inst-1"},"data":{"issue":{"id":"1"}}}`, want: [][3]string{{"issue.created", "#", "inst-1"}}},
	"shopify":                 {body: `{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508"}`, header: h("X-Shopify-Topic", "customers/delete"), want: [][3]string{{"order", "#", ""}}},
	"slack":                   {body: `{"token":"x","team_id":"T061EG9R6","api_app_id":"A0PNCHHK2","event":{"type":"message","channel":"C1"},"type":"event_callback","event_id":"Ev0PV52K25","event_time":1}`, want: [][3]string{{"message", "Ev0PV52K25", "T061EG9R6"}}},
	"square":                  {body: `{"merchant_id":"6SSW7HV8K2ST5","type":"payment.created","event_id":"13b867cf","data":{}}`, want: [][3]string{{"payment.created", "13b867cf", "6SSW7HV8K2ST5"}}},
	"standard-webhooks":       {body: `{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{}}`, header: h("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"), want: [][3]string{{"contact.created", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ""}}},
	"standard-webhooks-v1a":   {body: `{"type":"contact.deleted"}`, header: h("webhook-id", "msg_a"), want: [][3]string{{"contact.deleted", "msg_a", ""}}},
	"stripe":                  {body: `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"setup_intent.created","livemode":false,"data":{"object":{}}}`, want: [][3]string{{"setup_intent.created", "evt_1NG8Du2eZvKYlo2CUI79vXWy", ""}}},
	"stytch":                  {body: `{"type":"user.create"}`, header: h("svix-id", "msg_st"), want: [][3]string{{"user.create", "msg_st", ""}}},
	"svix":                    {body: `{"type":"invoice.paid"}`, header: h("webhook-id", "msg_sv"), want: [][3]string{{"invoice.paid", "msg_sv", ""}}},
	"twilio":                  {ctype: "application/x-www-form-urlencoded", body: "AccountSid=ACXXXX&MessageSid=SM1&MessageStatus=delivered", want: [][3]string{{"message.delivered", "#", "ACXXXX"}}},
	"twitch":                  {body: `{"subscription":{"type":"channel.follow","condition":{"broadcaster_user_id":"1337"}},"event":{}}`, header: h("Twitch-Eventsub-Message-Id", "befa7b53"), want: [][3]string{{"channel.follow", "befa7b53", "1337"}}},
	"typeform":                {body: `{"event_id":"LtWXD3crgy","event_type":"form_response","form_response":{"form_id":"lT4Z3j"}}`, want: [][3]string{{"form_response", "LtWXD3crgy", "lT4Z3j"}}},
	"vercel":                  {body: `{"id":"uvsfwe","type":"deployment.succeeded","payload":{"team":{"id":"team_1"}}}`, want: [][3]string{{"deployment.succeeded", "uvsfwe", "team_1"}}},
	"woocommerce":             {body: `{"id":727,"line_items":[{}]}`, header: h("X-WC-Webhook-Topic", "customer.deleted"), want: [][3]string{{"order", "#", ""}}},
	"xero":                    {body: `{"events":[{"resourceId":"r1","eventDateUtc":"2024-01-01T00:00:00","eventType":"CREATE","eventCategory":"INVOICE","tenantId":"t1"}],"firstEventSequence":1,"lastEventSequence":1}`, want: [][3]string{{"invoice.create", "r1:2024-01-01T00:00:00", "t1"}}},
	"zendesk":                 {body: `{"type":"zen:event-type:ticket.created","account_id":12514403,"id":"2b7d0b3c","detail":{}}`, want: [][3]string{{"zen:event-type:ticket.created", "2b7d0b3c", "12514403"}}},
	"zoom":                    {body: `{"event":"meeting.started","event_ts":1626230691572,"payload":{"account_id":"AAAAAABBBB","object":{"id":"1234567890","uuid":"4444AAAiAAAAAiAiAiiAii=="}}}`, want: [][3]string{{"meeting.started", "1626230691572:4444AAAiAAAAAiAiAiiAii==", "AAAAAABBBB"}}},
}

func TestEveryBuiltinHasASample(t *testing.T) {
	ids, err := manifest.BuiltinIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if m, _ := manifest.Builtin(id); m.Webhook == nil {
			continue // a polling-only integration (polling_test.go)
		}
		if _, ok := samples[id]; !ok {
			t.Errorf("built-in %s has no sample delivery", id)
		}
	}
}

// TestBuiltinSamples: each built-in reads the type, id and tenant of its
// provider's documented delivery shape.
func TestBuiltinSamples(t *testing.T) {
	for id, s := range samples {
		t.Run(id, func(t *testing.T) {
			m, ok := manifest.Builtin(id)
			if !ok {
				t.Fatalf("no built-in %s", id)
			}
			ct := s.ctype
			if ct == "" {
				ct = "application/json"
			}
			q, _ := url.ParseQuery(s.query)
			items, err := m.Webhook.Extract(manifest.Delivery{Header: s.header, Query: q, ContentType: ct, Body: []byte(s.body)})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(s.want) {
				t.Fatalf("%d items, want %d: %+v", len(items), len(s.want), items)
			}
			for i, it := range items {
				w := s.want[i]
				if len(it.Problems) > 0 {
					t.Errorf("item %d: %s", i, strings.Join(it.Problems, "; "))
				}
				wantID := w[1]
				if wantID == "#" {
					if !it.HashedID {
						t.Errorf("item %d id %q, want the payload hash", i, it.ID)
					}
					wantID = it.ID
				}
				if it.Type != w[0] || it.ID != wantID || it.AccountID != w[2] {
					t.Errorf("item %d = (%q, %q, %q), want (%q, %q, %q)", i, it.Type, it.ID, it.AccountID, w[0], wantID, w[2])
				}
			}
		})
	}
}

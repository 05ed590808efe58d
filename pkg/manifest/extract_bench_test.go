package manifest_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// BenchmarkExtract is the receiver's per-delivery extraction for a few
// built-ins: Stripe (the webhook benchmark's), a split batch (HubSpot)
// and a header-keyed one (Svix, via Clerk).
func BenchmarkExtract(b *testing.B) {
	cases := []struct {
		id     string
		body   string
		header http.Header
	}{
		{"stripe", `{"id":"evt_bench_1","object":"event","type":"invoice.paid","account":"acct_42","data":{"object":{"id":"in_1","amount_due":4200,"currency":"usd"}}}`, nil},
		{"hubspot", `[{"eventId":1,"subscriptionId":2,"portalId":62515,"occurredAt":1,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM"},{"eventId":2,"subscriptionId":2,"portalId":62515,"occurredAt":1,"subscriptionType":"contact.deletion","attemptNumber":0,"objectId":124,"changeSource":"CRM"}]`, nil},
		{"clerk", `{"type":"user.created","object":"event","data":{"id":"user_1"}}`, http.Header{"Svix-Id": {"msg_1"}, "Content-Type": {"application/json"}}},
	}
	for _, c := range cases {
		m, ok := manifest.Builtin(c.id)
		if !ok {
			b.Fatalf("no built-in %q", c.id)
		}
		d := manifest.Delivery{Header: c.header, ContentType: "application/json", Body: []byte(c.body)}
		b.Run(c.id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Webhook.Extract(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

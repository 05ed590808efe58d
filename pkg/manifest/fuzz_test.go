package manifest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// FuzzExtractBuiltins: every built-in manifest extracts events from any
// body, content type and header without panicking, never loses the
// delivery (at least one item unless the manifest splits it into none)
// and never yields an item without a type or an id.
func FuzzExtractBuiltins(f *testing.F) {
	for _, s := range samples {
		f.Add(s.body, s.ctype, "x")
	}
	f.Add(`[[[[[[`, "application/json", "")
	f.Add(`a=1&a=2&mandrill_events=%5B1%2C%5B%5D%5D`, "application/x-www-form-urlencoded", "")
	ids, err := manifest.BuiltinIDs()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, ctype, hv string) {
		h := http.Header{"Webhook-Id": {hv}, "Svix-Id": {hv}, "X-Goog-Channel-Id": {hv}, "Twitch-Eventsub-Message-Id": {hv}}
		for _, id := range ids {
			m, _ := manifest.Builtin(id)
			if m.Webhook == nil {
				continue // a polling-only integration
			}
			items, err := m.Webhook.Extract(manifest.Delivery{Header: h, Query: url.Values{"q": {hv}}, ContentType: ctype, Body: []byte(body)})
			if err != nil {
				continue // too many items: refused as a whole
			}
			if len(items) == 0 && m.Webhook.Split == "" {
				t.Fatalf("%s: a delivery without split yielded no event", id)
			}
			for _, it := range items {
				if it.Type == "" || it.ID == "" || it.Payload == nil {
					t.Fatalf("%s: item %+v", id, it)
				}
			}
		}
	})
}

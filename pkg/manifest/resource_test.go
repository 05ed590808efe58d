package manifest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

// TestResourceFields: a resource's level and webhook.userId are checked at
// apply time — only resources have them, an app-level resource must name
// the user of its deliveries, and the user never comes from what the
// signature leaves out.
func TestResourceFields(t *testing.T) {
	const hook = `webhook: {verification: {preset: standard-webhooks}, eventType: body.type`
	tests := []struct {
		name, doc string
		problem   string // "" when valid; else a substring of the error
		appLevel  bool
	}{
		{"user-level by default", `{id: tl, resource: true, ` + hook + `, userId: body.user}}`, "", false},
		{"app-level with userId", `{id: tl, resource: true, level: app, ` + hook + `, userId: body.data.userId}}`, "", true},
		{"app-level without webhook", `{id: tl, resource: true, level: app}`, "", true},
		{"app-level needs userId", `{id: tl, resource: true, level: app, ` + hook + `}}`, "webhook.userId: is required", false},
		{"app-level accountId is not enough", `{id: tl, resource: true, level: app, ` + hook + `, accountId: body.ws}}`, "webhook.userId: is required", false},
		{"unknown level", `{id: tl, resource: true, level: team}`, "level: must be", false},
		{"level on an integration", `{id: tl, level: app}`, "only an API Resource", false},
		{"userId on an integration", `{id: tl, ` + hook + `, userId: body.user}}`, "only an API Resource", false},
		{"userId from an unsigned header", `{id: tl, resource: true, ` + hook + `, userId: 'headers["x-user"]'}}`, `reads header "x-user"`, false},
		{"userId from the query", `{id: tl, resource: true, ` + hook + `, userId: query.user}}`, "reads the query", false},
		{"userId that does not compile", `{id: tl, resource: true, ` + hook + `, userId: 'body.('}}`, "webhook.userId", false},
		{"userId from a token-authenticated header", `{id: tl, resource: true, webhook: {verification: {scheme: token, header: X-Token}, eventType: body.type, userId: 'headers["x-user"]'}}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte(tt.doc))
			switch {
			case tt.problem == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Fatalf("error %v, want one with %q", err, tt.problem)
			case tt.problem == "" && m.AppLevel() != tt.appLevel:
				t.Fatalf("AppLevel %v, want %v", m.AppLevel(), tt.appLevel)
			}
		})
	}
}

// TestExtractUserID: webhook.userId is read per item, after the split.
func TestExtractUserID(t *testing.T) {
	m, err := manifest.Parse([]byte(`{id: tl, resource: true, level: app, webhook: {verification: {preset: standard-webhooks}, split: body.events, eventType: item.type, userId: item.data.userId}}`))
	if err != nil {
		t.Fatal(err)
	}
	items, err := m.Webhook.Extract(manifest.Delivery{Header: http.Header{}, Query: url.Values{}, ContentType: "application/json",
		Body: []byte(`{"events":[{"type":"a","data":{"userId":"ana"}},{"type":"b","data":{}},{"type":"c","data":{"userId":42}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ana", "", "42"}
	if len(items) != len(want) {
		t.Fatalf("%d items: %+v", len(items), items)
	}
	for i, it := range items {
		if it.UserID != want[i] {
			t.Errorf("item %d user %q, want %q", i, it.UserID, want[i])
		}
	}
}

// FuzzResourceUserID: an API Resource's userId is read from any body
// without panicking, never longer than the 512-byte bound of a routing
// value, and never drops the delivery's item.
func FuzzResourceUserID(f *testing.F) {
	f.Add(`{"data":{"userId":"ana"}}`, "application/json")
	f.Add(`{"data":{"userId":{"deep":[1,2,3]}}}`, "application/json")
	f.Add(`data=1`, "application/x-www-form-urlencoded")
	f.Add(`[[[[`, "text/plain")
	m, err := manifest.Parse([]byte(`{id: tl, resource: true, level: app, webhook: {verification: {preset: standard-webhooks}, eventType: body.type, userId: body.data.userId}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, ctype string) {
		items, err := m.Webhook.Extract(manifest.Delivery{Header: http.Header{}, Query: url.Values{}, ContentType: ctype, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || len(items[0].UserID) > 512 {
			t.Fatalf("items %+v", items)
		}
	})
}

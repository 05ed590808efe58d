package manifest_test

import (
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

func TestOAuthSection(t *testing.T) {
	const ok = `{id: crm, oauth: {authorizeUrl: 'https://p.example/authorize', tokenUrl: 'https://p.example/token', scopes: [a, b], accountId: {url: 'https://p.example/me', field: account.id}}}`
	tests := []struct {
		name, doc, wantErr string
	}{
		{"valid", ok, ""},
		{"account id from the token response", `{id: crm, oauth: {authorizeUrl: 'https://p.example/a', tokenUrl: 'https://p.example/t', accountId: {field: team.id}}}`, ""},
		{"authorize URL required", `{id: crm, oauth: {tokenUrl: 'https://p.example/t', accountId: {field: id}}}`, "oauth.authorizeUrl"},
		{"token URL absolute", `{id: crm, oauth: {authorizeUrl: 'https://p.example/a', tokenUrl: '/t', accountId: {field: id}}}`, "oauth.tokenUrl"},
		{"account id field required", `{id: crm, oauth: {authorizeUrl: 'https://p.example/a', tokenUrl: 'https://p.example/t'}}`, "oauth.accountId.field"},
		{"bad auth style", `{id: crm, oauth: {authorizeUrl: 'https://p.example/a', tokenUrl: 'https://p.example/t', authStyle: x, accountId: {field: id}}}`, "oauth.authStyle"},
		{"unknown field", `{id: crm, oauth: {authorizeUrl: 'https://p.example/a', tokenUrl: 'https://p.example/t', accountId: {field: id}, nope: 1}}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte(tt.doc))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.OAuth == nil || m.OAuth.AccountID.Field == "" {
					t.Fatalf("oauth %+v", m.OAuth)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("extend keeps the base's oauth", func(t *testing.T) {
		base, err := manifest.Parse([]byte(ok))
		if err != nil {
			t.Fatal(err)
		}
		over, err := manifest.Parse([]byte(`{id: crm, name: CRM}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := over.Extend(base); got.OAuth == nil || got.OAuth.TokenURL != "https://p.example/token" {
			t.Fatalf("extended oauth %+v", got.OAuth)
		}
	})
}

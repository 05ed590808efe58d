package manifest_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
)

func TestAuthApply(t *testing.T) {
	for _, tc := range []struct {
		name       string
		auth       manifest.Auth
		secret     map[string]any
		header     string
		want, fail string
	}{
		{"bearer", manifest.Auth{Type: "bearer"}, map[string]any{"accessToken": "t"}, "Authorization", "Bearer t", ""},
		{"guessed bearer", manifest.Auth{}, map[string]any{"accessToken": "t", "apiKey": "k"}, "Authorization", "Bearer t", ""},
		{"api key, default header", manifest.Auth{Type: "api_key"}, map[string]any{"apiKey": "k"}, manifest.DefaultAPIKeyHeader, "k", ""},
		{"api key, own header", manifest.Auth{Type: "api_key", Header: "X-Token"}, map[string]any{"apiKey": "k"}, "X-Token", "k", ""},
		{"guessed basic", manifest.Auth{}, map[string]any{"username": "u", "password": "p"}, "Authorization", "Basic dTpw", ""},
		{"none", manifest.Auth{Type: "none"}, nil, "Authorization", "", ""},
		{"bearer without token", manifest.Auth{Type: "bearer"}, map[string]any{"apiKey": "k"}, "", "", "no secret.accessToken"},
		{"api key without key", manifest.Auth{Type: "api_key"}, map[string]any{}, "", "", "no secret.apiKey"},
		{"nothing to guess from", manifest.Auth{}, map[string]any{"other": 1}, "", "", "no usable secret (accessToken, apiKey or username)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			err := tc.auth.Apply(h, tc.secret)
			if tc.fail != "" {
				if err == nil || err.Error() != tc.fail {
					t.Fatalf("err %v, want %q", err, tc.fail)
				}
				return
			}
			if err != nil || h.Get(tc.header) != tc.want {
				t.Fatalf("%s = %q (%v), want %q", tc.header, h.Get(tc.header), err, tc.want)
			}
		})
	}
}

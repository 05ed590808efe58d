package receiver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
)

// FuzzCredentialValues: any body of a resource connection or app-level
// credential is a secret of at least one value or a 400 that says why —
// never a panic, never an empty secret.
func FuzzCredentialValues(f *testing.F) {
	for _, s := range []string{`{"access_token":"a","refresh_token":"r"}`, `{"apiKey":1e400}`, `{}`, `[]`, `null`, `{"a":1} {"b":2}`,
		`{"a":{"b":[` + strings.Repeat("[", 200), `{"credentialId":"c","providerAccountId":"x","username":"u"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fields, err := decodeCredentialValues([]byte(body))
		if err == nil {
			var secret map[string]any
			secret, err = credentialSecret(fields)
			if err == nil && len(secret) == 0 {
				t.Fatalf("an empty secret from %q", body)
			}
		}
		if err != nil {
			ae, ok := apierr.As(err)
			if !ok || ae.Status != http.StatusBadRequest {
				t.Fatalf("%q: %v", body, err)
			}
		}
	})
}

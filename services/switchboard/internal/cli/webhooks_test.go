package cli

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/verify"
)

// TestWebhooksSign: the printed headers verify with the preset's verifier
// over the same body and URL — and not with another secret.
func TestWebhooksSign(t *testing.T) {
	body := `{"id":"evt_1","type":"invoice.paid"}`
	file := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		integration, preset, secret string
	}{
		{"stripe", "stripe", "whsec_cli"},
		{"hubspot", "hubspot-v3", "hs-secret"},
		{"standard-webhooks", "standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"svix", "svix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"slack", "slack", "slack-secret"},
		{"github", "github", "gh"},
		{"shopify", "shopify", "shp"},
		{"twilio", "twilio", "tw"},
	}
	const base = "http://127.0.0.1:8080"
	for _, tt := range tests {
		t.Run(tt.integration, func(t *testing.T) {
			root := newRoot()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetArgs([]string{"webhooks", "sign", "--integration", tt.integration, "--secret", tt.secret, "--body", "@" + file, "--base", base})
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			h := http.Header{"Content-Type": {"application/json"}}
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				k, v, ok := strings.Cut(line, ": ")
				if !ok {
					t.Fatalf("output line %q", line)
				}
				h.Set(k, v)
			}
			v, err := verify.New(verify.Spec{Preset: tt.preset}, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := verify.Request{Method: "POST", URL: base + "/v1/hooks/dev/" + tt.integration, Header: h, Body: []byte(body)}
			if err := v.Verify(r, []verify.Secret{{Value: tt.secret}}); err != nil {
				t.Fatalf("headers %v do not verify: %v", h, err)
			}
			if err := v.Verify(r, []verify.Secret{{Value: tt.secret + "x"}}); err == nil {
				t.Fatal("verified with another secret")
			}
		})
	}
}

package cli

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestEventsReplay runs `switchboard events replay` against a dev system:
// the Stripe events delivered in the range are published again.
func TestEventsReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys, err := dev.Start(ctx, dev.Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop(context.Background()) })
	base := "http://" + sys.HTTPAddr
	do := func(method, path, body string, hdr ...string) int {
		t.Helper()
		r, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := do("PUT", "/v1/projects/dev/integrations/stripe/webhook-secrets", `{"secrets":[{"value":"whsec_cli"}]}`, "Authorization", "Bearer "+sys.APIKey); s != 200 {
		t.Fatalf("secrets: %d", s)
	}
	for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
		body := `{"id":"` + id + `","type":"invoice.paid"}`
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: "whsec_cli", Timestamp: time.Now(), Scheme: "v1"})
		if s := do("POST", "/v1/hooks/dev/stripe", body, "Content-Type", "application/json", "Stripe-Signature", sp.Header); s != 200 {
			t.Fatalf("delivery: %d", s)
		}
	}
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"events", "replay", "--integration", "stripe", "--since", "1m", "--page", "2", "--url", base, "--api-key", sys.APIKey})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	if got := strings.TrimSpace(out.String()); got != "3 events replayed" {
		t.Fatalf("output %q (stderr %q)", got, errOut.String())
	}
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// TestEventsReplay runs `switchboard events replay` against a dev system:
// the Stripe events delivered in the range are published again.
func TestEventsReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys := startDev(ctx, t)
	base := "http://" + sys.HTTPAddr
	var last []byte // the body of the last answer
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
		defer res.Body.Close()
		if last, err = io.ReadAll(res.Body); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	var delivered []string // the event ids the deliveries were stored as
	if s := do("PUT", "/v1/projects/dev/integrations/stripe/webhook-secrets", `{"secrets":[{"value":"whsec_cli"}]}`, "Authorization", "Bearer "+sys.APIKey); s != 200 {
		t.Fatalf("secrets: %d", s)
	}
	for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
		body := `{"id":"` + id + `","type":"invoice.paid"}`
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: "whsec_cli", Timestamp: time.Now(), Scheme: "v1"})
		if s := do("POST", "/v1/hooks/dev/stripe", body, "Content-Type", "application/json", "Stripe-Signature", sp.Header); s != 200 {
			t.Fatalf("delivery: %d", s)
		}
		var acc struct{ Events []string }
		if err := json.Unmarshal(last, &acc); err != nil || len(acc.Events) != 1 {
			t.Fatalf("delivery answer %s", last)
		}
		delivered = append(delivered, acc.Events[0])
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

	// One event by id, once the router has decided it (its decision record
	// is what the replay finds it by): a new event linked to it, decided
	// anew — no workflow listens to invoice.paid, so it starts nothing.
	deadline := time.Now().Add(20 * time.Second)
	for do("GET", "/v1/projects/dev/events/"+delivered[0], "", "Authorization", "Bearer "+sys.APIKey) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("event %s never decided: %s", delivered[0], last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.Reset()
	root = newRoot()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"events", "replay", delivered[0], "--url", base, "--api-key", sys.APIKey})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	var acc struct {
		EventID, ReplayOf, Status string
		RunIDs                    []string
	}
	if err := json.Unmarshal(out.Bytes(), &acc); err != nil || acc.ReplayOf != delivered[0] || acc.EventID == "" ||
		acc.EventID == delivered[0] || acc.Status != "accepted" || len(acc.RunIDs) != 0 {
		t.Fatalf("single replay printed %q", out.String())
	}
	if s := do("POST", "/v1/projects/dev/events/evt_missing/replay", "", "Authorization", "Bearer "+sys.APIKey); s != 404 {
		t.Fatalf("replay of a missing event: %d %s", s, last)
	}
	root = newRoot()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"events", "replay", delivered[0], "--integration", "stripe", "--url", base, "--api-key", sys.APIKey})
	if err := root.Execute(); err == nil {
		t.Fatal("an EVENT_ID with --integration was accepted")
	}
}

package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/verify"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestCustomWebhookExample is the README's custom webhook step on a dev
// system, with the example document itself (its listener moved to the
// test's): the project's own integration, a credential's own URL and
// secret, a Standard-Webhooks-signed delivery to that URL running the
// workflow for that credential's user. Then the event is replayed by id
// (POST …/events/{id}/replay), decided by the real router: a new event
// linked to it, a new run for the same user and credential.
func TestCustomWebhookExample(t *testing.T) {
	doc, err := os.ReadFile("../../../examples/webhooks/orders-custom.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0"})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, strings.ReplaceAll(string(doc), "http://127.0.0.1:9000", l.URL))
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u3/credentials/orders1", key,
		map[string]any{"integration": "orders", "secret": map[string]any{"webhookSecret": secret}})
	var hook struct{ URL string }
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u3/credentials/orders1/webhook-url", key, nil).decode(t, &hook)
	path, ok := strings.CutPrefix(hook.URL, a.base)
	if !ok || !strings.HasPrefix(path, "/v1/hooks/dev/orders/") {
		t.Fatalf("webhook url %q", hook.URL)
	}

	body, err := os.ReadFile("../../../examples/webhooks/orders-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.NewSigner(verify.Spec{Preset: "standard-webhooks"}, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Request{Method: http.MethodPost, URL: hook.URL, Header: http.Header{"Webhook-Id": {"msg_e2e_1"}}, Body: body}
	if err := s.Sign(&r, verify.Secret{Value: secret}, time.Now()); err != nil {
		t.Fatal(err)
	}
	hdr := []string{"Content-Type", "application/json"}
	for k := range r.Header {
		hdr = append(hdr, k, r.Header.Get(k))
	}
	var ans struct {
		Status string   `json:"status"`
		Events []string `json:"events"`
	}
	a.must(t, http.StatusOK, "POST", path, "", string(body), hdr...).decode(t, &ans)
	if ans.Status != "accepted" || len(ans.Events) != 1 {
		t.Fatalf("delivery answer %+v", ans)
	}
	got := l.waitFor(t, "event", ans.Events[0], 1)
	if b := got[0].Body; b["user"] != "u3" || b["credential"] != "orders1" || b["order"] != "ord_1001" {
		t.Fatalf("the listener got %v", b)
	}
	expectError(t, a.call(t, "POST", "/v1/hooks/dev/orders/not-a-token", "", string(body), hdr...), http.StatusNotFound, "webhook_not_found")

	// Replay it by id once it is decided (its decision record is how the
	// replay finds it).
	getDecision(t, a, key, ans.Events[0])
	var acc struct {
		EventID  string   `json:"eventId"`
		ReplayOf string   `json:"replayOf"`
		RunIDs   []string `json:"runIds"`
		Status   string   `json:"status"`
	}
	a.must(t, http.StatusAccepted, "POST", "/v1/projects/dev/events/"+ans.Events[0]+"/replay", key, nil).decode(t, &acc)
	if acc.ReplayOf != ans.Events[0] || acc.EventID == "" || acc.EventID == ans.Events[0] || len(acc.RunIDs) != 1 || acc.Status != "accepted" {
		t.Fatalf("replay answer %+v", acc)
	}
	if run := waitRun(t, a, key, acc.RunIDs[0]); run.Status != runs.StatusSucceeded || run.User != "u3" || run.Credential != "orders1" || run.EventID != acc.EventID {
		t.Fatalf("replayed run %+v", run)
	}
	if again := l.waitFor(t, "event", acc.EventID, 1); again[0].Body["order"] != "ord_1001" {
		t.Fatalf("the replay's call %v", again[0].Body)
	}
	expectError(t, a.call(t, "POST", "/v1/projects/dev/events/01M8MISSING0000000000000000/replay", key, nil), http.StatusNotFound, "event_not_found")
	expectError(t, a.call(t, "POST", "/v1/projects/dev/events/"+ans.Events[0]+"/replay", sys.APIKey[:len(sys.APIKey)-1]+"x", nil), http.StatusUnauthorized, "unauthorized")
}

package receiver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

// TestReplay: an integration's stored events in a time range are
// published again as new events, page by page; a page sent again publishes
// nothing new, and a range reaching into the replay's own output does not
// replay it.
func TestReplay(t *testing.T) {
	e := newEnv(t)
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	since := time.Now().Add(-time.Second)
	for _, id := range []string{"evt_a", "evt_b", "evt_c"} {
		body := `{"id":"` + id + `","type":"invoice.paid"}`
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: stripeSecret, Timestamp: time.Now(), Scheme: "v1"})
		if r := e.do(e.hook("POST", "stripe", "application/json", body, "Stripe-Signature", sp.Header)); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	originals := e.stored()
	replay := func(auth string, req receiver.ReplayRequest) (response, receiver.ReplayPage) {
		b, _ := json.Marshal(req)
		r, _ := http.NewRequest(http.MethodPost, e.base+"/v1/projects/"+project+"/integrations/stripe/replay", bytes.NewReader(b))
		r.Header.Set("Authorization", "Bearer "+auth)
		res := e.do(r)
		var page receiver.ReplayPage
		_ = json.Unmarshal([]byte(res.body), &page)
		return res, page
	}
	if r, _ := replay("sk_nope", receiver.ReplayRequest{Since: since, ReplayID: "r1"}); r.status != 401 {
		t.Fatalf("wrong key: %d", r.status)
	}
	if r, _ := replay(apiKey, receiver.ReplayRequest{ReplayID: "r1"}); r.status != 400 {
		t.Fatalf("no since: %d", r.status)
	}
	r, p1 := replay(apiKey, receiver.ReplayRequest{Since: since, ReplayID: "r1", Limit: 2})
	if r.status != 200 || p1.Replayed != 2 || p1.Next == "" || p1.Remaining == 0 {
		t.Fatalf("page 1: %d %s", r.status, r.body)
	}
	next, _ := time.Parse(time.RFC3339Nano, p1.Next)
	r, p2 := replay(apiKey, receiver.ReplayRequest{Since: next, ReplayID: "r1", Limit: 2})
	if r.status != 200 || p2.Replayed != 1 || p2.Next != "" {
		t.Fatalf("page 2: %d %s", r.status, r.body)
	}
	all := e.stored()
	if len(all) != 6 {
		t.Fatalf("%d events stored after the replay, want 6", len(all))
	}
	for i, orig := range originals {
		cp := all[3+i]
		if cp.Id == orig.Id || cp.Name != orig.Name || string(cp.Payload) != string(orig.Payload) ||
			cp.GetProvider().GetEventId() != orig.GetProvider().GetEventId() {
			t.Fatalf("replay %d = %+v of %+v", i, cp, orig)
		}
		if got := p1.Events[orig.Id] + p2.Events[orig.Id]; got != cp.Id {
			t.Fatalf("answer maps %s to %q, stored %s", orig.Id, got, cp.Id)
		}
	}
	// The same page again: same ids, absorbed; and the whole range again
	// skips the replayed copies.
	if r, again := replay(apiKey, receiver.ReplayRequest{Since: since, ReplayID: "r1", Limit: 2}); r.status != 200 || again.Events[originals[0].Id] != p1.Events[originals[0].Id] {
		t.Fatalf("page 1 again: %s", r.body)
	}
	if n := len(e.stored()); n != 6 {
		t.Fatalf("%d events after sending page 1 again, want 6", n)
	}
	if r, whole := replay(apiKey, receiver.ReplayRequest{Since: since, ReplayID: "r2"}); r.status != 200 || whole.Replayed != 3 {
		t.Fatalf("a second replay of the range: %s", r.body)
	}
}

// TestReplayBothSubjects: an integration's replay takes the events stored
// on its subject by an earlier version (five tokens, claim in sb_dedupe)
// and those stored with their dedupe key in the subject (six), so an
// upgrade leaves nothing out of a replay.
func TestReplayBothSubjects(t *testing.T) {
	e := newEnv(t)
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	since := time.Now().Add(-time.Second)
	pub, err := trigger.New(e.ctx, trigger.Options{JS: e.js})
	if err != nil {
		t.Fatal(err)
	}
	before := &sbv1.TriggerEvent{Id: trigger.NewID(), Project: project, Kind: sbv1.Kind_INTEGRATION, Name: "invoice.paid",
		Integration: "stripe", Payload: []byte(`{"id":"evt_before","type":"invoice.paid"}`)}
	res, err := pub.Publish(e.ctx, before)
	if err != nil {
		t.Fatal(err)
	}
	if res.Subject != subjects.Trigger(project, subjects.KindIntegration, "stripe") {
		t.Fatalf("the earlier version's event is on %s", res.Subject)
	}
	body := `{"id":"evt_after","type":"invoice.paid"}`
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: stripeSecret, Timestamp: time.Now(), Scheme: "v1"})
	r := e.do(e.hook("POST", "stripe", "application/json", body, "Stripe-Signature", sp.Header))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	after := answer(t, r).Events[0]

	b, _ := json.Marshal(receiver.ReplayRequest{Since: since, ReplayID: "both"})
	req, _ := http.NewRequest(http.MethodPost, e.base+"/v1/projects/"+project+"/integrations/stripe/replay", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	rr := e.do(req)
	var page receiver.ReplayPage
	if err := json.Unmarshal([]byte(rr.body), &page); err != nil || rr.status != 200 {
		t.Fatalf("replay: %d %s", rr.status, rr.body)
	}
	if page.Replayed != 2 || page.Events[before.Id] == "" || page.Events[after] == "" {
		t.Fatalf("replay %+v, want both %s (five-token subject) and %s (its own subject)", page, before.Id, after)
	}
}

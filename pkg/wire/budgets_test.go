package wire_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/wire"
)

func TestBudgetsFor(t *testing.T) {
	cases := []struct {
		name       string
		maxPayload int64
		want       wire.Budgets
	}{
		{"stock 1 MB", 1 << 20, wire.Budgets{MaxPayload: 1 << 20, Headers: 16 << 10, Record: 1<<20 - 16<<10,
			Inline: 64 << 10, Preview: 512, HeaderValue: 1 << 10, DecisionPage: (1<<20 - 16<<10 - 64<<10 - 16<<10) / wire.CandidateMaxJSON}},
		{"unknown means stock", 0, wire.BudgetsFor(1 << 20)},
		{"negative means stock", -1, wire.BudgetsFor(1 << 20)},
		{"8 MB keeps the ceilings", 8 << 20, wire.Budgets{MaxPayload: 8 << 20, Headers: 16 << 10, Record: 8<<20 - 16<<10,
			Inline: 64 << 10, Preview: 512, HeaderValue: 1 << 10, DecisionPage: (8<<20 - 16<<10 - 64<<10 - 16<<10) / wire.CandidateMaxJSON}},
		{"64 KiB scales down", 64 << 10, wire.Budgets{MaxPayload: 64 << 10, Headers: 8 << 10, Record: 56 << 10,
			Inline: 7 << 10, Preview: 512, HeaderValue: 1 << 10, DecisionPage: (56<<10 - 7<<10 - 16<<10) / wire.CandidateMaxJSON}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := wire.BudgetsFor(c.maxPayload)
			if got != c.want {
				t.Fatalf("BudgetsFor(%d) = %+v, want %+v", c.maxPayload, got, c.want)
			}
			if got.Record+got.Headers > got.MaxPayload || got.Inline > got.Record || got.Preview > got.Inline ||
				got.HeaderValue > got.Headers || got.DecisionPage < 1 {
				t.Errorf("budgets out of order: %+v", got)
			}
		})
	}
}

// TestDecisionPageFits builds a decision page of DecisionPage candidates,
// each at the worst size the bounds allow, with a trigger of Inline bytes,
// and checks it fits in Record.
func TestDecisionPageFits(t *testing.T) {
	for _, mp := range []int64{1 << 20, 8 << 20} {
		b := wire.BudgetsFor(mp)
		worstID := strings.Repeat("<", wire.MaxIDLen) // each escapes to \u003c
		type candidate struct {
			Workflow   string `json:"workflow"`
			User       string `json:"user,omitempty"`
			Credential string `json:"credential,omitempty"`
			Outcome    string `json:"outcome"`
			RunID      string `json:"runId,omitempty"`
			Reason     string `json:"reason,omitempty"`
			Message    string `json:"message,omitempty"`
		}
		c := candidate{Workflow: worstID, User: worstID, Credential: worstID, Outcome: strings.Repeat("o", 16),
			RunID: strings.Repeat("r", 64), Reason: strings.Repeat("x", 64), Message: strings.Repeat("&", wire.MaxCandidateMessage)}
		one, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(one) > wire.CandidateMaxJSON {
			t.Fatalf("a worst-case candidate is %d bytes, over CandidateMaxJSON %d", len(one), wire.CandidateMaxJSON)
		}
		cands := make([]candidate, b.DecisionPage)
		for i := range cands {
			cands[i] = c
		}
		page, err := json.Marshal(map[string]any{
			"eventId": strings.Repeat("E", 26), "project": worstID, "kind": "APP_EVENT", "name": worstID, "user": worstID,
			"error":      strings.Repeat("<", wire.MaxHeaderValue),
			"trigger":    json.RawMessage(`"` + strings.Repeat("t", b.Inline-2) + `"`),
			"receivedAt": time.Now(), "decidedAt": time.Now(), "candidates": cands,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > b.Record {
			t.Errorf("max payload %d: a page of %d worst candidates is %d bytes, over Record %d", mp, b.DecisionPage, len(page), b.Record)
		}
	}
}

func TestFromConn(t *testing.T) {
	cases := []struct {
		name       string
		maxPayload int32
		want       int
	}{
		{"stock server", 0, 1 << 20},
		{"server with 2 MB", 2 << 20, 2 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := brokertest.StartWith(t, broker.EmbeddedOptions{MaxPayload: c.maxPayload})
			b := wire.FromConn(srv.NC)
			if b.MaxPayload != c.want || b != wire.BudgetsFor(int64(c.want)) {
				t.Errorf("FromConn = %+v, want the budgets of %d", b, c.want)
			}
			// A record of exactly Record bytes plus a full header room publishes.
			_, err := srv.JS.Publish(context.Background(), "sb.trigger.p.app_event.u", make([]byte, b.Record))
			if err != nil {
				t.Errorf("a record of Record bytes: %v", err)
			}
		})
	}
}

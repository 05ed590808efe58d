package ingress_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/services/ingress"
)

func TestParseEventRequest(t *testing.T) {
	for _, tc := range []struct {
		name, body, code string
	}{
		{"ok", `{"name":"A","payload":{"x":1}}`, ""},
		{"no payload", `{"name":"A"}`, ""},
		{"malformed", `{"name":`, "invalid_json"},
		{"not an object", `[1,2]`, "invalid_json"},
		{"missing name", `{"payload":{}}`, "missing_field"},
		{"blank name", `{"name":"  "}`, "missing_field"},
		{"wrong type", `{"name":5}`, "invalid_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ingress.ParseEventRequest([]byte(tc.body))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !json.Valid(req.Payload) {
					t.Fatalf("payload %q", req.Payload)
				}
				return
			}
			ae, ok := apierr.As(err)
			if !ok || ae.Code != tc.code || ae.Status != http.StatusBadRequest {
				t.Fatalf("err = %v, want 400 %s", err, tc.code)
			}
		})
	}
}

func TestParsePrefer(t *testing.T) {
	for _, tc := range []struct {
		in    string
		async bool
		wait  time.Duration
	}{
		{"", false, 0},
		{"respond-async", true, 0},
		{"wait=5", false, 5 * time.Second},
		{"Respond-Async, wait=10", true, 10 * time.Second},
		{"wait=-1", false, 0},
		{"wait=x", false, 0},
		{"wait=99999999999999", false, 300 * time.Second},
	} {
		p := ingress.ParsePrefer(tc.in)
		if p.RespondAsync != tc.async || p.Wait != tc.wait {
			t.Errorf("ParsePrefer(%q) = %+v", tc.in, p)
		}
	}
}

// FuzzParseEventRequest: arbitrary bodies never panic, and every rejection
// is a 4xx API error (a client mistake is never a 500).
func FuzzParseEventRequest(f *testing.F) {
	for _, s := range []string{`{"name":"A","payload":{"x":1}}`, `{"name":""}`, `{`, `null`, `{"name":"A","occurredAt":"2024-01-01T00:00:00Z"}`, `{"name":"A","payload":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ingress.ParseEventRequest(body)
		if err != nil {
			ae, ok := apierr.As(err)
			if !ok || ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("rejection is not a 4xx API error: %v", err)
			}
			return
		}
		if req.Name == "" || !json.Valid(req.Payload) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

// FuzzParsePrefer: the Prefer header parser never panics and never yields
// a negative wait.
func FuzzParsePrefer(f *testing.F) {
	f.Add("respond-async, wait=5")
	f.Fuzz(func(t *testing.T, h string) {
		if p := ingress.ParsePrefer(h); p.Wait < 0 {
			t.Fatalf("negative wait from %q", h)
		}
	})
}

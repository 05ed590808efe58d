package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestRunShowsJSONBody: a request trigger's JSON body reads as JSON in the
// run history (GET …/runs/{id}), not as the base64 of its bytes.
func TestRunShowsJSONBody(t *testing.T) {
	l := newListener(t) // quote's notify step posts here
	sys, _ := startDev(t, dev.Options{ExamplesDir: examplesDir, ExamplesListener: strings.TrimPrefix(l.URL, "http://")})
	a := newAPI(sys.HTTPAddr)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", sys.APIKey, map[string]any{})
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := a.must(t, http.StatusCreated, "POST", "/v1/projects/dev/workflows/quote/trigger", token, map[string]any{"item": "pen", "qty": 4})
	run := waitRun(t, a, sys.APIKey, r.Header.Get("X-Switchboard-Run-Id"))
	var trig struct {
		Request struct {
			Body map[string]any `json:"body"`
		} `json:"request"`
	}
	if err := json.Unmarshal(run.Trigger, &trig); err != nil {
		t.Fatalf("run trigger %s: %v", run.Trigger, err)
	}
	if trig.Request.Body["item"] != "pen" || trig.Request.Body["qty"] != float64(4) {
		t.Fatalf("run trigger %s, want request.body {item: pen, qty: 4}", run.Trigger)
	}
}

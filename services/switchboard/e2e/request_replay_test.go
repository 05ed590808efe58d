package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestRequestReplayLargeResponse: a repeated synchronous request whose
// original response was over the inline budget (the run recorded the
// response step in the object store) gets that whole response again.
func TestRequestReplayLargeResponse(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", sys.APIKey, `kind: Workflow
id: rq-big
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 200
    json: {pad: "{{ repeat('x', 100000) }}", run: "{{ run.id }}"}
`)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", sys.APIKey, map[string]any{})
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first := a.must(t, http.StatusOK, "POST", "/v1/projects/dev/workflows/rq-big/trigger", token, map[string]any{}, "Idempotency-Key", "big-1")
	if len(first.Body) < 100000 {
		t.Fatalf("original answer of %d bytes", len(first.Body))
	}
	again := a.must(t, http.StatusOK, "POST", "/v1/projects/dev/workflows/rq-big/trigger", token, map[string]any{}, "Idempotency-Key", "big-1")
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(first.Body) {
		t.Fatalf("repeat: %d bytes (replayed %q), want the original %d bytes", len(again.Body), again.Header.Get("Idempotent-Replayed"), len(first.Body))
	}
}

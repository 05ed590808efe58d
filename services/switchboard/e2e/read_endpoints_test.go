package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// TestReadProject: GET /v1/projects/{p} shows the project to the operator
// and to its API key (key prefixes, never hashes), not to a user token; a
// project that does not exist is 404 project_not_found.
func TestReadProject(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev", sys.AdminToken, map[string]any{"allowedOrigins": []string{"http://localhost:3000"}})
	for _, tok := range []string{sys.AdminToken, sys.APIKey} {
		var p struct {
			ID             string   `json:"id"`
			APIKeys        []string `json:"apiKeys"`
			UserTokenKeys  []string `json:"userTokenKeys"`
			AllowedOrigins []string `json:"allowedOrigins"`
		}
		r := a.must(t, http.StatusOK, "GET", "/v1/projects/dev", tok, nil)
		r.decode(t, &p)
		if p.ID != "dev" || len(p.APIKeys) != 1 || !strings.HasSuffix(p.APIKeys[0], "…") || len(p.UserTokenKeys) != 1 ||
			len(p.AllowedOrigins) != 1 || p.AllowedOrigins[0] != "http://localhost:3000" {
			t.Fatalf("GET project: %s", r)
		}
		if strings.Contains(r.String(), sys.APIKey) || strings.Contains(r.String(), "hash") {
			t.Fatalf("GET project shows a key or its hash: %s", r)
		}
	}
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, a.call(t, "GET", "/v1/projects/dev", token, nil), http.StatusForbidden, "forbidden")
	expectError(t, a.call(t, "GET", "/v1/projects/nope", sys.AdminToken, nil), http.StatusNotFound, "project_not_found")
}

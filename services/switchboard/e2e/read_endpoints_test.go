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

// TestReadUsersAndCredentials: GET …/users lists the project's users in
// pages (API key only), GET …/users/{u}/credentials/{c} shows one
// credential without its secret, and GET …/workflows lists the workflows.
func TestReadUsersAndCredentials(t *testing.T) {
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	l := newListener(t)
	setupWalkthrough(t, a, key, l)
	for _, u := range []string{"u2", "u3"} {
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/"+u, key, map[string]any{"metadata": map[string]any{"n": u}})
	}

	var seen []string
	cursor := ""
	for range 10 {
		var page struct {
			Users []struct {
				ID       string         `json:"id"`
				Metadata map[string]any `json:"metadata"`
			} `json:"users"`
			NextCursor string `json:"nextCursor"`
		}
		path := "/v1/projects/dev/users?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		a.must(t, http.StatusOK, "GET", path, key, nil).decode(t, &page)
		for _, u := range page.Users {
			seen = append(seen, u.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "u1,u2,u3" {
		t.Fatalf("users listed %v, want u1, u2 and u3 in write order", seen)
	}
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, a.call(t, "GET", "/v1/projects/dev/users", token, nil), http.StatusForbidden, "forbidden")
	expectError(t, a.call(t, "GET", "/v1/projects/dev/users?limit=0", key, nil), http.StatusBadRequest, "invalid_field")

	r := a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1/credentials/c1", key, nil)
	var cred struct {
		ID          string `json:"id"`
		Integration string `json:"integration"`
		Status      string `json:"status"`
	}
	r.decode(t, &cred)
	if cred.ID != "c1" || cred.Integration != "crm" || cred.Status != "VALID" {
		t.Fatalf("credential: %s", r)
	}
	if strings.Contains(r.String(), "tok-c1") {
		t.Fatalf("the credential shows its secret: %s", r)
	}
	// The user may read their own credential with their token.
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1/credentials/c1", token, nil)
	expectError(t, a.call(t, "GET", "/v1/projects/dev/users/u1/credentials/nope", key, nil), http.StatusNotFound, "credential_not_found")

	var wfs struct {
		Workflows []struct {
			ID string `json:"id"`
		} `json:"workflows"`
	}
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/workflows", key, nil).decode(t, &wfs)
	if len(wfs.Workflows) != 1 || wfs.Workflows[0].ID != workflowID {
		t.Fatalf("workflows: %+v", wfs)
	}
}

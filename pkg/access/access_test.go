package access_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
)

var keys = sync.OnceValue(func() [3]*rsa.PrivateKey {
	var ks [3]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const adminToken = "admin-secret-token"

type fixture struct {
	cat      *catalog.Catalog
	checker  *access.Checker
	acmeKey  string
	otherKey string
}

// setup: project acme (API key, user token key 0), project other (API key,
// user token key 1), project bare (no keys). Key 2 belongs to nobody.
func setup(t *testing.T) *fixture {
	t.Helper()
	cat := brokertest.Catalog(t, brokertest.Start(t).JS)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{cat: cat}
	k := keys()
	var rev uint64
	mk := func(p string, key *rsa.PrivateKey) string {
		apiKey, err := auth.GenerateAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		_, rev, err = cat.UpdateProject(ctx, p, func(pr *catalog.Project) error {
			if key != nil {
				pr.APIKeys = []catalog.APIKey{{ID: "k", Hash: auth.HashAPIKey(apiKey)}}
				pr.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&key.PublicKey)}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return apiKey
	}
	f.acmeKey = mk("acme", k[0])
	f.otherKey = mk("other", k[1])
	mk("bare", nil)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := cat.WaitRevision(wctx, rev); err != nil {
		t.Fatal(err)
	}
	f.checker = access.New(access.Options{Catalog: cat, AdminToken: adminToken, Now: func() time.Time { return now }})
	return f
}

func mint(t *testing.T, key *rsa.PrivateKey, project, sub string, issued time.Time, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.MintUserToken(key, project, sub, ttl, issued)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func req(authz string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

// wantStatus checks err is an *apierr.Error with status (0 means no error).
func wantStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	if status == 0 {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	ae, ok := apierr.As(err)
	if !ok {
		t.Fatalf("err = %v (%T), want *apierr.Error %d", err, err, status)
	}
	if ae.Status != status || (code != "" && ae.Code != code) {
		t.Fatalf("err = %d %s (%v), want %d %s", ae.Status, ae.Code, ae, status, code)
	}
}

func TestAdmin(t *testing.T) {
	f := setup(t)
	cases := []struct {
		name   string
		authz  string
		status int
	}{
		{"ok", "Bearer " + adminToken, 0},
		{"lowercase scheme", "bearer " + adminToken, 0},
		{"invalid", "Bearer nope", http.StatusUnauthorized},
		{"prefix of the token", "Bearer " + adminToken[:5], http.StatusUnauthorized},
		{"missing", "", http.StatusUnauthorized},
		{"basic scheme", "Basic " + adminToken, http.StatusUnauthorized},
		{"no token", "Bearer", http.StatusUnauthorized},
		{"api key", "Bearer " + f.acmeKey, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantStatus(t, f.checker.Admin(req(c.authz)), c.status, "")
		})
	}
	t.Run("disabled", func(t *testing.T) {
		ch := access.New(access.Options{Catalog: f.cat})
		wantStatus(t, ch.Admin(req("Bearer anything")), http.StatusForbidden, "forbidden")
		wantStatus(t, ch.Admin(req("")), http.StatusUnauthorized, "unauthorized")
		// An empty admin token never matches in Project either.
		_, err := ch.Project(req("Bearer x"), "acme")
		wantStatus(t, err, http.StatusUnauthorized, "unauthorized")
	})
}

func TestProject(t *testing.T) {
	f := setup(t)
	k := keys()
	hour := time.Hour
	cases := []struct {
		name    string
		authz   string
		status  int
		role    access.Role
		user    string
		message string
	}{
		{"missing", "", 401, 0, "", "missing Authorization"},
		{"wrong scheme", "Token abc", 401, 0, "", "Bearer <token>"},
		{"admin token", "Bearer " + adminToken, 0, access.RoleAdmin, "", ""},
		{"api key of the project", "Bearer " + f.acmeKey, 0, access.RoleAPIKey, "", ""},
		{"api key of another project", "Bearer " + f.otherKey, 403, 0, "", "another project"},
		{"unknown api key", "Bearer sk_doesnotexist", 401, 0, "", "unknown API key"},
		{"user token", "Bearer " + mint(t, k[0], "acme", "alice", now.Add(-time.Minute), hour), 0, access.RoleUser, "alice", ""},
		{"user token lowercase scheme", "bearer " + mint(t, k[0], "acme", "bob", now, hour), 0, access.RoleUser, "bob", ""},
		{"user token without aud", "Bearer " + mint(t, k[0], "", "carol", now, hour), 0, access.RoleUser, "carol", ""},
		{"expired", "Bearer " + mint(t, k[0], "acme", "alice", now.Add(-2*hour), hour), 401, 0, "", "expired"},
		{"expired within leeway is ok", "Bearer " + mint(t, k[0], "acme", "dave", now.Add(-hour-10*time.Second), hour), 0, access.RoleUser, "dave", ""},
		{"wrong key", "Bearer " + mint(t, k[2], "acme", "alice", now, hour), 401, 0, "", "invalid token"},
		{"other project's key with acme aud", "Bearer " + mint(t, k[1], "acme", "alice", now, hour), 401, 0, "", "invalid token"},
		{"valid token of another project", "Bearer " + mint(t, k[1], "other", "alice", now, hour), 403, 0, "", `project "other"`},
		{"forged token of another project", "Bearer " + mint(t, k[0], "other", "alice", now, hour), 401, 0, "", "invalid token"},
		{"token of an unknown project", "Bearer " + mint(t, k[0], "ghost", "alice", now, hour), 401, 0, "", `unknown project "ghost"`},
		{"token of a project without keys", "Bearer " + mint(t, k[0], "bare", "alice", now, hour), 401, 0, "", "invalid token"},
		{"garbage", "Bearer not.a.jwt", 401, 0, "", "invalid token"},
		{"signed token with a 5,000-byte sub", "Bearer " + mint(t, k[0], "acme", strings.Repeat("u", 5000), now, hour), 401, 0, "", "sub (the user id) is longer than 200 bytes"},
		{"signed token with a 200-byte sub", "Bearer " + mint(t, k[0], "acme", strings.Repeat("v", 200), now, hour), 0, access.RoleUser, strings.Repeat("v", 200), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Twice: the second call may be answered from the token cache
			// and must agree.
			for i := range 2 {
				pr, err := f.checker.Project(req(c.authz), "acme")
				wantStatus(t, err, c.status, "")
				if c.status != 0 {
					if !strings.Contains(err.Error(), c.message) {
						t.Errorf("call %d: error %q does not contain %q", i, err, c.message)
					}
					continue
				}
				want := access.Principal{Role: c.role, Project: "acme", User: c.user}
				if pr != want {
					t.Errorf("call %d: Principal = %+v, want %+v", i, pr, want)
				}
			}
		})
	}
	t.Run("project without keys", func(t *testing.T) {
		_, err := f.checker.Project(req("Bearer "+mint(t, k[0], "", "alice", now, hour)), "bare")
		wantStatus(t, err, 401, "unauthorized")
		if !strings.Contains(err.Error(), "no user token keys") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("api key on the other project", func(t *testing.T) {
		pr, err := f.checker.Project(req("Bearer "+f.otherKey), "other")
		wantStatus(t, err, 0, "")
		if pr != (access.Principal{Role: access.RoleAPIKey, Project: "other"}) {
			t.Errorf("Principal = %+v", pr)
		}
	})
}

func TestExpiryAgainstClock(t *testing.T) {
	f := setup(t)
	clock := now
	ch := access.New(access.Options{Catalog: f.cat, Now: func() time.Time { return clock }})
	tok := mint(t, keys()[0], "acme", "alice", now, time.Minute)
	if _, err := ch.Project(req("Bearer "+tok), "acme"); err != nil {
		t.Fatal(err)
	}
	// The cached verification must not outlive the token.
	clock = now.Add(2 * time.Minute)
	_, err := ch.Project(req("Bearer "+tok), "acme")
	wantStatus(t, err, 401, "unauthorized")
}

func TestKeyRotationInvalidatesCache(t *testing.T) {
	f := setup(t)
	k := keys()
	tok := mint(t, k[0], "acme", "alice", now, time.Hour)
	if _, err := f.checker.Project(req("Bearer "+tok), "acme"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, rev, err := f.cat.UpdateProject(ctx, "acme", func(p *catalog.Project) error {
		p.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&k[2].PublicKey)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	_, err = f.checker.Project(req("Bearer "+tok), "acme")
	wantStatus(t, err, 401, "unauthorized")
	pr, err := f.checker.Project(req("Bearer "+mint(t, k[2], "acme", "alice", now, time.Hour)), "acme")
	wantStatus(t, err, 0, "")
	if pr.User != "alice" || pr.Role != access.RoleUser {
		t.Errorf("Principal = %+v", pr)
	}
}

func TestActingUser(t *testing.T) {
	user := access.Principal{Role: access.RoleUser, Project: "acme", User: "alice"}
	key := access.Principal{Role: access.RoleAPIKey, Project: "acme"}
	admin := access.Principal{Role: access.RoleAdmin, Project: "acme"}
	cases := []struct {
		name      string
		pr        access.Principal
		requested string
		want      string
		status    int
		code      string
	}{
		{"user token, no request", user, "", "alice", 0, ""},
		{"user token, itself", user, "alice", "alice", 0, ""},
		{"user token for someone else", user, "bob", "", 403, "forbidden"},
		{"api key names user", key, "bob", "bob", 0, ""},
		{"api key without user", key, "", "", 400, "missing_user"},
		{"admin names user", admin, "carol", "carol", 0, ""},
		{"admin without user", admin, "", "", 400, "missing_user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := access.ActingUser(c.pr, c.requested)
			wantStatus(t, err, c.status, c.code)
			if got != c.want {
				t.Errorf("ActingUser = %q, want %q", got, c.want)
			}
			if c.code == "missing_user" {
				ae, _ := apierr.As(err)
				if ae.Field != "user" {
					t.Errorf("Field = %q, want user", ae.Field)
				}
			}
		})
	}
}

// ExistingProject authenticates before it looks the project up, so an
// unauthorized caller cannot probe which projects exist.
func TestExistingProject(t *testing.T) {
	f := setup(t)
	for _, c := range []struct {
		name, project, authz string
		status               int
		code                 string
	}{
		{"existing project", "acme", "Bearer " + f.acmeKey, 0, ""},
		{"unknown project, operator", "ghost", "Bearer " + adminToken, 404, "project_not_found"},
		{"unknown project, no credentials", "ghost", "", 401, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.checker.ExistingProject(req(c.authz), c.project)
			wantStatus(t, err, c.status, c.code)
		})
	}
	wantStatus(t, access.ServerSide(access.Principal{Role: access.RoleUser}), 403, "forbidden")
	wantStatus(t, access.ServerSide(access.Principal{Role: access.RoleAPIKey}), 0, "")
}

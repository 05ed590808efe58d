package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/workflow"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

const (
	testMaxBody   = 4096
	testMaxImport = 64 << 10
)

type env struct {
	srv      *httptest.Server
	cat      *catalog.Catalog
	dir      *directory.Directory
	key      string // API key of project "proj"
	otherKey string // API key of project "other"
	tokU1    string // user token of proj/u1
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	dir := brokertest.Directory(t, srv.JS)
	logger := slog.New(slog.DiscardHandler)

	signing, _, err := auth.LoadOrCreateSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ev := &env{cat: cat, dir: dir}
	var rev uint64
	for _, p := range []string{"proj", "other"} {
		key, err := auth.GenerateAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		_, r, err := cat.UpdateProject(ctx, p, func(pr *catalog.Project) error {
			pr.APIKeys = append(pr.APIKeys, catalog.APIKey{ID: "k1", Hash: auth.HashAPIKey(key), Prefix: key[:8]})
			pr.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&signing.PublicKey)}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rev = r
		if p == "proj" {
			ev.key = key
		} else {
			ev.otherKey = key
		}
	}
	objs, err := workflow.Parse([]byte(`
kind: Integration
id: hubspot
auth: {type: bearer}
---
kind: Workflow
id: contact-sync
integration: hubspot
trigger: {type: app_event, event: Contact Created}
steps:
  - {id: work, type: function, function: noop}
---
kind: Workflow
id: plain
trigger: {type: app_event, event: Ping}
steps:
  - {id: work, type: function, function: noop}
`), "proj")
	if err != nil {
		t.Fatal(err)
	}
	r, err := cat.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	rev = max(rev, r)
	if err := cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	ev.tokU1, err = auth.MintUserToken(signing, "proj", "u1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	svc, err := lifecycle.New(lifecycle.Options{
		Catalog:        cat,
		Directory:      dir,
		Access:         access.New(access.Options{Catalog: cat, AdminToken: "admin-secret"}),
		MaxBody:        testMaxBody,
		MaxImportBytes: testMaxImport,
		Logger:         logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(logger)
	svc.Register(e)
	ev.srv = httptest.NewServer(e)
	t.Cleanup(ev.srv.Close)
	return ev
}

type response struct {
	status int
	body   []byte
}

func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var eb struct {
		Error *apierr.Error `json:"error"`
	}
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == nil {
		return ""
	}
	return eb.Error.Code
}

func (ev *env) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ev.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := ev.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, body: b}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return v
}

type userView struct {
	directory.User
	Credentials []directory.Credential `json:"credentials"`
}

// user and cred read the directory as the service wrote it.
func (ev *env) user(u string) (*directory.User, bool) {
	us, err := ev.dir.User(context.Background(), "proj", u)
	return us, err == nil
}

func (ev *env) cred(u, c string) (*directory.Credential, bool) {
	cr, err := ev.dir.Credential(context.Background(), "proj", u, c)
	return cr, err == nil
}

func (ev *env) secret(t *testing.T, u, c string) map[string]any {
	t.Helper()
	s, err := ev.dir.Secret(context.Background(), "proj", u, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAPI(t *testing.T) {
	ev := newEnv(t)
	const (
		u1   = "/v1/projects/proj/users/u1"
		cred = u1 + "/credentials/hs-1"
	)
	bigSecret := `{"integration":"hubspot","secret":{"accessToken":"` + strings.Repeat("x", testMaxBody) + `"}}`

	cases := []struct {
		name   string
		method string
		path   string
		token  string
		body   string
		status int
		code   string
		check  func(t *testing.T, r response)
	}{
		{name: "create user", method: http.MethodPut, path: u1, token: ev.key,
			body: `{"metadata":{"timezone":"Europe/Paris"}}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				u := decode[directory.User](t, r.body)
				if u.ID != "u1" || u.Project != "proj" || u.Metadata["timezone"] != "Europe/Paris" {
					t.Fatalf("user = %+v", u)
				}
				if got, ok := ev.user("u1"); !ok || got.Metadata["timezone"] != "Europe/Paris" {
					t.Fatalf("catalog user = %+v, %v", got, ok)
				}
			}},
		{name: "user token updates its own user", method: http.MethodPut, path: u1, token: ev.tokU1,
			body: `{"metadata":{"timezone":"UTC","plan":"pro"}}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				if u := decode[directory.User](t, r.body); u.Metadata["plan"] != "pro" {
					t.Fatalf("user = %+v", u)
				}
			}},
		{name: "empty body keeps metadata", method: http.MethodPut, path: u1, token: ev.key, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				if u := decode[directory.User](t, r.body); u.Metadata["plan"] != "pro" {
					t.Fatalf("user = %+v", u)
				}
			}},
		{name: "no token", method: http.MethodPut, path: u1, body: `{}`, status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "bad token", method: http.MethodGet, path: u1, token: "nope", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "unknown api key", method: http.MethodGet, path: u1, token: "sk_unknown", status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "token of u1 acting on u2", method: http.MethodPut, path: "/v1/projects/proj/users/u2", token: ev.tokU1,
			body: `{}`, status: http.StatusForbidden, code: "forbidden"},
		{name: "token of u1 reading u2", method: http.MethodGet, path: "/v1/projects/proj/users/u2", token: ev.tokU1,
			status: http.StatusForbidden, code: "forbidden"},
		{name: "api key of another project", method: http.MethodPut, path: u1, token: ev.otherKey,
			body: `{}`, status: http.StatusForbidden, code: "forbidden"},
		{name: "user token on another project", method: http.MethodGet, path: "/v1/projects/other/users/u1", token: ev.tokU1,
			status: http.StatusForbidden, code: "forbidden"},
		{name: "unknown project (admin)", method: http.MethodPut, path: "/v1/projects/nope/users/u1", token: "admin-secret",
			body: `{}`, status: http.StatusNotFound, code: "project_not_found"},
		{name: "invalid json", method: http.MethodPut, path: u1, token: ev.key, body: `{"metadata":`,
			status: http.StatusBadRequest, code: "invalid_json"},
		{name: "metadata not an object", method: http.MethodPut, path: u1, token: ev.key, body: `{"metadata":[1]}`,
			status: http.StatusBadRequest, code: "invalid_field"},
		{name: "user id too long", method: http.MethodPut, path: "/v1/projects/proj/users/" + strings.Repeat("u", 201), token: ev.key,
			body: `{}`, status: http.StatusBadRequest, code: "invalid_id"},
		{name: "unknown user", method: http.MethodGet, path: "/v1/projects/proj/users/ghost", token: ev.key,
			status: http.StatusNotFound, code: "user_not_found"},

		{name: "missing integration", method: http.MethodPut, path: cred, token: ev.key, body: `{"secret":{"accessToken":"t"}}`,
			status: http.StatusBadRequest, code: "missing_field"},
		{name: "invalid integration", method: http.MethodPut, path: cred, token: ev.key, body: `{"integration":"Hub Spot"}`,
			status: http.StatusBadRequest, code: "invalid_field"},
		{name: "invalid status", method: http.MethodPut, path: cred, token: ev.key, body: `{"integration":"hubspot","status":"ok"}`,
			status: http.StatusBadRequest, code: "invalid_field"},
		{name: "credential body invalid json", method: http.MethodPut, path: cred, token: ev.key, body: `[`,
			status: http.StatusBadRequest, code: "invalid_json"},
		{name: "oversize body", method: http.MethodPut, path: cred, token: ev.key, body: bigSecret,
			status: http.StatusRequestEntityTooLarge, code: "payload_too_large"},
		{name: "connect credential", method: http.MethodPut, path: cred, token: ev.key,
			body:   `{"integration":"hubspot","providerAccountId":"portal-42","secret":{"accessToken":"s3cr3t-token"},"settings":{"pipeline":"default"}}`,
			status: http.StatusOK,
			check: func(t *testing.T, r response) {
				if bytes.Contains(r.body, []byte("s3cr3t-token")) {
					t.Fatalf("secret echoed: %s", r.body)
				}
				c := decode[directory.Credential](t, r.body)
				if c.ID != "hs-1" || c.Integration != "hubspot" || c.ProviderAccountID != "portal-42" || c.Status != directory.CredentialValid {
					t.Fatalf("credential = %+v", c)
				}
				stored, ok := ev.cred("u1", "hs-1")
				if !ok || ev.secret(t, "u1", "hs-1")["accessToken"] != "s3cr3t-token" || stored.Settings["pipeline"] != "default" || stored.Secret != nil {
					t.Fatalf("stored credential = %+v, %v", stored, ok)
				}
			}},
		{name: "update credential keeps secret", method: http.MethodPut, path: cred, token: ev.tokU1,
			body: `{"integration":"hubspot","status":"INVALID"}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				stored, _ := ev.cred("u1", "hs-1")
				if stored.Status != directory.CredentialInvalid || ev.secret(t, "u1", "hs-1")["accessToken"] != "s3cr3t-token" {
					t.Fatalf("stored credential = %+v", stored)
				}
			}},
		{name: "integration change", method: http.MethodPut, path: cred, token: ev.key, body: `{"integration":"slack"}`,
			status: http.StatusConflict, code: "integration_mismatch"},
		{name: "connect creates user", method: http.MethodPut, path: "/v1/projects/proj/users/new%2Fuser/credentials/sl", token: ev.key,
			body: `{"integration":"slack","secret":{"accessToken":"x"}}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				if _, ok := ev.user("new/user"); !ok {
					t.Fatal("user new/user was not created")
				}
				if _, ok := ev.cred("new/user", "sl"); !ok {
					t.Fatal("credential not stored")
				}
			}},
		{name: "get user with credentials", method: http.MethodGet, path: u1, token: ev.tokU1, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				if bytes.Contains(r.body, []byte("s3cr3t-token")) {
					t.Fatalf("secret echoed: %s", r.body)
				}
				v := decode[userView](t, r.body)
				if v.ID != "u1" || len(v.Credentials) != 1 || v.Credentials[0].ID != "hs-1" {
					t.Fatalf("view = %s", r.body)
				}
			}},

		{name: "disable workflow for credential", method: http.MethodPut, path: cred + "/workflows/contact-sync", token: ev.key,
			body: `{"enabled":false}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				if c := decode[directory.Credential](t, r.body); c.Workflows["contact-sync"] != false {
					t.Fatalf("credential = %s", r.body)
				}
				wf, _ := ev.cat.Workflow("proj", "contact-sync")
				stored, _ := ev.cred("u1", "hs-1")
				if stored.Enabled(wf) {
					t.Fatal("workflow still enabled")
				}
			}},
		{name: "enable workflow for credential", method: http.MethodPut, path: cred + "/workflows/contact-sync", token: ev.tokU1,
			body: `{"enabled":true}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				wf, _ := ev.cat.Workflow("proj", "contact-sync")
				stored, _ := ev.cred("u1", "hs-1")
				if !stored.Enabled(wf) {
					t.Fatal("workflow not enabled")
				}
			}},
		{name: "enablement missing enabled", method: http.MethodPut, path: cred + "/workflows/contact-sync", token: ev.key,
			body: `{}`, status: http.StatusBadRequest, code: "missing_field"},
		{name: "enablement unknown credential", method: http.MethodPut, path: u1 + "/credentials/nope/workflows/contact-sync", token: ev.key,
			body: `{"enabled":true}`, status: http.StatusNotFound, code: "credential_not_found",
			check: func(t *testing.T, r response) {
				if _, ok := ev.cred("u1", "nope"); ok {
					t.Fatal("enablement created a credential")
				}
			}},
		{name: "enablement unknown workflow", method: http.MethodPut, path: cred + "/workflows/nope", token: ev.key,
			body: `{"enabled":true}`, status: http.StatusNotFound, code: "workflow_not_found"},
		{name: "credential enablement of workflow without integration", method: http.MethodPut, path: cred + "/workflows/plain", token: ev.key,
			body: `{"enabled":true}`, status: http.StatusConflict, code: "integration_mismatch"},
		{name: "disable workflow for user", method: http.MethodPut, path: u1 + "/workflows/plain", token: ev.tokU1,
			body: `{"enabled":false}`, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				wf, _ := ev.cat.Workflow("proj", "plain")
				u, _ := ev.user("u1")
				if u.Enabled(wf) {
					t.Fatal("workflow still enabled for the user")
				}
			}},
		{name: "user enablement of workflow with integration", method: http.MethodPut, path: u1 + "/workflows/contact-sync", token: ev.key,
			body: `{"enabled":true}`, status: http.StatusConflict, code: "integration_mismatch"},

		{name: "delete credential", method: http.MethodDelete, path: cred, token: ev.key, status: http.StatusNoContent,
			check: func(t *testing.T, r response) {
				if _, ok := ev.cred("u1", "hs-1"); ok {
					t.Fatal("credential still present")
				}
			}},
		{name: "delete missing credential", method: http.MethodDelete, path: cred, token: ev.key,
			status: http.StatusNotFound, code: "credential_not_found"},
		{name: "reconnect with another integration after delete", method: http.MethodPut, path: cred, token: ev.key,
			body: `{"integration":"slack"}`, status: http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ev.do(t, tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if tc.code != "" {
				if got := r.errorCode(t); got != tc.code {
					t.Fatalf("code = %q, want %q; body %s", got, tc.code, r.body)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestImportEndpoint(t *testing.T) {
	ev := newEnv(t)
	const path = "/v1/projects/proj/users/import"
	good := strings.Join([]string{
		`{"id":"imp-1","metadata":{"timezone":"UTC"},"credentials":[{"id":"c1","integration":"hubspot","providerAccountId":"p-1","secret":{"accessToken":"t"}}]}`,
		`{"id":"imp-2"}`,
		`not json`,
		`{"id":"imp-3","credentials":[{"id":"c1","integration":"nope"}]}`,
	}, "\n")
	cases := []struct {
		name        string
		token       string
		contentType string
		body        string
		status      int
		code        string
		check       func(t *testing.T, r response)
	}{
		{name: "user token", token: ev.tokU1, contentType: lifecycle.ContentTypeNDJSON, body: good, status: http.StatusForbidden, code: "forbidden"},
		{name: "no token", contentType: lifecycle.ContentTypeNDJSON, body: good, status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "json body", token: ev.key, contentType: "application/json", body: good, status: http.StatusUnsupportedMediaType, code: "unsupported_media_type"},
		{name: "over the import cap", token: ev.key, contentType: lifecycle.ContentTypeNDJSON,
			body: strings.Repeat(`{"id":"x"}`+"\n", testMaxImport/10+1), status: http.StatusRequestEntityTooLarge, code: "payload_too_large"},
		{name: "import", token: ev.key, contentType: lifecycle.ContentTypeNDJSON + "; charset=utf-8", body: good, status: http.StatusOK,
			check: func(t *testing.T, r response) {
				res := decode[lifecycle.ImportResponse](t, r.body)
				if res.Users != 2 || res.Credentials != 1 || len(res.Errors) != 2 || res.Truncated {
					t.Fatalf("response = %s", r.body)
				}
				if res.Errors[0].Line != 3 || res.Errors[0].Code != "invalid_json" || res.Errors[1].Line != 4 || res.Errors[1].Code != "unknown_integration" {
					t.Errorf("errors = %+v", res.Errors)
				}
				if _, ok := ev.user("imp-2"); !ok {
					t.Error("imp-2 not imported")
				}
				if ev.secret(t, "imp-1", "c1")["accessToken"] != "t" {
					t.Error("imp-1's secret not stored")
				}
			}},
		// The body cap of the other routes does not apply to imports.
		{name: "larger than MaxBody", token: ev.key, contentType: lifecycle.ContentTypeNDJSON,
			body: strings.Repeat(`{"id":"many"}`+"\n", 2*testMaxBody/14), status: http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ev.srv.URL+path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			req.Header.Set("Content-Type", tc.contentType)
			res, err := ev.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			r := response{status: res.StatusCode, body: b}
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, b)
			}
			if tc.code != "" && r.errorCode(t) != tc.code {
				t.Fatalf("code = %q, want %q", r.errorCode(t), tc.code)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := lifecycle.New(lifecycle.Options{}); err == nil {
		t.Fatal("New without a catalog succeeded")
	}
}

// FuzzCredentialBody feeds arbitrary bodies to the decoders: they must never
// panic, and every rejection is a 4xx API error, never a 5xx.
func FuzzCredentialBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"integration":"hubspot"}`,
		`{"integration":"hubspot","providerAccountId":"a","secret":{"k":"v"},"settings":{},"status":"VALID"}`,
		`{"integration":"hubspot","secret":null,"settings":null,"providerAccountId":null}`,
		`{"integration":"hubspot","secret":[1],"status":"nope"}`,
		`{"integration":1}`, `{"enabled":true}`, `{"enabled":"yes"}`, `{"metadata":{"a":[1,2,{"b":null}]}}`,
		"\xff{", `{"integration":"` + url.PathEscape("a/b") + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			ae, ok := apierr.As(err)
			if !ok {
				t.Fatalf("%s: non-API error %v", what, err)
			}
			if ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("%s: status %d for %q", what, ae.Status, body)
			}
		}
		cb, err := lifecycle.DecodeCredentialBody(body)
		check("credential", err)
		if err == nil && !workflow.ValidID(cb.Integration) {
			t.Fatalf("accepted invalid integration %q", cb.Integration)
		}
		_, err = lifecycle.DecodeUserBody(body)
		check("user", err)
		_, err = lifecycle.DecodeEnabledBody(body)
		check("enabled", err)
	})
}

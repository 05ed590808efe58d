package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// sdkEcho is a request-triggered workflow without an integration: the SDK
// finds it under lifecycle.NoIntegration.
const sdkEcho = `kind: Workflow
id: sdk-echo
name: SDK echo
trigger: {type: request, methods: [POST]}
steps:
  - id: reply
    type: response
    status: 200
    json:
      got: "{{ trigger.request.body }}"
      q: "{{ trigger.request.query }}"
      user: "{{ user.id }}"
`

// appOrigin is the page the browser tests call from; the server is on
// 127.0.0.1, so every call is cross-origin.
const appOrigin = "http://app.example.test:3000"

// sdkSystem is a dev system with the walk-through's documents, sdk-echo,
// user u1 with credential c1, and appOrigin allowed for project dev.
func sdkSystem(t *testing.T) (*dev.System, api, *listener, string) {
	t.Helper()
	sys, _ := startDev(t, dev.Options{})
	a := newAPI(sys.HTTPAddr)
	l := newListener(t)
	setupWalkthrough(t, a, sys.APIKey, l)
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", sys.APIKey, sdkEcho)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev", sys.AdminToken, map[string]any{"allowedOrigins": []string{appOrigin + "/"}})
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return sys, a, l, token
}

// sdkHeaders are the headers the SDK sends on every call.
func sdkHeaders(extra ...string) []string {
	return append([]string{"X-Paragon-SDK-Version", "2.4.0", "Origin", appOrigin}, extra...)
}

type sdkMe struct {
	ID      string `json:"id"`
	Project struct {
		ID string `json:"id"`
	} `json:"project"`
	Meta         map[string]any                           `json:"meta"`
	Resources    []any                                    `json:"resources"`
	Integrations map[string]lifecycle.SDKIntegrationState `json:"integrations"`
}

// TestSDKSurface checks each SDK route's shape as `@useparagon/connect`
// 2.4.0 reads it (services/connection-lifecycle/sdk.go), the event and
// request-trigger paths it calls, and PATCH of the user's metadata.
func TestSDKSurface(t *testing.T) {
	sys, a, l, token := sdkSystem(t)

	t.Run("GET sdk/me", func(t *testing.T) {
		var me sdkMe
		a.must(t, http.StatusOK, "GET", "/projects/dev/sdk/me", token, nil, sdkHeaders()...).decode(t, &me)
		if me.ID != "u1" || me.Project.ID != "dev" || me.Meta["plan"] != "pro" || me.Resources == nil {
			t.Fatalf("me = %+v, want id u1, project dev, meta.plan pro, resources []", me)
		}
		crm, ok := me.Integrations["crm"]
		if !ok || !crm.Enabled || crm.CredentialID != "c1" || crm.CredentialStatus != "VALID" || len(crm.AllCredentials) != 1 {
			t.Fatalf("integrations.crm = %+v, want enabled with VALID credential c1", crm)
		}
		cr := crm.AllCredentials[0]
		if cr.ID != "c1" || cr.ExternalID != "c1" || cr.Status != "VALID" || len(cr.Configurations) != 1 {
			t.Fatalf("allCredentials[0] = %+v", cr)
		}
		if cfg := cr.Configurations[0]; !cfg.IsDefault || cfg.ConnectCredentialID != "c1" || !cfg.WorkflowSettings["contact-to-crm"].Enabled {
			t.Fatalf("configurations[0] = %+v, want the default one with contact-to-crm enabled", cfg)
		}
		none := me.Integrations[lifecycle.NoIntegration]
		if len(none.AllCredentials) != 1 || none.AllCredentials[0].Status != "VALID" || !none.Enabled {
			t.Fatalf("integrations.%s = %+v, want the user as its one VALID credential", lifecycle.NoIntegration, none)
		}
		// A user with a valid token and nothing in the directory yet.
		tok2, err := sys.Token("nobody", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var empty sdkMe
		a.must(t, http.StatusOK, "GET", "/projects/dev/sdk/me", tok2, nil, sdkHeaders()...).decode(t, &empty)
		if c := empty.Integrations["crm"]; c.Enabled || c.AllCredentials == nil || len(c.AllCredentials) != 0 {
			t.Fatalf("unknown user's crm = %+v, want not enabled, allCredentials []", c)
		}
	})

	t.Run("GET sdk/integrations", func(t *testing.T) {
		var list []lifecycle.SDKIntegration
		a.must(t, http.StatusOK, "GET", "/projects/dev/sdk/integrations", token, nil, sdkHeaders()...).decode(t, &list)
		find := func(typ string) lifecycle.SDKIntegration {
			i := slices.IndexFunc(list, func(in lifecycle.SDKIntegration) bool { return in.Type == typ })
			if i < 0 {
				t.Fatalf("no integration of type %q in %+v", typ, list)
			}
			return list[i]
		}
		for _, tc := range []struct{ typ, name, workflow string }{
			{"crm", "Example CRM", "contact-to-crm"},
			{lifecycle.NoIntegration, lifecycle.NoIntegrationName, "sdk-echo"},
		} {
			in := find(tc.typ)
			if in.ID == "" || in.Name != tc.name || !in.IsActive || len(in.Configs) == 0 {
				t.Fatalf("%s = %+v", tc.typ, in)
			}
			if _, ok := in.Configs[0].Values.WorkflowMeta[tc.workflow]; !ok {
				t.Errorf("%s: configs[0].values.workflowMeta has no %s: %+v", tc.typ, tc.workflow, in.Configs[0])
			}
			if !slices.ContainsFunc(in.Workflows, func(w lifecycle.SDKWorkflow) bool { return w.ID == tc.workflow }) {
				t.Errorf("%s: workflows has no %s: %+v", tc.typ, tc.workflow, in.Workflows)
			}
		}
	})

	t.Run("PATCH sdk/me merges metadata", func(t *testing.T) {
		a.must(t, http.StatusOK, "PATCH", "/projects/dev/sdk/me", token, map[string]any{"meta": map[string]any{"team": "blue"}}, sdkHeaders()...)
		var u struct {
			Metadata map[string]any `json:"metadata"`
		}
		a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1", sys.APIKey, nil).decode(t, &u)
		if u.Metadata["plan"] != "pro" || u.Metadata["team"] != "blue" {
			t.Fatalf("metadata = %v, want plan pro kept and team blue added", u.Metadata)
		}
		for _, tc := range []struct{ body, code string }{
			{`{}`, "missing_field"}, {`{"meta": 3}`, "invalid_field"}, {`[]`, "invalid_json"},
		} {
			expectError(t, a.call(t, "PATCH", "/projects/dev/sdk/me", token, tc.body, sdkHeaders()...), http.StatusBadRequest, tc.code)
		}
	})

	t.Run("event on /v2 and request trigger with ?", func(t *testing.T) {
		r := a.must(t, http.StatusAccepted, "POST", "/v2/projects/dev/sdk/events/trigger", token,
			map[string]any{"name": eventName, "payload": map[string]any{"email": "v2@example.com"}}, sdkHeaders("X-Paragon-Credential", "c1")...)
		acc := accepted(t, r)
		got := l.waitFor(t, "email", "v2@example.com", 1)[0]
		if want := runs.ID(acc.ID, workflowID, "u1", "c1"); got.Body["run"] != want {
			t.Errorf("run %v, want %s (credential c1 chosen by X-Paragon-Credential)", got.Body["run"], want)
		}
		var out struct {
			Got  map[string]any `json:"got"`
			Q    map[string]any `json:"q"`
			User string         `json:"user"`
		}
		a.must(t, http.StatusOK, "POST", "/projects/dev/sdk/triggers/sdk-echo?", token, map[string]any{"n": 1}, sdkHeaders()...).decode(t, &out)
		if out.User != "u1" || out.Got["n"] != float64(1) {
			t.Fatalf("sdk-echo answered %+v", out)
		}
		a.must(t, http.StatusOK, "POST", "/projects/dev/sdk/triggers/sdk-echo?a=b", token, map[string]any{}, sdkHeaders()...).decode(t, &out)
		if out.Q["a"] == nil {
			t.Fatalf("sdk-echo query = %v, want a", out.Q)
		}
	})
}

// TestSDKCORS checks preflights and responses for allowed, other and absent
// origins on every SDK route, and the check of allowedOrigins.
func TestSDKCORS(t *testing.T) {
	sys, a, _, token := sdkSystem(t)
	paths := []struct{ method, path string }{
		{"GET", "/projects/dev/sdk/me"},
		{"PATCH", "/projects/dev/sdk/me"},
		{"GET", "/projects/dev/sdk/integrations"},
		{"POST", "/v2/projects/dev/sdk/events/trigger"},
		{"POST", "/projects/dev/sdk/events/trigger"},
		{"POST", "/v1/projects/dev/events"},
		{"POST", "/projects/dev/sdk/triggers/sdk-echo?"},
		{"POST", "/v1/projects/dev/workflows/sdk-echo/trigger"},
	}
	for _, p := range paths {
		t.Run(p.method+" "+p.path, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				origin string
				status int
				code   string
			}{
				{"allowed", appOrigin, http.StatusNoContent, ""},
				{"allowed, other case", strings.ToUpper(appOrigin[:4]) + strings.ToUpper(appOrigin[4:]), http.StatusNoContent, ""},
				{"other port", "http://app.example.test:4000", http.StatusForbidden, "origin_not_allowed"},
				{"other host", "https://evil.example", http.StatusForbidden, "origin_not_allowed"},
				{"null", "null", http.StatusForbidden, "origin_not_allowed"},
			} {
				t.Run("preflight "+tc.name, func(t *testing.T) {
					r := a.call(t, "OPTIONS", p.path, "", nil, "Origin", tc.origin, "Access-Control-Request-Method", p.method,
						"Access-Control-Request-Headers", "authorization,content-type,x-paragon-sdk-version,x-my-header")
					if tc.code != "" {
						expectError(t, r, tc.status, tc.code)
						if v := r.Header.Get("Access-Control-Allow-Origin"); v != "" {
							t.Errorf("a refused origin got Access-Control-Allow-Origin %q", v)
						}
						return
					}
					if r.Status != tc.status {
						t.Fatalf("got %s, want %d", r, tc.status)
					}
					if v := r.Header.Get("Access-Control-Allow-Origin"); v != tc.origin {
						t.Errorf("Access-Control-Allow-Origin %q, want %q", v, tc.origin)
					}
					if v := r.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(v, p.method) {
						t.Errorf("Access-Control-Allow-Methods %q lacks %s", v, p.method)
					}
					for _, h := range []string{"authorization", "content-type", "x-paragon-sdk-version", "x-my-header", "x-paragon-credential"} {
						if v := r.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(v, h) {
							t.Errorf("Access-Control-Allow-Headers %q lacks %s", v, h)
						}
					}
					if r.Header.Get("Access-Control-Allow-Credentials") != "" {
						t.Errorf("Access-Control-Allow-Credentials sent: bearer tokens need none")
					}
				})
			}
		})
	}

	t.Run("responses", func(t *testing.T) {
		for _, tc := range []struct {
			name, origin string
			status       int
			acao         string
		}{
			{"allowed origin", appOrigin, http.StatusOK, appOrigin},
			{"no origin (a server)", "", http.StatusOK, ""},
			{"other origin", "https://evil.example", http.StatusForbidden, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hdr := []string{"X-Paragon-SDK-Version", "2.4.0"}
				if tc.origin != "" {
					hdr = append(hdr, "Origin", tc.origin)
				}
				r := a.call(t, "GET", "/projects/dev/sdk/me", token, nil, hdr...)
				if r.Status != tc.status {
					t.Fatalf("got %s, want %d", r, tc.status)
				}
				if v := r.Header.Get("Access-Control-Allow-Origin"); v != tc.acao {
					t.Errorf("Access-Control-Allow-Origin %q, want %q", v, tc.acao)
				}
				if !slices.Contains(r.Header.Values("Vary"), "Origin") {
					t.Errorf("Vary %v lacks Origin", r.Header.Values("Vary"))
				}
			})
		}
	})

	t.Run("allowedOrigins", func(t *testing.T) {
		for _, tc := range []struct {
			origins []string
			status  int
			field   string
		}{
			{[]string{"ftp://x.example"}, http.StatusBadRequest, "allowedOrigins[0]"},
			{[]string{appOrigin, "https://x.example/path"}, http.StatusBadRequest, "allowedOrigins[1]"},
			{[]string{"https://user@x.example"}, http.StatusBadRequest, "allowedOrigins[0]"},
			{[]string{"HTTPS://X.example:443", appOrigin}, http.StatusOK, ""},
		} {
			t.Run(strings.Join(tc.origins, ","), func(t *testing.T) {
				r := a.call(t, "PUT", "/v1/projects/dev", sys.AdminToken, map[string]any{"allowedOrigins": tc.origins})
				if tc.status != http.StatusOK {
					if e := expectError(t, r, tc.status, "invalid_field"); e.Error.Field != tc.field {
						t.Errorf("field %q, want %q", e.Error.Field, tc.field)
					}
					return
				}
				var p struct {
					AllowedOrigins []string `json:"allowedOrigins"`
				}
				r.decode(t, &p)
				if want := []string{"https://x.example", appOrigin}; !slices.Equal(p.AllowedOrigins, want) {
					t.Errorf("allowedOrigins %v, want normalized %v", p.AllowedOrigins, want)
				}
			})
		}
		// "*" lets every origin in, and still echoes it rather than "*".
		a.must(t, http.StatusOK, "PUT", "/v1/projects/dev", sys.AdminToken, map[string]any{"allowedOrigins": []string{"*"}})
		r := a.must(t, http.StatusOK, "GET", "/projects/dev/sdk/me", token, nil, "Origin", "https://any.example")
		if v := r.Header.Get("Access-Control-Allow-Origin"); v != "https://any.example" {
			t.Errorf("with *: Access-Control-Allow-Origin %q, want the origin echoed", v)
		}
	})
}

// TestSDKErrors checks that 401 and 403 answers are the usual error body and
// readable by the page (the SDK shows JSON.stringify(body) and logs the user
// out on either).
func TestSDKErrors(t *testing.T) {
	_, a, _, token := sdkSystem(t)
	for _, tc := range []struct {
		name, method, path, token string
		hdr                       []string
		status                    int
		code                      string
	}{
		{"no token", "GET", "/projects/dev/sdk/me", "", nil, http.StatusUnauthorized, "unauthorized"},
		{"bad token", "GET", "/projects/dev/sdk/integrations", "not-a-jwt", nil, http.StatusUnauthorized, "unauthorized"},
		{"bad token on event", "POST", "/v2/projects/dev/sdk/events/trigger", "not-a-jwt", nil, http.StatusUnauthorized, "unauthorized"},
		{"other user", "GET", "/projects/dev/sdk/me", token, []string{"X-Switchboard-User", "u2"}, http.StatusForbidden, "forbidden"},
		{"unknown workflow", "POST", "/projects/dev/sdk/triggers/nope?", token, nil, http.StatusNotFound, "workflow_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call(t, tc.method, tc.path, tc.token, "{}", sdkHeaders(tc.hdr...)...)
			expectError(t, r, tc.status, tc.code)
			if v := r.Header.Get("Access-Control-Allow-Origin"); v != appOrigin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q: the page must be able to read the error", v, appOrigin)
			}
		})
	}
}

package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v5"
	"go.yaml.in/yaml/v3"

	"github.com/switchboard-hq/switchboard/pkg/testlog"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
	"github.com/switchboard-hq/switchboard/services/switchboard/openapi"
)

// load parses and validates the embedded document the way it is served.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	b, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load the document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	return doc
}

func TestDocumentValidates(t *testing.T) {
	doc := load(t)
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	for _, name := range []string{"apiKey", "userToken", "adminToken"} {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("security scheme %s missing", name)
		}
	}
}

// anyMethod is how an echo Any route and a path item marked
// x-switchboard-any-method are compared: as one pseudo-method.
const anyMethod = "ANY"

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// docPath turns an echo route path into its OpenAPI template: :p is {p},
// a trailing * wildcard is {path} (OpenAPI has no multi-segment parameter;
// the document says so where it uses one).
func docPath(p string) string {
	p = echoParam.ReplaceAllString(p, "{$1}")
	if strings.HasSuffix(p, "/*") {
		p = strings.TrimSuffix(p, "*") + "{path}"
	}
	return p
}

func routeKey(method, path string) string { return method + " " + path }

// registered is every route the process serves, as "METHOD /template".
func registered(routes echo.Routes) []string {
	var out []string
	for _, r := range routes {
		m := r.Method
		if m == echo.RouteAny {
			m = anyMethod
		}
		out = append(out, routeKey(m, docPath(r.Path)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// documented is every path and method of the document.
func documented(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		if any, _ := item.Extensions["x-switchboard-any-method"].(bool); any {
			out = append(out, routeKey(anyMethod, path))
			continue
		}
		for method := range item.Operations() {
			out = append(out, routeKey(strings.ToUpper(method), path))
		}
	}
	slices.Sort(out)
	return out
}

// stubs drafts path items for routes the document lacks, so adding one
// starts from a paste (role, summary and schemas still to be filled in).
func stubs(routes []string, roles map[string]string) string {
	var b strings.Builder
	last := ""
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if path != last {
			role := roles[r]
			if role == "" {
				role = "TODO"
			}
			fmt.Fprintf(&b, "  %s:\n    x-switchboard-role: %s\n", path, role)
			if method == anyMethod {
				b.WriteString("    x-switchboard-any-method: true\n")
				method = "POST"
			}
			last = path
		}
		var params []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			params = append(params, fmt.Sprintf("{name: %s, in: path, required: true, schema: {type: string}}", m[1]))
		}
		fmt.Fprintf(&b, "    %s:\n      summary: TODO\n      security: [{apiKey: []}]\n      parameters: [%s]\n"+
			"      responses:\n        '200': {description: TODO, content: {application/json: {schema: {type: object}}}}\n"+
			"        default: {$ref: '#/components/responses/Error'}\n", strings.ToLower(method), strings.Join(params, ", "))
	}
	return b.String()
}

// roleRoutes maps each role route ("METHOD /template") to the role that
// registers it, by mounting every running role again on an echo of its own.
func roleRoutes(t *testing.T, sys *dev.System) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range app.RoleNames() {
		r, ok := sys.App.Role(name)
		if !ok {
			t.Fatalf("role %s is not running", name)
		}
		e := echo.New()
		r.Register(e)
		for _, key := range registered(e.Router().Routes()) {
			out[key] = name
		}
	}
	return out
}

// startAll runs every role around an embedded NATS, with the examples
// applied, as `switchboard dev` does.
func startAll(t *testing.T) *dev.System {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := dev.Start(ctx, dev.Options{
		DataDir:     t.TempDir(),
		HTTPAddr:    "127.0.0.1:0",
		ExamplesDir: "../../../examples",
		Logger:      testlog.New(t),
	})
	if err != nil {
		t.Fatalf("dev.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sys.Stop(ctx)
	})
	return sys
}

func TestAgainstApp(t *testing.T) {
	doc := load(t)
	sys := startAll(t)

	t.Run("routes", func(t *testing.T) {
		reg, docd := registered(sys.App.Routes()), documented(doc)
		var missing, stale []string
		for _, r := range reg {
			if !slices.Contains(docd, r) {
				missing = append(missing, r)
			}
		}
		for _, d := range docd {
			if !slices.Contains(reg, d) {
				stale = append(stale, d)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%d of %d registered routes are not in openapi.yaml; add them:\n  %s\n\nstubs to fill in under paths:\n%s",
				len(missing), len(reg), strings.Join(missing, "\n  "), stubs(missing, roleRoutes(t, sys)))
		}
		if len(stale) > 0 {
			t.Errorf("%d documented routes are not registered by any role; remove or fix them:\n  %s",
				len(stale), strings.Join(stale, "\n  "))
		}
		t.Logf("%d routes registered, %d documented", len(reg), len(docd))
	})

	t.Run("roles", func(t *testing.T) {
		// Each role's routes, mounted again on an echo of their own, must
		// be documented under that role (x-switchboard-role on the path
		// item, or on the operation where one path spans roles): it is
		// what tells an operator which process answers a path.
		checked := 0
		for key, name := range roleRoutes(t, sys) {
			method, path, _ := strings.Cut(key, " ")
			item := doc.Paths.Find(path)
			if item == nil {
				continue // the routes subtest reports it
			}
			role, _ := item.Extensions["x-switchboard-role"].(string)
			if op := item.GetOperation(method); op != nil {
				if r, ok := op.Extensions["x-switchboard-role"].(string); ok {
					role = r
				}
			}
			if role != name {
				t.Errorf("%s is registered by role %s but documented under x-switchboard-role %q", key, name, role)
			}
			checked++
		}
		t.Logf("%d role routes checked", checked)
	})

	t.Run("served", func(t *testing.T) {
		resp, err := http.Get("http://" + sys.HTTPAddr + openapi.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: HTTP %d, %s", openapi.Path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		served, err := openapi3.NewLoader().LoadFromData(b)
		if err != nil {
			t.Fatalf("the served document does not load: %v", err)
		}
		if err := served.Validate(context.Background()); err != nil {
			t.Fatalf("the served document is not valid: %v", err)
		}
		if served.Paths.Len() != doc.Paths.Len() {
			t.Fatalf("served %d paths, the repository's document has %d", served.Paths.Len(), doc.Paths.Len())
		}
	})

	t.Run("responses", func(t *testing.T) {
		testResponses(t, doc, sys)
	})
}

// call is one recorded request: the route template it should match in the
// document and the status the walk-through expects.
type call struct {
	name     string
	method   string
	template string // OpenAPI path
	path     string // the real path with query
	auth     string
	header   map[string]string
	body     string
	want     int
	// keep stores values from the answer for later calls.
	keep func(t *testing.T, body []byte)
}

func testResponses(t *testing.T, doc *openapi3.T, sys *dev.System) {
	base := "http://" + sys.HTTPAddr
	key := "Bearer " + sys.APIKey
	tok, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	user := "Bearer " + tok
	doc1, err := os.ReadFile("../../../examples/contact-created.yaml")
	if err != nil {
		t.Fatal(err)
	}
	schedDoc, err := os.ReadFile("../../../examples/schedules/every-5s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var eventID, runID string
	jsonCT := map[string]string{"Content-Type": "application/json"}
	calls := []call{
		{name: "healthz", method: "GET", template: "/healthz", path: "/healthz", want: 200},
		{name: "readyz", method: "GET", template: "/readyz", path: "/readyz", want: 200},
		{name: "openapi", method: "GET", template: "/openapi.json", path: "/openapi.json", want: 200},
		{name: "put project", method: "PUT", template: "/v1/projects/{p}", path: "/v1/projects/dev", auth: "Bearer " + sys.AdminToken,
			header: jsonCT, body: `{"allowedOrigins":["http://localhost:3000"]}`, want: 200},
		{name: "api key", method: "POST", template: "/v1/projects/{p}/api-keys", path: "/v1/projects/dev/api-keys", auth: "Bearer " + sys.AdminToken, want: 201},
		{name: "preflight", method: "OPTIONS", template: "/projects/{p}/sdk/me", path: "/projects/dev/sdk/me",
			header: map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"}, want: 204},
		{name: "webhook secrets", method: "PUT", template: "/v1/projects/{p}/integrations/{integration}/webhook-secrets", path: "/v1/projects/dev/integrations/hubspot/webhook-secrets", auth: key,
			header: jsonCT, body: `{"secrets":[{"value":"hubspot-app-secret"}]}`, want: 200},
		{name: "unsigned webhook", method: "POST", template: "/v1/hooks/{p}/{integration}", path: "/v1/hooks/dev/hubspot",
			header: jsonCT, body: `[{"eventId":1}]`, want: 401},
		{name: "apply", method: "POST", template: "/v1/projects/{p}/apply", path: "/v1/projects/dev/apply", auth: key,
			header: map[string]string{"Content-Type": "application/yaml"}, body: string(doc1), want: 200},
		{name: "workflows", method: "GET", template: "/v1/projects/{p}/workflows", path: "/v1/projects/dev/workflows", auth: key, want: 200},
		{name: "put user", method: "PUT", template: "/v1/projects/{p}/users/{u}", path: "/v1/projects/dev/users/u1", auth: key,
			header: jsonCT, body: `{"metadata":{"timezone":"Europe/Berlin"}}`, want: 200},
		{name: "put credential", method: "PUT", template: "/v1/projects/{p}/users/{u}/credentials/{c}", path: "/v1/projects/dev/users/u1/credentials/c1", auth: key,
			header: jsonCT, body: `{"integration":"crm","providerAccountId":"acct-42","secret":{"accessToken":"crm-token-123"}}`, want: 200},
		{name: "get user", method: "GET", template: "/v1/projects/{p}/users/{u}", path: "/v1/projects/dev/users/u1", auth: key, want: 200},
		{name: "event", method: "POST", template: "/v1/projects/{p}/events", path: "/v1/projects/dev/events?wait=routed", auth: user,
			header: jsonCT, body: `{"name":"Contact Created","payload":{"email":"ada@example.com"}}`, want: 202,
			keep: func(t *testing.T, b []byte) {
				var a struct {
					ID     string   `json:"id"`
					RunIDs []string `json:"runIds"`
				}
				if err := json.Unmarshal(b, &a); err != nil || len(a.RunIDs) == 0 {
					t.Fatalf("event answer %s: %v; want a run id", b, err)
				}
				eventID, runID = a.ID, a.RunIDs[0]
			}},
		{name: "sdk event", method: "POST", template: "/v2/projects/{p}/sdk/events/trigger", path: "/v2/projects/dev/sdk/events/trigger", auth: user,
			header: jsonCT, body: `{"name":"Contact Created","payload":{"email":"grace@example.com"}}`, want: 202},
		{name: "decision", method: "GET", template: "/v1/projects/{p}/events/{event}", path: "/v1/projects/dev/events/{eventID}", auth: key, want: 200},
		{name: "event replay", method: "POST", template: "/v1/projects/{p}/events/{event}/replay", path: "/v1/projects/dev/events/{eventID}/replay", auth: key, want: 202},
		{name: "workflow", method: "GET", template: "/v1/projects/{p}/workflows/{w}", path: "/v1/projects/dev/workflows/contact-to-crm", auth: key, want: 200},
		{name: "runs list", method: "GET", template: "/v1/projects/{p}/runs", path: "/v1/projects/dev/runs?workflow=contact-to-crm", auth: key, want: 200},
		{name: "run", method: "GET", template: "/v1/projects/{p}/runs/{run}", path: "/v1/projects/dev/runs/{runID}", auth: key, want: 200},
		{name: "request sync", method: "POST", template: "/v1/projects/{p}/workflows/{w}/trigger", path: "/v1/projects/dev/workflows/quote/trigger", auth: user,
			header: jsonCT, body: `{"item":"pen","qty":4}`, want: 201},
		{name: "request async", method: "POST", template: "/v1/projects/{p}/workflows/{w}/trigger", path: "/v1/projects/dev/workflows/quote/trigger", auth: user,
			header: map[string]string{"Content-Type": "application/json", "Prefer": "respond-async"}, body: `{"item":"cup","qty":2}`, want: 202},
		{name: "request invalid", method: "POST", template: "/v1/projects/{p}/workflows/{w}/trigger", path: "/v1/projects/dev/workflows/quote/trigger", auth: user,
			header: jsonCT, body: `{"qty":4}`, want: 400},
		{name: "run not found", method: "GET", template: "/v1/projects/{p}/runs/{run}", path: "/v1/projects/dev/runs/run_nope", auth: key, want: 404},
		{name: "unauthorized", method: "GET", template: "/v1/projects/{p}/runs", path: "/v1/projects/dev/runs", auth: "Bearer sk_wrong", want: 401},
		{name: "dead", method: "GET", template: "/v1/projects/{p}/dead", path: "/v1/projects/dev/dead", auth: key, want: 200},
		{name: "sdk me", method: "GET", template: "/projects/{p}/sdk/me", path: "/projects/dev/sdk/me", auth: user, want: 200},
		{name: "sdk integrations", method: "GET", template: "/projects/{p}/sdk/integrations", path: "/projects/dev/sdk/integrations", auth: user, want: 200},
		{name: "apply schedule", method: "POST", template: "/v1/projects/{p}/apply", path: "/v1/projects/dev/apply", auth: key,
			header: map[string]string{"Content-Type": "application/yaml"}, body: string(schedDoc), want: 200},
		{name: "schedule", method: "GET", template: "/v1/projects/{p}/workflows/{w}/schedule", path: "/v1/projects/dev/workflows/every-5s/schedule", auth: key, want: 200},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			path := strings.NewReplacer("{eventID}", eventID, "{runID}", runID).Replace(c.path)
			status, header, body := do(t, base, c, path)
			// A read of a run or decision may race the read model; the
			// history API answers 404 until it caught up.
			for deadline := time.Now().Add(10 * time.Second); status == 404 && c.want == 200 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				status, header, body = do(t, base, c, path)
			}
			if status != c.want {
				t.Fatalf("%s %s: HTTP %d, want %d: %s", c.method, path, status, c.want, body)
			}
			validate(t, doc, c, path, status, header, body)
			if c.keep != nil {
				c.keep(t, body)
			}
		})
	}
}

func do(t *testing.T, base string, c call, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(c.method, base+path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// pathParams matches a real path to its template, segment by segment;
// a mismatch fails the lookup (nil), which ValidateRequest reports.
func pathParams(template, path string) map[string]string {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return nil
	}
	out := map[string]string{}
	for i, seg := range ts {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out[seg[1:len(seg)-1]] = ps[i]
		} else if seg != ps[i] {
			return nil
		}
	}
	return out
}

// validate checks a recorded answer against the document's response for
// its route, method and status (IncludeResponseStatus: an undocumented
// status without a default fails too).
func validate(t *testing.T, doc *openapi3.T, c call, path string, status int, header http.Header, body []byte) {
	t.Helper()
	item := doc.Paths.Find(c.template)
	if item == nil {
		t.Fatalf("%s is not in the document", c.template)
	}
	op := item.GetOperation(c.method)
	if op == nil {
		t.Fatalf("%s %s is not in the document", c.method, c.template)
	}
	req, _ := http.NewRequest(c.method, "http://switchboard"+path, strings.NewReader(c.body))
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	route := &routers.Route{Spec: doc, Path: c.template, PathItem: item, Method: c.method, Operation: op}
	reqIn := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: pathParams(c.template, strings.SplitN(path, "?", 2)[0]),
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	// The request as sent must be one the document allows, too: a call
	// the walk-through makes is a call the document describes.
	if err := openapi3filter.ValidateRequest(context.Background(), reqIn); err != nil {
		t.Errorf("%s %s: the request does not match the document: %v", c.method, path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d does not match the document: %v\nbody: %s", c.method, path, status, err, body)
	}
	if c.want >= 400 {
		// Every error is the one shape, whatever the operation says.
		var e struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Code == "" {
			t.Errorf("error body %s is not {\"error\":{\"code\",\"message\"}}", body)
		}
	}
}

// TestStubsArePasteable: what the route check suggests for a missing route
// makes a valid document once pasted under paths.
func TestStubsArePasteable(t *testing.T) {
	stub := stubs([]string{"GET /v1/projects/{p}/things/{thing}", "POST /v1/projects/{p}/things/{thing}", "ANY /v1/hooks2/{p}"},
		map[string]string{"GET /v1/projects/{p}/things/{thing}": "ingress"})
	src := strings.Replace(string(openapi.YAML()), "\npaths:\n", "\npaths:\n"+stub, 1)
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatalf("stub does not parse: %v\n%s", err, stub)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("load: %v\n%s", err, stub)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("a document with the stubs is not valid: %v\n%s", err, stub)
	}
	got := documented(doc)
	for _, want := range []string{"GET /v1/projects/{p}/things/{thing}", "POST /v1/projects/{p}/things/{thing}", "ANY /v1/hooks2/{p}"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not documented by the stubs:\n%s", want, stub)
		}
	}
}

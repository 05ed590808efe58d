package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sdkBundle returns the path of `@useparagon/connect`'s bundle as npm ships
// it (tests/sdk/node_modules, pinned by tests/sdk/package-lock.json),
// running `npm ci` when it is not installed yet: `make test` runs the Go
// tests before test-sdk installs it. Without npm the test skips, except
// where SWITCHBOARD_REQUIRE_CHROMIUM says the browser tests must run (CI).
func sdkBundle(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "tests", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "node_modules", "@useparagon", "connect")
	installed := func() bool {
		raw, err := os.ReadFile(filepath.Join(pkg, "package.json"))
		if err != nil {
			return false
		}
		var p struct{ Version string }
		return json.Unmarshal(raw, &p) == nil && p.Version == "2.4.0"
	}
	if !installed() {
		npm, err := exec.LookPath("npm")
		if err != nil {
			const why = "npm is not installed (Node 20+ with npm installs the SDK from tests/sdk/package-lock.json)"
			if os.Getenv("SWITCHBOARD_REQUIRE_CHROMIUM") != "" {
				t.Fatal(why + ", and SWITCHBOARD_REQUIRE_CHROMIUM is set")
			}
			t.Skip(why)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, npm, "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci --prefix %s: %v\n%s", dir, err, out)
		}
		if !installed() {
			t.Fatalf("npm ci did not install @useparagon/connect 2.4.0 under %s", pkg)
		}
	}
	return filepath.Join(pkg, "dist", "src", "index.js")
}

// sdkPage serves a page that loads the SDK bundle with a plain <script>: the
// bundle is CommonJS (it ends in module.exports=…), so the page gives it a
// module object and keeps the singleton as window.paragon.
func sdkPage(t *testing.T, bundle string) *httptest.Server {
	t.Helper()
	js, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /connect.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(js)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html><head><title>app</title></head><body>
<script>var module = {exports: {}}; var exports = module.exports;</script>
<script src="/connect.js"></script>
<script>window.paragon = module.exports.paragon;</script>
</body></html>`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// sdkScript is what the page runs: the customer's front-end code from the
// README, with the results returned as JSON. A failure is returned, not
// thrown, so the test can tell which call failed and why.
const sdkScript = `(async (base, token, email) => {
  const out = {};
  try {
    paragon.configureGlobal({host: "switchboard.invalid"}, {ZEUS_PUBLIC_URL: base, HERMES_PUBLIC_URL: base});
    out.step = "authenticate";
    await paragon.authenticate("dev", token, {metadata: {Name: email}});
    const u = paragon.getUser();
    out.user = {authenticated: u.authenticated, userId: u.userId, crm: u.integrations && u.integrations.crm};
    out.step = "event";
    await paragon.event("Contact Created", {email});
    out.step = "workflow";
    out.workflow = await paragon.workflow("sdk-echo", {body: {item: "pen"}, query: {from: "browser"}});
    out.step = "done";
  } catch (err) {
    out.error = String(err && err.message || err);
  }
  return JSON.stringify(out);
})`

type sdkPageResult struct {
	Step string `json:"step"`
	User struct {
		Authenticated bool   `json:"authenticated"`
		UserID        string `json:"userId"`
		CRM           struct {
			Enabled      bool   `json:"enabled"`
			CredentialID string `json:"credentialId"`
		} `json:"crm"`
	} `json:"user"`
	Workflow map[string]any `json:"workflow"`
	Error    string         `json:"error"`
}

// runSDKPage opens page in a fresh tab and runs sdkScript there.
func runSDKPage(t *testing.T, ctx context.Context, page, base, token, email string) sdkPageResult {
	t.Helper()
	step(t, ctx, "open "+page, chromedp.Navigate(page+"/"))
	waitFor(t, ctx, "the SDK to load", `typeof window.paragon === "object" && window.paragon !== null`)
	arg := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	raw, err := chromedp.Run(sctx, chromedp.Evaluate[string](sdkScript+"("+arg(base)+","+arg(token)+","+arg(email)+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: run the SDK on %s: %v", page, err)
	}
	var res sdkPageResult
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("page result %q: %v", raw, err)
	}
	return res
}

// TestSDKInBrowser loads the real `@useparagon/connect` 2.4.0 bundle into
// a page in headless Chromium served from another origin than the API (a
// second 127.0.0.1 port), so every call is a real cross-origin fetch with
// the browser's own CORS checks: authenticate (with metadata: GET sdk/me,
// GET sdk/integrations, PATCH sdk/me), event and workflow succeed for an
// allowed origin, and the runs are checked over the API. A page on an
// origin the project does not allow cannot even authenticate, and its
// PATCH never reaches the user.
func TestSDKInBrowser(t *testing.T) {
	execPath := chromium(t)
	bundle := sdkBundle(t)
	sys, a, l, token := sdkSystem(t)
	base := "http://" + sys.HTTPAddr
	allowed := sdkPage(t, bundle)
	other := sdkPage(t, bundle)
	// The project allows the first page's origin only (PUT replaces the list).
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev", sys.AdminToken, map[string]any{"allowedOrigins": []string{allowed.URL}})
	ctx := browser(t, execPath)

	res := runSDKPage(t, ctx, allowed.URL, base, token, "browser@example.com")
	if res.Error != "" || res.Step != "done" {
		t.Fatalf("the SDK on an allowed origin failed at %s: %s", res.Step, res.Error)
	}
	if !res.User.Authenticated || res.User.UserID != "u1" || !res.User.CRM.Enabled || res.User.CRM.CredentialID != "c1" {
		t.Fatalf("getUser() after authenticate = %+v, want u1 with crm enabled on c1", res.User)
	}
	if res.Workflow["user"] != "u1" || res.Workflow["got"].(map[string]any)["item"] != "pen" {
		t.Fatalf("workflow(sdk-echo) = %v, want the response step's JSON for u1 with item pen", res.Workflow)
	}

	// authenticate's PATCH reached the user and kept the other keys.
	var u struct {
		Metadata map[string]any `json:"metadata"`
	}
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1", sys.APIKey, nil).decode(t, &u)
	if u.Metadata["Name"] != "browser@example.com" || u.Metadata["plan"] != "pro" {
		t.Fatalf("u1's metadata = %v, want Name browser@example.com (PATCHed by authenticate) and plan pro", u.Metadata)
	}
	// event ran contact-to-crm for u1 with c1's token.
	got := l.waitFor(t, "email", "browser@example.com", 1)
	if got[0].Auth != "Bearer tok-c1" {
		t.Fatalf("the http step sent Authorization %q, want c1's token", got[0].Auth)
	}
	run := waitRun(t, a, sys.APIKey, got[0].Body["run"].(string))
	if run.Status != "succeeded" || run.Workflow != "contact-to-crm" || run.User != "u1" || run.Credential != "c1" {
		t.Fatalf("event run = %s %s user %s credential %s, want a succeeded contact-to-crm run of u1 on c1", run.Status, run.Workflow, run.User, run.Credential)
	}
	// workflow ran sdk-echo once, for u1.
	var list runList
	eventually(t, 20*time.Second, "the sdk-echo run to succeed", func() (bool, string) {
		a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs?workflow=sdk-echo", sys.APIKey, nil).decode(t, &list)
		return len(list.Runs) == 1 && list.Runs[0].Status == "succeeded" && list.Runs[0].User == "u1", "runs " + jsonString(list.Runs)
	})

	// The same page on an origin the project does not list: the browser
	// refuses the SDK's first call (its preflight is 403 without
	// Access-Control-Allow-Origin), so nothing is read or written.
	res = runSDKPage(t, ctx, other.URL, base, token, "refused@example.com")
	if res.Step != "authenticate" || res.Error == "" {
		t.Fatalf("the SDK on a disallowed origin got to %s (error %q), want a failed authenticate", res.Step, res.Error)
	}
	t.Logf("disallowed origin %s: %s", other.URL, res.Error)
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/users/u1", sys.APIKey, nil).decode(t, &u)
	if u.Metadata["Name"] != "browser@example.com" {
		t.Fatalf("u1's metadata = %v after a disallowed origin's authenticate, want it unchanged", u.Metadata)
	}
	if len(l.matching("email", "refused@example.com")) != 0 {
		t.Fatalf("a disallowed origin's event ran")
	}
}

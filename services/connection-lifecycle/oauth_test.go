package lifecycle_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/workflow"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// oauthEnv is an eventEnv with a fake OAuth provider and integration crm
// connecting through it (required setting portalId).
type oauthEnv struct {
	*eventEnv
	fake    *fakeprovider.Provider
	fakeURL string
	token   string // user token of proj/u1
}

func newOAuthEnv(t *testing.T, ttl time.Duration) *oauthEnv {
	t.Helper()
	e := newEventEnv(t)
	fake := fakeprovider.New(fakeprovider.Options{ClientID: "cid", ClientSecret: "csecret", TokenTTL: ttl})
	fs := httptest.NewServer(fake.Handler())
	t.Cleanup(fs.Close)
	objs, err := workflow.Parse([]byte(fmt.Sprintf(`
kind: Integration
id: crm
auth: {type: bearer}
settings: [{key: portalId, type: string, required: true}]
oauth:
  authorizeUrl: %[1]s/authorize
  tokenUrl: %[1]s/token
  scopes: [contacts]
  accountId: {url: %[1]s/me, field: id}
`, fs.URL)), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := e.cat.Apply(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cat.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dir.SetOAuthClient(t.Context(), "proj", "crm", &directory.OAuthClient{ClientID: "cid", ClientSecret: "csecret"}); err != nil {
		t.Fatal(err)
	}
	tok, err := auth.MintUserToken(e.signing, "proj", "u1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &oauthEnv{eventEnv: e, fake: fake, fakeURL: fs.URL, token: tok}
}

// serveOAuth starts a replica serving HTTP at its own public URL.
func (o *oauthEnv) serveOAuth(t *testing.T, name string, edit func(*lifecycle.Options)) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	svc := o.replicaWith(t, name, nil, func(opts *lifecycle.Options) {
		opts.PublicURL = public
		if edit != nil {
			edit(opts)
		}
	})
	ec := httpx.NewEcho(slog.New(slog.DiscardHandler))
	svc.Register(ec)
	srv := httptest.NewUnstartedServer(ec)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{srv: srv, cat: o.cat, dir: o.dir, key: o.key}
}

// startFlow calls start and follows the provider's redirect, without
// following the one back to the callback: it returns the callback URL.
func (o *oauthEnv) startFlow(t *testing.T, h *env, query string) *url.URL {
	t.Helper()
	var last *url.URL
	c := &http.Client{CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == lifecycle.CallbackPath {
			last = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	res, err := c.Get(h.srv.URL + "/v1/connect/proj/crm/start?" + query)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if last == nil {
		t.Fatalf("start: %d, no redirect to the callback", res.StatusCode)
	}
	return last
}

func callback(t *testing.T, u *url.URL) response {
	t.Helper()
	res, err := http.Get(u.String())
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

// TestOAuthConnect: the whole flow with curl-like redirects, the credential
// VALID with its provider account and sealed tokens, Integration Enabled
// only once the required setting is saved, then a forced refresh (rotated
// tokens, credential.refreshed) and a refused one (INVALID,
// credential.invalid).
func TestOAuthConnect(t *testing.T) {
	o := newOAuthEnv(t, time.Hour)
	h := o.serveOAuth(t, "r1", nil)
	o.fake.SetNextAccount("acct-42")

	// Followed all the way, as curl -L does.
	res, err := http.Get(h.srv.URL + "/v1/connect/proj/crm/start?credential=c1&token=" + url.QueryEscape(o.token))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("connect: %d", res.StatusCode)
	}
	cred, err := o.dir.Credential(t.Context(), "proj", "u1", "c1")
	if err != nil || cred.Status != directory.CredentialValid || cred.ProviderAccountID != "acct-42" || cred.Integration != "crm" {
		t.Fatalf("credential %+v (%v)", cred, err)
	}
	sec, err := o.dir.Secret(t.Context(), "proj", "u1", "c1")
	if err != nil || sec["accessToken"] == "" || sec["refreshToken"] == "" || sec["expiresAt"] == "" {
		t.Fatalf("secret %v (%v)", sec, err)
	}
	o.settled(t, "u1")
	if got := names(o.events(t)); len(got) != 0 {
		t.Fatalf("events before the required setting: %v", got)
	}
	if r := h.do(t, "PATCH", "/v1/projects/proj/users/u1/credentials/c1/settings", o.key, `{"portalId":"p-1"}`); r.status != 200 {
		t.Fatalf("settings: %d %s", r.status, r.body)
	}
	o.settled(t, "u1")

	r := h.do(t, "POST", "/v1/projects/proj/users/u1/credentials/c1/refresh", o.key, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"outcome":"refreshed"`) {
		t.Fatalf("forced refresh: %d %s", r.status, r.body)
	}
	sec2, _ := o.dir.Secret(t.Context(), "proj", "u1", "c1")
	if sec2["accessToken"] == sec["accessToken"] || sec2["refreshToken"] == sec["refreshToken"] {
		t.Fatal("the refresh did not store the rotated tokens")
	}
	o.settled(t, "u1")

	o.fake.Revoke("acct-42")
	r = h.do(t, "POST", "/v1/projects/proj/users/u1/credentials/c1/refresh", o.token, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"INVALID"`) {
		t.Fatalf("refused refresh: %d %s", r.status, r.body)
	}
	o.settled(t, "u1")
	got := names(o.events(t))
	want := []string{"u1/c1:settings.updated", "u1/c1:integration.enabled", "u1/c1:credential.refreshed", "u1/c1:credential.invalid"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// A reconnect replaces the tokens and keeps what else the secret holds:
	// a subscription's signing secret stays valid at the provider.
	sec3, _ := o.dir.Secret(t.Context(), "proj", "u1", "c1")
	sec3["webhookSecrets"] = []any{"hook-secret"}
	if _, err := o.dir.SetSecret(t.Context(), "proj", "u1", "c1", sec3); err != nil {
		t.Fatal(err)
	}
	o.fake.SetNextAccount("acct-42")
	if r := callback(t, o.startFlow(t, h, "credential=c1&token="+url.QueryEscape(o.token))); r.status != 200 {
		t.Fatalf("reconnect: %d %s", r.status, r.body)
	}
	sec4, err := o.dir.Secret(t.Context(), "proj", "u1", "c1")
	if err != nil || sec4["accessToken"] == sec3["accessToken"] || fmt.Sprint(sec4["webhookSecrets"]) != "[hook-secret]" {
		t.Fatalf("secret after the reconnect: %v (%v)", sec4, err)
	}
}

// TestOAuthConnectBadInput: forged, altered, replayed and expired states,
// a code the provider refuses, a provider answering no account id, and a
// start without a user token or OAuth client.
func TestOAuthConnectBadInput(t *testing.T) {
	o := newOAuthEnv(t, time.Hour)
	h := o.serveOAuth(t, "r1", nil)
	short := o.serveOAuth(t, "short", func(opts *lifecycle.Options) { opts.StateTTL = time.Second })
	tokenQ := "token=" + url.QueryEscape(o.token)

	with := func(u *url.URL, key, value string) *url.URL {
		c := *u
		q := c.Query()
		q.Set(key, value)
		c.RawQuery = q.Encode()
		return &c
	}
	t.Run("forged state", func(t *testing.T) {
		cb := o.startFlow(t, h, tokenQ)
		if r := callback(t, with(cb, "state", "AAAAAAAAAAAAAAAAAAAAAA.9999999999.bm9wZQ")); r.status != 400 || r.errorCode(t) != "invalid_state" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		st := cb.Query().Get("state")
		exp := strings.Split(st, ".")
		later := strings.Join([]string{exp[0], "9999999999", exp[2]}, ".") // a longer life, same signature
		if r := callback(t, with(cb, "state", later)); r.status != 400 || r.errorCode(t) != "invalid_state" {
			t.Fatalf("altered expiry: %d %s", r.status, r.body)
		}
		if r := callback(t, with(cb, "state", "")); r.status != 400 || r.errorCode(t) != "invalid_state" {
			t.Fatalf("no state: %d %s", r.status, r.body)
		}
	})
	t.Run("replayed state", func(t *testing.T) {
		cb := o.startFlow(t, h, tokenQ+"&credential=replay")
		if r := callback(t, cb); r.status != 200 {
			t.Fatalf("first: %d %s", r.status, r.body)
		}
		if r := callback(t, cb); r.status != 400 || r.errorCode(t) != "state_used" {
			t.Fatalf("replay: %d %s", r.status, r.body)
		}
	})
	t.Run("expired state", func(t *testing.T) {
		// The expiry is checked before the single use, so polling one state
		// sees it used (the first call burns it on a bad code) until it
		// expires, one second after it was issued.
		cb := with(o.startFlow(t, short, tokenQ+"&credential=late"), "code", "bogus")
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := callback(t, cb)
			if r.errorCode(t) == "state_expired" {
				break
			}
			if r.errorCode(t) != "state_used" && r.errorCode(t) != "code_exchange_failed" || time.Now().After(deadline) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("code exchange failure", func(t *testing.T) {
		cb := o.startFlow(t, h, tokenQ+"&credential=badcode")
		if r := callback(t, with(cb, "code", "bogus")); r.status != 502 || r.errorCode(t) != "code_exchange_failed" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if _, err := o.dir.Credential(t.Context(), "proj", "u1", "badcode"); err == nil {
			t.Fatal("a credential was stored")
		}
	})
	t.Run("provider denies", func(t *testing.T) {
		cb := o.startFlow(t, h, tokenQ+"&credential=denied")
		q := cb.Query()
		q.Del("code")
		q.Set("error", "access_denied")
		cb.RawQuery = q.Encode()
		if r := callback(t, cb); r.status != 400 || r.errorCode(t) != "authorization_denied" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("no account id", func(t *testing.T) {
		o.fake.SetNextAccount("")
		cb := o.startFlow(t, h, tokenQ+"&credential=noacct")
		if r := callback(t, cb); r.status != 502 || r.errorCode(t) != "no_account_id" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if _, err := o.dir.Credential(t.Context(), "proj", "u1", "noacct"); err == nil {
			t.Fatal("a credential without account id was stored")
		}
	})
	t.Run("start needs a user", func(t *testing.T) {
		if r := h.do(t, "GET", "/v1/connect/proj/crm/start", "", ""); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := h.do(t, "GET", "/v1/connect/proj/hubspot/start", o.token, ""); r.status != 400 || r.errorCode(t) != "oauth_not_supported" {
			t.Fatalf("no oauth section: %d %s", r.status, r.body)
		}
	})
}

// TestOAuthRefreshSerialized: two replicas refresh tokens that are due
// every half second, and eight forced refreshes race across them; the
// provider rotates refresh tokens, so two refreshes with the same one would
// be refused — none is, and the credential stays VALID.
func TestOAuthRefreshSerialized(t *testing.T) {
	o := newOAuthEnv(t, 2*time.Second)
	fast := func(opts *lifecycle.Options) {
		opts.RefreshLead, opts.RefreshJitter, opts.RefreshInterval = 1500*time.Millisecond, -1, 50*time.Millisecond
	}
	h1 := o.serveOAuth(t, "r1", fast)
	h2 := o.serveOAuth(t, "r2", fast)
	res, err := http.Get(h1.srv.URL + "/v1/connect/proj/crm/start?credential=c1&token=" + url.QueryEscape(o.token))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("connect: %v %v", res, err)
	}
	res.Body.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		h := []*env{h1, h2}[i%2]
		wg.Go(func() {
			if r := h.do(t, "POST", "/v1/projects/proj/users/u1/credentials/c1/refresh", o.key, ""); r.status != 200 || !strings.Contains(string(r.body), `"refreshed"`) {
				t.Errorf("forced refresh: %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for o.fake.Stats()["refresh_token"] < 8+3 {
		if time.Now().After(deadline) {
			t.Fatalf("scheduled refreshes did not happen: %v", o.fake.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := o.fake.Stats(); st["refused"] != 0 {
		t.Fatalf("refused token requests %v: refreshes were not serialized", st)
	}
	if c, err := o.dir.Credential(t.Context(), "proj", "u1", "c1"); err != nil || c.Status != directory.CredentialValid {
		t.Fatalf("credential %+v (%v)", c, err)
	}
}

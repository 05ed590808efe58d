// Package fakeprovider is an OAuth 2.0 provider for tests and the README
// walk-through (`switchboard fake-provider`). It speaks the real wire format
// a provider does — RFC 6749 authorization code grant with RFC 7636 PKCE
// (S256), form-encoded token requests, JSON token responses and errors —
// so golang.org/x/oauth2 talks to it exactly as to HubSpot or Google:
//
//	GET  /authorize  response_type=code, client_id, redirect_uri, state,
//	                 code_challenge, code_challenge_method=S256, scope
//	                 → 302 redirect_uri?code=…&state=… (approved at once, as
//	                 the account set by /fake/next-account, default acct-1)
//	POST /token      grant_type=authorization_code (code, redirect_uri,
//	                 code_verifier) or refresh_token (refresh_token); client
//	                 authentication by HTTP Basic or form fields
//	                 → {"access_token","token_type":"Bearer","expires_in",
//	                   "refresh_token","scope"}; refresh tokens rotate (the
//	                 old one is then refused); {"error":"invalid_grant"} for
//	                 a bad, used, expired or revoked code or refresh token
//	GET  /me         Bearer access token → {"id": account, "name": …}
//
// Controls for tests and demos (not part of any provider's API):
//
//	POST /fake/next-account  {"account": "acct-7"} ("" : /me answers no id)
//	POST /fake/revoke        {"account": "acct-7"}: its refresh tokens are
//	                         refused from now on (invalid_grant)
//	GET  /fake/stats         token requests by grant type
//
// and the webhook subscription APIs of Asana and Stripe (subscriptions.go).
package fakeprovider

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configure a Provider.
type Options struct {
	// ClientID and ClientSecret are the one registered client.
	ClientID, ClientSecret string
	// TokenTTL is the access token lifetime (expires_in); default 1h.
	TokenTTL time.Duration
	// Account is the account authorized by default (default "acct-1").
	Account string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Provider is the fake provider; its Handler serves the endpoints.
type Provider struct {
	opts Options

	mu      sync.Mutex
	next    *string // account of the next authorization, when set
	codes   map[string]*grant
	access  map[string]*grant
	refresh map[string]*grant
	revoked map[string]bool // accounts whose refresh tokens are refused
	stats   map[string]int
	log     []Refresh
	subs    subscriptions // webhook subscription APIs (subscriptions.go)
}

// Refresh is one refresh_token grant served: for which account, when.
type Refresh struct {
	Account string
	At      time.Time
}

type grant struct {
	account, redirectURI, challenge, scope string
	expires                                time.Time
}

// New returns a Provider.
func New(opts Options) *Provider {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Account == "" {
		opts.Account = "acct-1"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Provider{opts: opts, codes: map[string]*grant{}, access: map[string]*grant{}, refresh: map[string]*grant{},
		revoked: map[string]bool{}, stats: map[string]int{}}
}

// Handler serves the provider's endpoints.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /me", p.me)
	mux.HandleFunc("POST /fake/next-account", p.nextAccount)
	mux.HandleFunc("POST /fake/revoke", p.revoke)
	p.subscriptionRoutes(mux)
	mux.HandleFunc("GET /fake/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, p.Stats()) })
	return mux
}

// Stats returns the token requests served, by grant type, and "refused".
func (p *Provider) Stats() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.stats))
	for k, v := range p.stats {
		out[k] = v
	}
	return out
}

// Refreshes returns every refresh_token grant served so far, in order.
func (p *Provider) Refreshes() []Refresh {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Refresh(nil), p.log...)
}

// IssueRefreshToken mints a refresh token for account as if it had been
// granted earlier: for loading many credentials without a flow each.
func (p *Provider) IssueRefreshToken(account string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	rt := newToken()
	p.refresh[rt] = &grant{account: account}
	return rt
}

// SetNextAccount sets the account the next authorization is for; "" makes
// /me answer without an id (a provider returning no account id).
func (p *Provider) SetNextAccount(a string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = &a
}

// Revoke makes every refresh token of account refused (invalid_grant), as
// when the user revokes the app at the provider.
func (p *Provider) Revoke(account string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revoked[account] = true
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		// Never redirect to an unverified URI: the error is shown here.
		http.Error(w, "invalid redirect_uri", http.StatusBadRequest)
		return
	}
	if q.Get("client_id") != p.opts.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	if s := q.Get("state"); s != "" {
		back.Set("state", s)
	}
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back.Set("error", "invalid_request")
		back.Set("error_description", "PKCE with code_challenge_method=S256 is required")
	default:
		p.mu.Lock()
		account := p.opts.Account
		if p.next != nil {
			account, p.next = *p.next, nil
		}
		code := newToken()
		p.codes[code] = &grant{account: account, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
			scope: q.Get("scope"), expires: p.opts.Now().Add(time.Minute)}
		p.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// tokenError is RFC 6749 §5.2's error response.
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (p *Provider) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.opts.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(p.opts.ClientSecret)) == 1
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || r.ParseForm() != nil {
		tokenError(w, 400, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	p.mu.Lock()
	defer p.mu.Unlock()
	gt := r.PostForm.Get("grant_type")
	if !p.clientOK(r) {
		p.stats["refused"]++
		tokenError(w, 401, "invalid_client", "client authentication failed")
		return
	}
	now := p.opts.Now()
	var g *grant
	switch gt {
	case "authorization_code":
		code := r.PostForm.Get("code")
		g = p.codes[code]
		delete(p.codes, code) // single use, whatever happens next
		switch {
		case g == nil || now.After(g.expires):
			g = nil
		case g.redirectURI != r.PostForm.Get("redirect_uri"):
			g = nil
		case !pkceOK(g.challenge, r.PostForm.Get("code_verifier")):
			p.stats["refused"]++
			tokenError(w, 400, "invalid_grant", "code_verifier does not match the code_challenge")
			return
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		g = p.refresh[rt]
		delete(p.refresh, rt) // rotation: a refresh token is used once
		if g != nil && p.revoked[g.account] {
			g = nil
		}
	default:
		p.stats["refused"]++
		tokenError(w, 400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	if g == nil {
		p.stats["refused"]++
		tokenError(w, 400, "invalid_grant", "the code or refresh token is invalid, expired, used or revoked")
		return
	}
	p.stats[gt]++
	if gt == "refresh_token" {
		p.log = append(p.log, Refresh{Account: g.account, At: now})
	}
	at, rt := newToken(), newToken()
	p.access[at] = &grant{account: g.account, scope: g.scope, expires: now.Add(p.opts.TokenTTL)}
	p.refresh[rt] = &grant{account: g.account, scope: g.scope}
	writeJSON(w, 200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(p.opts.TokenTTL.Seconds()),
		"refresh_token": rt, "scope": g.scope})
}

func pkceOK(challenge, verifier string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return verifier != "" && subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (p *Provider) me(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	g := p.access[tok]
	p.mu.Unlock()
	if !ok || g == nil || p.opts.Now().After(g.expires) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, 401, map[string]string{"error": "invalid_token"})
		return
	}
	if g.account == "" {
		writeJSON(w, 200, map[string]any{"name": "no account"})
		return
	}
	writeJSON(w, 200, map[string]any{"id": g.account, "name": "Account " + g.account})
}

func (p *Provider) nextAccount(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Account *string `json:"account"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&b); err != nil || b.Account == nil {
		http.Error(w, `body: {"account": "…"}`, http.StatusBadRequest)
		return
	}
	p.SetNextAccount(*b.Account)
	w.WriteHeader(http.StatusNoContent)
}

func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Account string `json:"account"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&b); err != nil || b.Account == "" {
		http.Error(w, `body: {"account": "…"}`, http.StatusBadRequest)
		return
	}
	p.Revoke(b.Account)
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

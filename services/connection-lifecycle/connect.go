package lifecycle

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// The OAuth 2.0 connect flow (authorization code with PKCE):
//
//	GET /v1/connect/{p}/{integration}/start   (user token; ?credential=)
//	    → 302 to the provider's authorize URL with state and an S256
//	      code challenge
//	GET /v1/connect/callback?code=…&state=…
//	    → exchanges the code, reads the provider account id as the
//	      manifest says, stores the credential VALID with its tokens
//	      sealed, schedules its refresh (refresh.go) and answers the
//	      credential. The lifecycle events follow from the stored change.
//
// The state is "<id>.<expiry>.<mac>": HMAC-SHA256 with a key kept in
// sb_lifecycle (shared by every replica, created once), so a forged or
// altered state is refused before anything is read; the expiry is checked
// next; then a KV Create of "<id>" as used makes it single use across
// replicas (a replayed callback finds the key). What the callback needs
// (project, user, integration, credential, PKCE verifier) is stored under
// the id with a TTL at start, never put in the URL.

// DefaultStateTTL is how long a connect flow may take from start to
// callback.
const DefaultStateTTL = 10 * time.Minute

// CallbackPath is the redirect URI's path registered at providers.
const CallbackPath = "/v1/connect/callback"

// sb_lifecycle keys of the connect flow.
const (
	stateKeyKey    = "k.oauth-state" // the HMAC key
	statePrefix    = "os."           // os.<id>: the flow's data
	stateUsedPrefx = "ou."           // ou.<id>: the state was used
)

// connectState is what a flow's callback needs, stored at start.
type connectState struct {
	Project     string    `json:"project"`
	User        string    `json:"user"`
	Integration string    `json:"integration"`
	Credential  string    `json:"credential"`
	Verifier    string    `json:"verifier"`
	RedirectURI string    `json:"redirectUri"`
	Expires     time.Time `json:"expires"`
}

// oauthSecret is a credential secret stored by the flow; `accessToken` is
// what an http step's `auth: credential` with bearer auth sends.
type oauthSecret struct {
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	TokenType    string    `json:"tokenType,omitempty"`
	ExpiresAt    time.Time `json:"expiresAt,omitzero"`
}

func (o oauthSecret) toMap() map[string]any {
	m := map[string]any{"accessToken": o.AccessToken, "oauth": true}
	if o.RefreshToken != "" {
		m["refreshToken"] = o.RefreshToken
	}
	if o.TokenType != "" {
		m["tokenType"] = o.TokenType
	}
	if !o.ExpiresAt.IsZero() {
		m["expiresAt"] = o.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return m
}

// over is the secret to store when o replaces the tokens of prev: the token
// fields are o's, and what else prev holds (webhook secrets of
// subscriptions and handshakes, which the provider still signs with) is
// kept.
func (o oauthSecret) over(prev map[string]any) map[string]any {
	m := o.toMap()
	for k, v := range prev {
		switch k {
		case "accessToken", "refreshToken", "tokenType", "expiresAt", "oauth":
		default:
			m[k] = v
		}
	}
	return m
}

func secretFromMap(m map[string]any) oauthSecret {
	var o oauthSecret
	o.AccessToken, _ = m["accessToken"].(string)
	o.RefreshToken, _ = m["refreshToken"].(string)
	o.TokenType, _ = m["tokenType"].(string)
	if s, ok := m["expiresAt"].(string); ok {
		o.ExpiresAt, _ = time.Parse(time.RFC3339, s)
	}
	return o
}

func (o oauthSecret) token() *oauth2.Token {
	return &oauth2.Token{AccessToken: o.AccessToken, RefreshToken: o.RefreshToken, TokenType: o.TokenType, Expiry: o.ExpiresAt}
}

func fromToken(t *oauth2.Token) oauthSecret {
	return oauthSecret{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType, ExpiresAt: t.Expiry}
}

// registerConnect mounts the connect flow, the project's OAuth client and
// the forced refresh.
func (s *Service) registerConnect(e *echo.Echo) {
	e.GET("/v1/connect/:p/:i/start", s.connectStart)
	e.GET(CallbackPath, s.connectCallback)
	e.PUT("/v1/projects/:p/integrations/:i/oauth-client", s.putOAuthClient)
	e.POST("/v1/projects/:p/users/:u/credentials/:c/refresh", s.forceRefresh)
}

// lifecycleKV is the sb_lifecycle bucket (bound at Start).
func (s *Service) lifecycleKV(ctx context.Context) (jetstream.KeyValue, error) {
	if s.opts.JS == nil {
		return nil, apierr.New(http.StatusServiceUnavailable, "unavailable", "the OAuth connect flow is not configured on this process")
	}
	kv, err := s.opts.JS.KeyValue(ctx, subjects.BucketLifecycle)
	if err != nil {
		return nil, apierr.Unavailable(fmt.Errorf("lifecycle: bucket %s: %w", subjects.BucketLifecycle, err))
	}
	return kv, nil
}

// stateKey returns the HMAC key every replica signs states with, creating
// it on first use (KV Create: of two replicas creating it, one wins and
// both use the winner's).
func (s *Service) stateKey(ctx context.Context, kv jetstream.KeyValue) ([]byte, error) {
	for range 3 {
		e, err := kv.Get(ctx, stateKeyKey)
		if err == nil {
			return e.Value(), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, apierr.Unavailable(fmt.Errorf("lifecycle: read the state key: %w", err))
		}
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		if _, err := kv.Create(ctx, stateKeyKey, k); err == nil {
			return k, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, apierr.Unavailable(fmt.Errorf("lifecycle: create the state key: %w", err))
		}
	}
	return nil, apierr.Unavailable(errors.New("lifecycle: the state key keeps changing"))
}

func signState(key []byte, id string, exp int64) string {
	payload := id + "." + strconv.FormatInt(exp, 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// parseState verifies a state's signature and returns its id and expiry.
func parseState(key []byte, state string) (string, time.Time, bool) {
	parts := strings.Split(state, ".")
	if len(parts) != 3 || len(parts[0]) != 22 {
		return "", time.Time{}, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	want := signState(key, parts[0], exp)
	if !hmac.Equal([]byte(want), []byte(state)) {
		return "", time.Time{}, false
	}
	return parts[0], time.Unix(exp, 0), true
}

// oauthIntegration returns the integration's manifest with its oauth
// section and the project's client, or the API error saying what is
// missing.
func (s *Service) oauthIntegration(ctx context.Context, p, i string) (*manifest.Manifest, *directory.OAuthClient, error) {
	in, ok := s.cat.Integration(p, i)
	if !ok {
		return nil, nil, apierr.NotFound("integration_not_found", "integration %q does not exist in project %q", i, p)
	}
	m := in.Effective()
	if m.OAuth == nil {
		return nil, nil, apierr.BadRequest("oauth_not_supported", "integration %q declares no oauth section: connect it with PUT …/credentials/{c}", i).WithField("integration")
	}
	cl, err := s.dir.OAuthClient(ctx, p, i)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, nil, apierr.New(http.StatusConflict, "oauth_client_missing",
			"project %q has no OAuth client for %q: PUT /v1/projects/%s/integrations/%s/oauth-client first", p, i, p, i)
	}
	if err != nil {
		return nil, nil, apierr.Unavailable(err)
	}
	return m, cl, nil
}

// oauthConfig is the golang.org/x/oauth2 configuration of an integration.
func (s *Service) oauthConfig(m *manifest.Manifest, cl *directory.OAuthClient, redirectURI string) *oauth2.Config {
	style := oauth2.AuthStyleAutoDetect
	switch m.OAuth.AuthStyle {
	case "header":
		style = oauth2.AuthStyleInHeader
	case "params":
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: cl.ClientID, ClientSecret: cl.ClientSecret, Scopes: m.OAuth.Scopes,
		RedirectURL: redirectURI,
		Endpoint:    oauth2.Endpoint{AuthURL: m.OAuth.AuthorizeURL, TokenURL: m.OAuth.TokenURL, AuthStyle: style}}
}

// redirectURI is the callback URL providers send the browser back to:
// Options.PublicURL + CallbackPath, or without one (dev, where the
// listener may be on a random port) the host this start request came to.
// The exchange sends the same URI (stored with the flow), as RFC 6749
// §4.1.3 requires.
func (s *Service) redirectURI(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return strings.TrimRight(s.opts.PublicURL, "/") + CallbackPath
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + CallbackPath
}

// oauthCtx carries the provider HTTP client for golang.org/x/oauth2.
func (s *Service) oauthCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.httpClient)
}

func (s *Service) connectStart(c *echo.Context) error {
	r := c.Request()
	// A browser following a link cannot send a header: the user token may
	// come as ?token= (used once, right here, and not logged).
	if r.Header.Get("Authorization") == "" {
		if tok := r.URL.Query().Get("token"); tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	p, err := pathParam(c, "p")
	if err != nil {
		return err
	}
	pr, err := s.access.Project(r, p)
	if err != nil {
		return err
	}
	user, err := access.ActingUser(pr, r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	i, err := pathParam(c, "i")
	if err != nil {
		return err
	}
	if !workflow.ValidID(i) {
		return apierr.BadRequest("invalid_id", "%q is not a valid integration id", i).WithField("integration")
	}
	credID := r.URL.Query().Get("credential")
	if credID == "" {
		credID = i
	}
	if err := access.RequireID("credential", credID); err != nil {
		return err
	}
	ctx := r.Context()
	m, cl, err := s.oauthIntegration(ctx, p, i)
	if err != nil {
		return err
	}
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	key, err := s.stateKey(ctx, kv)
	if err != nil {
		return err
	}
	idb := make([]byte, 16)
	_, _ = rand.Read(idb)
	id := base64.RawURLEncoding.EncodeToString(idb)
	exp := time.Now().Add(s.stateTTL).Truncate(time.Second)
	st := connectState{Project: p, User: user, Integration: i, Credential: credID, Verifier: oauth2.GenerateVerifier(), Expires: exp,
		RedirectURI: s.redirectURI(r)}
	b, _ := json.Marshal(st)
	// The stored flow outlives the state a little, so an expired state is
	// told apart from an unknown one.
	if _, err := kv.Create(ctx, statePrefix+id, b, jetstream.KeyTTL(s.stateTTL+time.Minute)); err != nil {
		return apierr.Unavailable(fmt.Errorf("lifecycle: store the connect state: %w", err))
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier)}
	for k, v := range m.OAuth.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	s.logger.Info("oauth connect started", "project", p, "user", user, "integration", i, "credential", credID)
	return c.Redirect(http.StatusFound, s.oauthConfig(m, cl, st.RedirectURI).AuthCodeURL(signState(key, id, exp.Unix()), opts...))
}

func (s *Service) connectCallback(c *echo.Context) error {
	r := c.Request()
	q := r.URL.Query()
	ctx := r.Context()
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	key, err := s.stateKey(ctx, kv)
	if err != nil {
		return err
	}
	id, exp, ok := parseState(key, q.Get("state"))
	switch {
	case !ok:
		return apierr.BadRequest("invalid_state", "the state parameter is missing or was not issued by this server").WithField("state")
	case time.Now().After(exp):
		return apierr.BadRequest("state_expired", "the connect flow took longer than %s: start it again", s.stateTTL).WithField("state")
	}
	if _, err := kv.Create(ctx, stateUsedPrefx+id, []byte("1"), jetstream.KeyTTL(s.stateTTL+time.Minute)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return apierr.BadRequest("state_used", "this connect flow was already completed (a state is used once): start it again").WithField("state")
		}
		return apierr.Unavailable(fmt.Errorf("lifecycle: mark the state used: %w", err))
	}
	e, err := kv.Get(ctx, statePrefix+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return apierr.BadRequest("state_expired", "the connect flow is no longer known: start it again").WithField("state")
	}
	if err != nil {
		return apierr.Unavailable(fmt.Errorf("lifecycle: read the connect state: %w", err))
	}
	var st connectState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return apierr.Internal(fmt.Errorf("lifecycle: unreadable connect state: %w", err))
	}
	if pe := q.Get("error"); pe != "" {
		return apierr.BadRequest("authorization_denied", "the provider answered %s: %s", pe, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return apierr.BadRequest("missing_field", "code is required").WithField("code")
	}
	m, cl, err := s.oauthIntegration(ctx, st.Project, st.Integration)
	if err != nil {
		return err
	}
	xctx, cancel := context.WithTimeout(s.oauthCtx(ctx), 30*time.Second)
	defer cancel()
	tok, err := s.oauthConfig(m, cl, st.RedirectURI).Exchange(xctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return apierr.New(http.StatusBadGateway, "code_exchange_failed", "the provider refused the code: %s", providerError(err)).Wrap(err)
	}
	account, err := s.accountID(xctx, m, tok)
	if err != nil {
		return err
	}
	sec := fromToken(tok)
	// A reconnect of a credential that exists keeps its non-token secrets
	// (a subscription's signing secret stays valid at the provider).
	prev, err := s.dir.Secret(ctx, st.Project, st.User, st.Credential)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return storeErr(err)
	}
	cred, rev, err := s.dir.UpdateCredential(ctx, st.Project, st.User, st.Credential, func(cr *directory.Credential, isNew bool) error {
		if !isNew && cr.Integration != st.Integration {
			return integrationMismatch(st.Credential, cr.Integration, st.Integration)
		}
		cr.Integration, cr.ProviderAccountID, cr.Status = st.Integration, account, directory.CredentialValid
		cr.Secret, cr.HasSecret = sec.over(prev), true
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if err := s.scheduleRefresh(ctx, kv, st.Project, st.User, st.Credential, sec.ExpiresAt); err != nil {
		// The credential is stored and works until it expires; the
		// refresher also finds it on its next forced or scheduled pass.
		s.logger.Warn("oauth refresh not scheduled", "project", st.Project, "user", st.User, "credential", st.Credential, "err", err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	s.logger.Info("oauth credential connected", "project", st.Project, "user", st.User, "credential", st.Credential,
		"integration", st.Integration, "expires", sec.ExpiresAt)
	return c.JSON(http.StatusOK, cred.Public())
}

// providerError is the provider's error code and description, never the
// response body beyond them.
func providerError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
		}
		return fmt.Sprintf("HTTP %d", re.Response.StatusCode)
	}
	return "the token endpoint could not be reached"
}

// maxAccountBody bounds the provider's account answer.
const maxAccountBody = 1 << 20

// accountID reads the provider account id as the manifest says: a field
// of the token response, or of the JSON answer to a GET of accountId.url
// with the new access token. No id is a 502: webhooks could never be
// routed to the credential.
func (s *Service) accountID(ctx context.Context, m *manifest.Manifest, tok *oauth2.Token) (string, error) {
	spec := m.OAuth.AccountID
	var doc any
	if spec.URL == "" {
		top, _, _ := strings.Cut(spec.Field, ".")
		doc = map[string]any{top: tok.Extra(top)}
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.URL, nil)
		if err != nil {
			return "", apierr.Internal(err)
		}
		tok.SetAuthHeader(req)
		req.Header.Set("Accept", "application/json")
		res, err := s.httpClient.Do(req)
		if err != nil {
			return "", apierr.New(http.StatusBadGateway, "no_account_id", "the provider's account endpoint could not be reached").Wrap(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(io.LimitReader(res.Body, maxAccountBody))
		if err != nil || res.StatusCode/100 != 2 || json.Unmarshal(body, &doc) != nil {
			return "", apierr.New(http.StatusBadGateway, "no_account_id", "the provider's account endpoint answered HTTP %d without a JSON account", res.StatusCode)
		}
	}
	v := doc
	for _, part := range strings.Split(spec.Field, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			v = nil
			break
		}
		v = mm[part]
	}
	var id string
	switch x := v.(type) {
	case string:
		id = x
	case float64:
		id = strconv.FormatFloat(x, 'f', -1, 64)
	}
	if id == "" || len(id) > MaxIDLen {
		return "", apierr.New(http.StatusBadGateway, "no_account_id", "the provider returned no account id at %q: the credential was not stored", spec.Field)
	}
	return id, nil
}

// putOAuthClient stores the project's OAuth client of an integration (API
// key only): {"clientId", "clientSecret"}.
func (s *Service) putOAuthClient(c *echo.Context) error {
	p, err := s.authorizeKey(c, "an OAuth client is set with an API key, not a user token")
	if err != nil {
		return err
	}
	i, err := pathParam(c, "i")
	if err != nil {
		return err
	}
	if _, ok := s.cat.Integration(p, i); !ok {
		return apierr.NotFound("integration_not_found", "integration %q does not exist in project %q", i, p)
	}
	b, err := readJSON(s, c, func(b []byte) (*directory.OAuthClient, error) {
		var v directory.OAuthClient
		if err := decodeObject(b, &v); err != nil {
			return nil, err
		}
		return &v, nil
	})
	if err != nil {
		return err
	}
	if _, err := s.dir.SetOAuthClient(c.Request().Context(), p, i, b); err != nil {
		return storeErr(err)
	}
	s.logger.Info("oauth client set", "project", p, "integration", i)
	return c.JSON(http.StatusOK, map[string]any{"integration": i, "clientId": b.ClientID, "clientSecret": map[string]bool{"redacted": true}})
}

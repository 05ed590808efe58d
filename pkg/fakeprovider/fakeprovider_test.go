package fakeprovider_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
)

// The fake provider against golang.org/x/oauth2 itself: authorize redirect
// with state and PKCE, code exchange, refresh with rotation, and the
// invalid_grant answers a real provider gives.
func TestWireFormat(t *testing.T) {
	fp := fakeprovider.New(fakeprovider.Options{ClientID: "cid", ClientSecret: "csecret"})
	srv := httptest.NewServer(fp.Handler())
	t.Cleanup(srv.Close)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cfg := &oauth2.Config{ClientID: "cid", ClientSecret: "csecret", RedirectURL: "https://app.example/cb", Scopes: []string{"read"},
			Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token", AuthStyle: style}}
		authorize := func(t *testing.T, verifier string) string {
			t.Helper()
			res, err := noRedirect.Get(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			loc, _ := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusFound || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
				t.Fatalf("authorize: %d %s", res.StatusCode, loc)
			}
			return loc.Query().Get("code")
		}
		t.Run("exchange and refresh", func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			tok, err := cfg.Exchange(ctx, authorize(t, v), oauth2.VerifierOption(v))
			if err != nil || tok.AccessToken == "" || tok.RefreshToken == "" || tok.Expiry.IsZero() {
				t.Fatalf("exchange: %+v %v", tok, err)
			}
			old := tok.RefreshToken
			tok.Expiry = tok.Expiry.Add(-2 * 3600e9) // expired: the source refreshes
			next, err := cfg.TokenSource(ctx, tok).Token()
			if err != nil || next.RefreshToken == old || next.AccessToken == tok.AccessToken {
				t.Fatalf("refresh: %+v %v", next, err)
			}
			_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: old}).Token()
			if !isInvalidGrant(err) {
				t.Fatalf("rotated refresh token reused: %v", err)
			}
		})
		t.Run("bad input", func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := authorize(t, v)
			if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); !isInvalidGrant(err) {
				t.Fatalf("wrong verifier: %v", err)
			}
			if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v)); !isInvalidGrant(err) {
				t.Fatalf("code used twice: %v", err)
			}
			bad := *cfg
			bad.ClientSecret = "nope"
			v2 := oauth2.GenerateVerifier()
			var re *oauth2.RetrieveError
			if _, err := bad.Exchange(ctx, authorize(t, v2), oauth2.VerifierOption(v2)); !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
				t.Fatalf("bad client secret: %v", err)
			}
		})
		t.Run("revoked", func(t *testing.T) {
			fp.SetNextAccount("acct-r")
			v := oauth2.GenerateVerifier()
			tok, err := cfg.Exchange(ctx, authorize(t, v), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			fp.Revoke("acct-r")
			if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !isInvalidGrant(err) {
				t.Fatalf("revoked: %v", err)
			}
		})
	}
}

func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

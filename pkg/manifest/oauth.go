package manifest

import (
	"net/url"
	"strings"
)

// OAuth is how a user connects an account of the integration with OAuth 2.0
// (authorization code grant with PKCE, RFC 6749 and 7636). The app's client
// id and secret are not part of the manifest: they are stored sealed per
// project (PUT …/integrations/{i}/oauth-client).
type OAuth struct {
	// AuthorizeURL is the provider's authorization endpoint.
	AuthorizeURL string `json:"authorizeUrl" yaml:"authorizeUrl"`
	// TokenURL is the provider's token endpoint.
	TokenURL string `json:"tokenUrl" yaml:"tokenUrl"`
	// Scopes requested at authorize time.
	Scopes []string `json:"scopes,omitempty" yaml:"scopes,omitempty"`
	// AuthStyle is how the client authenticates at the token endpoint:
	// "header" (HTTP Basic), "params" (form fields), or "" (try both).
	AuthStyle string `json:"authStyle,omitempty" yaml:"authStyle,omitempty"`
	// AuthParams are extra authorize query parameters (Google's
	// access_type: offline, prompt: consent).
	AuthParams map[string]string `json:"authParams,omitempty" yaml:"authParams,omitempty"`
	// AccountID is where the provider account id (the tenant webhooks
	// are routed by) comes from.
	AccountID OAuthAccountID `json:"accountId" yaml:"accountId"`
}

// OAuthAccountID locates the provider account id: with URL, a GET of that
// URL with the new access token as bearer and Field a dot path into its
// JSON answer; without URL, Field in the token response (Slack's team.id).
type OAuthAccountID struct {
	URL   string `json:"url,omitempty" yaml:"url,omitempty"`
	Field string `json:"field" yaml:"field"`
}

func (o *OAuth) compile(p *Problems) {
	for _, u := range []struct{ field, v string }{{"oauth.authorizeUrl", o.AuthorizeURL}, {"oauth.tokenUrl", o.TokenURL}, {"oauth.accountId.url", o.AccountID.URL}} {
		if u.v == "" && u.field == "oauth.accountId.url" {
			continue
		}
		pu, err := url.Parse(u.v)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			p.add(u.field, "must be an absolute http(s) URL")
		}
	}
	switch o.AuthStyle {
	case "", "header", "params":
	default:
		p.add("oauth.authStyle", "must be header, params or empty (auto)")
	}
	if f := o.AccountID.Field; f == "" || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
		p.add("oauth.accountId.field", "is required: a field name or dotted path of the provider account id")
	}
}

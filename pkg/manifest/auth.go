package manifest

import (
	"encoding/base64"
	"errors"
	"net/http"
)

// DefaultAPIKeyHeader is where api_key auth puts secret.apiKey unless
// Auth.Header names another header.
const DefaultAPIKeyHeader = "X-API-Key"

// Apply sets h's authentication from a credential's secret as a says. With
// no Type the secret's keys decide: accessToken → bearer, apiKey → api_key,
// username → basic. It is the one rule for every outbound call made with a
// credential (http steps with auth: credential, polls); the error says what
// the secret lacks ("no secret.accessToken") for the caller to name the
// credential.
func (a Auth) Apply(h http.Header, secret map[string]any) error {
	str := func(k string) string { v, _ := secret[k].(string); return v }
	typ := a.Type
	if typ == "" {
		switch {
		case str("accessToken") != "":
			typ = "bearer"
		case str("apiKey") != "":
			typ = "api_key"
		case str("username") != "":
			typ = "basic"
		}
	}
	switch typ {
	case "bearer":
		if str("accessToken") == "" {
			return errors.New("no secret.accessToken")
		}
		h.Set("Authorization", "Bearer "+str("accessToken"))
	case "api_key":
		if str("apiKey") == "" {
			return errors.New("no secret.apiKey")
		}
		header := a.Header
		if header == "" {
			header = DefaultAPIKeyHeader
		}
		h.Set(header, str("apiKey"))
	case "basic":
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(str("username")+":"+str("password"))))
	case "none":
	default:
		return errors.New("no usable secret (accessToken, apiKey or username)")
	}
	return nil
}

package reqbody

import (
	"net/http"
	"strings"

	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// credentialHeaders are never passed to a run.
var credentialHeaders = map[string]bool{
	"authorization":       true,
	"cookie":              true,
	"proxy-authorization": true,
}

// ToProto captures r as the request envelope: method, headers with
// lower-cased names (the Host too, as "host") minus the ones that carry
// credentials (Authorization, Cookie, Proxy-Authorization), query, the raw
// body and its Content-Type.
func ToProto(r *http.Request, body []byte) *sbv1.Request {
	out := &sbv1.Request{
		Method:      r.Method,
		Headers:     map[string]*sbv1.Values{},
		Query:       map[string]*sbv1.Values{},
		Body:        body,
		ContentType: r.Header.Get("Content-Type"),
	}
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if credentialHeaders[name] || len(vs) == 0 {
			continue
		}
		appendValues(out.Headers, name, vs)
	}
	if r.Host != "" {
		if _, ok := out.Headers["host"]; !ok {
			appendValues(out.Headers, "host", []string{r.Host})
		}
	}
	if r.URL != nil {
		for k, vs := range r.URL.Query() {
			appendValues(out.Query, k, vs)
		}
	}
	return out
}

// appendValues adds values under key. Protobuf strings must be valid UTF-8
// and HTTP does not promise that, so invalid bytes become U+FFFD rather than
// making the whole request unpublishable.
func appendValues(m map[string]*sbv1.Values, key string, vs []string) {
	key = strings.ToValidUTF8(key, "\uFFFD")
	clean := make([]string, len(vs))
	for i, v := range vs {
		clean[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	if prev, ok := m[key]; ok {
		prev.Values = append(prev.Values, clean...)
		return
	}
	m[key] = &sbv1.Values{Values: clean}
}

// Header returns the envelope's headers as an http.Header (for Validate).
func Header(r *sbv1.Request) http.Header {
	h := make(http.Header, len(r.GetHeaders()))
	for k, v := range r.GetHeaders() {
		for _, s := range v.GetValues() {
			h.Add(k, s)
		}
	}
	return h
}

// Env is what a run sees as trigger.request: {"method", "headers", "query",
// "body"}. Header and query values are a string, or []any of strings when
// repeated; body is Parse's result, or the raw body as a string when it does
// not parse.
func Env(r *sbv1.Request, lim Limits) map[string]any {
	body, err := Parse(r.GetContentType(), r.GetBody(), lim)
	if err != nil {
		body = string(r.GetBody())
	}
	return map[string]any{
		"method":  r.GetMethod(),
		"headers": valuesMap(r.GetHeaders()),
		"query":   valuesMap(r.GetQuery()),
		"body":    body,
	}
}

func valuesMap(m map[string]*sbv1.Values) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch vs := v.GetValues(); len(vs) {
		case 0:
			out[k] = ""
		default:
			out[k] = collapse(vs)
		}
	}
	return out
}

package verify

import "strings"

// Coverage says which parts of a request a source's signature authenticates.
// The receiver uses it to refuse, say, an event type read from a header the
// provider does not sign (X-Shopify-Topic, X-GitHub-Event): anyone holding a
// captured body could replay it with another value there.
type Coverage struct {
	Body   bool     // the raw body (or, for form templates, its parameters)
	URL    bool     // the URL including its query
	Method bool     // the HTTP method
	Header []string // canonical names of signed headers
}

// Coverage reports what the compiled spec's signature covers. Token, Basic
// and Bearer schemes authenticate the sender but cover nothing of the request.
// A JWT covers its own claims only.
func (v *SpecVerifier) Coverage() Coverage {
	var c Coverage
	switch v.spec.Scheme {
	case "token", "basic", "bearer", "jwt":
		return c
	}
	add := func(names string) {
		for _, n := range strings.Split(names, "|") {
			c.Header = append(c.Header, canonicalHeader(n))
		}
	}
	for _, s := range v.tmpl {
		switch s.kind {
		case "body", "form", "field":
			c.Body = true
		case "url", "url_hubspot":
			c.URL = true
		case "method":
			c.Method = true
		case "header":
			add(s.arg)
		case "timestamp":
			if t := v.spec.Timestamp; t != nil && t.Header != "" {
				add(t.Header)
			}
		}
	}
	if v.spec.BodyHashParam != "" && c.URL {
		c.Body = true
	}
	return c
}

// Signs reports whether a header is covered by the signature.
func (c Coverage) Signs(header string) bool {
	h := canonicalHeader(header)
	for _, s := range c.Header {
		if s == h {
			return true
		}
	}
	return false
}

func canonicalHeader(h string) string {
	return strings.ToLower(strings.TrimSpace(h))
}

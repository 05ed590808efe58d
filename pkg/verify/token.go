package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenEqual compares digests, so neither the content nor the length of the
// expected token leaks through timing.
func tokenEqual(got, want string) bool {
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (v *SpecVerifier) checkToken(r Request, secrets []Secret) (Result, error) {
	s := v.spec
	var got []string
	all := false // every value must match (Graph: every notification's clientState)
	switch s.Scheme {
	case "basic", "bearer":
		h := s.Header
		if h == "" {
			h = "Authorization"
		}
		raw, ok := r.header(h)
		if !ok || raw == "" {
			return Result{}, newErr(ErrMissingSignature, "header %s is missing", h)
		}
		scheme, cred, _ := strings.Cut(raw, " ")
		want := map[string]string{"basic": "basic", "bearer": "bearer"}[s.Scheme]
		if !strings.EqualFold(scheme, want) {
			return Result{}, newErr(ErrBadSignature, "header %s is not %s credentials", h, want)
		}
		cred = strings.TrimSpace(cred)
		if s.Scheme == "basic" {
			b, err := base64.StdEncoding.DecodeString(cred)
			if err != nil {
				return Result{}, newErr(ErrBadSignature, "basic credentials are not base64")
			}
			cred = string(b)
		}
		got = []string{cred}
	default:
		switch {
		case s.Header != "":
			for _, h := range headerValues(r, s.Header) {
				h = strings.TrimSpace(h)
				if s.Prefix != "" {
					h = strings.TrimPrefix(h, s.Prefix)
				}
				got = append(got, h)
			}
		case s.Query != "":
			if u, err := url.Parse(r.URL); err == nil {
				if q, err := url.ParseQuery(u.RawQuery); err == nil {
					got = q[s.Query]
				}
			}
		case s.Field != "":
			got = newBodyView(r.Body).strings(s.Field)
			all = strings.Contains(s.Field, "*")
		}
	}
	if len(got) == 0 {
		return Result{}, newErr(ErrMissingSignature, "token %s is missing", v.tokenWhere())
	}
	// Bound the guesses one request can carry: any one of several header or
	// query values may match, so many values would be many guesses.
	if (!all && len(got) > maxSignatures) || len(got) > 1000 {
		return Result{}, newErr(ErrBadSignature, "too many tokens")
	}
	for _, sec := range secrets {
		ok := all
		for _, g := range got {
			m := len(g) <= maxSignatureHeader && tokenEqual(g, sec.Value)
			if all {
				ok = ok && m
			} else if m {
				ok = true
			}
		}
		if ok {
			return Result{SecretID: sec.ID, secret: sec}, nil
		}
	}
	return Result{}, newErr(ErrBadSignature, "token %s does not match an active secret", v.tokenWhere())
}

func (v *SpecVerifier) tokenWhere() string {
	switch {
	case v.spec.Scheme == "basic" || v.spec.Scheme == "bearer":
		return "in Authorization"
	case v.spec.Header != "":
		return "header " + v.spec.Header
	case v.spec.Query != "":
		return "query " + v.spec.Query
	}
	return "field " + v.spec.Field
}

// checkJWT verifies an HMAC-signed JWT (monday.com, Jira OAuth 2.0 dynamic
// webhooks): signature with any active secret, exp required, optional aud.
func (v *SpecVerifier) checkJWT(r Request, secrets []Secret, now time.Time) (Result, error) {
	h := v.spec.Header
	if h == "" {
		h = "Authorization"
	}
	raw, ok := r.header(h)
	raw = strings.TrimSpace(raw)
	if !ok || raw == "" {
		return Result{}, newErr(ErrMissingSignature, "header %s is missing", h)
	}
	if sch, tok, found := strings.Cut(raw, " "); found && (strings.EqualFold(sch, "bearer") || strings.EqualFold(sch, "jwt")) {
		raw = strings.TrimSpace(tok)
	}
	if len(raw) > maxSignatureHeader {
		return Result{}, newErr(ErrBadSignature, "token is too long")
	}
	method := "HS256"
	if v.spec.Algorithm == "sha512" {
		method = "HS512"
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{method}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(time.Minute),
	}
	if aud := v.spec.Audience; aud != "" {
		if aud == "{url}" {
			aud = r.URL
			if i := strings.IndexByte(aud, '?'); i >= 0 {
				aud = aud[:i]
			}
		}
		opts = append(opts, jwt.WithAudience(aud))
	}
	var lastErr error
	for _, sec := range secrets {
		k, err := v.key(sec)
		if err != nil {
			continue
		}
		_, err = jwt.Parse(raw, func(*jwt.Token) (any, error) { return k.sym, nil }, opts...)
		if err == nil {
			return Result{SecretID: sec.ID, secret: sec}, nil
		}
		lastErr = err
	}
	if errors.Is(lastErr, jwt.ErrTokenExpired) || errors.Is(lastErr, jwt.ErrTokenNotValidYet) || errors.Is(lastErr, jwt.ErrTokenUsedBeforeIssued) {
		// Only reported when the signature itself verified (golang-jwt checks
		// claims after the signature), so this is an authentic but stale token.
		return Result{}, newErr(ErrTimestampOutOfRange, "token is outside its validity window")
	}
	return Result{}, newErr(ErrBadSignature, "token does not verify with an active secret")
}

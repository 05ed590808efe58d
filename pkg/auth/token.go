package auth

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by VerifyUserToken and ParseUnverifiedProject. They are
// always wrapped with detail; test for them with errors.Is.
var (
	// ErrTokenMissing means no token was presented at all.
	ErrTokenMissing = errors.New("auth: token missing")
	// ErrTokenExpired means the token was genuine (signature checked) but
	// its exp has passed; clients should obtain a new one.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrTokenInvalid covers everything else: malformed, wrong algorithm,
	// bad signature, missing or ill-typed claims.
	ErrTokenInvalid = errors.New("auth: token invalid")
)

const (
	// Leeway absorbs clock skew between the minting service and us.
	Leeway = 30 * time.Second

	// MaxTokenLen bounds the work an unauthenticated request can cause
	// before the signature is checked (base64 and JSON decoding). Real
	// tokens are well under 1 KiB.
	MaxTokenLen = 8 << 10

	// The only accepted algorithm. Accepting whatever the header says is the
	// classic JWT algorithm-confusion hole (alg "none", or HS256 keyed with
	// the public key's bytes).
	algRS256 = "RS256"
)

// Claims is what Switchboard trusts from a verified user token.
type Claims struct {
	// Subject is the end user's id within the project (sub).
	Subject string
	// Project is the project the token was minted for (aud). Empty means
	// the token does not name one; the caller decides if that is allowed.
	Project   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// newParser builds a parser for untrusted input. Claims are validated by
// hand in VerifyUserToken so every failure gets a precise message and so
// the parser does not need a clock.
func newParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{algRS256}),
		// Strict decoding rejects non-canonical base64, so one token has
		// exactly one string form; the cache relies on that.
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(),
	)
}

// ParseUnverifiedProject returns the project (aud) a token claims to be for
// WITHOUT checking its signature. Use it only to pick which project's keys to
// verify with, or to distinguish "valid token for another project" (403) from
// "not a valid token" (401) after verification; never to authorize.
func ParseUnverifiedProject(token string) (project string, err error) {
	if token == "" {
		return "", ErrTokenMissing
	}
	if len(token) > MaxTokenLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, MaxTokenLen)
	}
	var rc jwt.RegisteredClaims
	if _, _, err := newParser().ParseUnverified(token, &rc); err != nil {
		return "", fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	return audienceProject(rc.Audience)
}

// audienceProject maps aud to a project. RFC 7519 allows aud to be a string
// or an array; a token naming several projects is rejected because a
// project-scoped credential must be unambiguous.
func audienceProject(aud jwt.ClaimStrings) (string, error) {
	switch len(aud) {
	case 0:
		return "", nil
	case 1:
		return aud[0], nil
	default:
		return "", fmt.Errorf("%w: aud names %d projects, want one", ErrTokenInvalid, len(aud))
	}
}

// VerifyUserToken checks token's RS256 signature against keys and validates
// its claims at time now. Any key may match, so a project can publish a new
// key before it starts signing with it and retire the old one afterwards.
//
// sub, iat and exp are required. exp is honoured with Leeway; so is nbf if
// present. A future iat is tolerated: exp alone bounds a token's life.
//
// Errors wrap ErrTokenMissing, ErrTokenExpired or ErrTokenInvalid.
// ErrTokenExpired is only returned for tokens whose signature verified, so it
// never tells a forger anything.
func VerifyUserToken(token string, keys []*rsa.PublicKey, now time.Time) (Claims, error) {
	if token == "" {
		return Claims{}, ErrTokenMissing
	}
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, MaxTokenLen)
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, 0, len(keys))}
	for _, k := range keys {
		// A nil key would make the library's RSA verify panic.
		if k != nil && k.N != nil {
			set.Keys = append(set.Keys, k)
		}
	}
	if len(set.Keys) == 0 {
		return Claims{}, fmt.Errorf("%w: no verification keys configured", ErrTokenInvalid)
	}

	var rc jwt.RegisteredClaims
	_, err := newParser().ParseWithClaims(token, &rc, func(t *jwt.Token) (any, error) {
		// Redundant with WithValidMethods, kept so a future edit to the
		// parser options cannot silently reopen algorithm confusion.
		if _, ok := t.Method.(*jwt.SigningMethodRSA); !ok || t.Method.Alg() != algRS256 {
			return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
		}
		preferKID(set.Keys, t.Header["kid"])
		return set, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && len(set.Keys) > 1:
		return Claims{}, fmt.Errorf("%w: %v (tried %d keys)", ErrTokenInvalid, err, len(set.Keys))
	default:
		return Claims{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}

	// The signature is good from here on.
	return validateClaims(&rc, now)
}

// preferKID moves the key named by the token's kid header to the front, so
// during rotation a token signed with the newer key costs one RSA operation
// instead of one per older key. kid is unauthenticated, so it only reorders:
// every key is still tried and a lying kid gains nothing. Computing a KeyID
// costs roughly a tenth of an RSA verification, so this pays for itself as
// soon as the signing key is not first.
func preferKID(keys []jwt.VerificationKey, kid any) {
	id, ok := kid.(string)
	if !ok || id == "" || len(keys) < 2 {
		return
	}
	for i, k := range keys {
		if KeyID(k.(*rsa.PublicKey)) == id {
			copy(keys[1:i+1], keys[:i])
			keys[0] = k
			return
		}
	}
}

func validateClaims(rc *jwt.RegisteredClaims, now time.Time) (Claims, error) {
	var missing []string
	if rc.Subject == "" {
		missing = append(missing, "sub")
	}
	if rc.IssuedAt == nil {
		missing = append(missing, "iat")
	}
	if rc.ExpiresAt == nil {
		missing = append(missing, "exp")
	}
	if len(missing) > 0 {
		return Claims{}, fmt.Errorf("%w: missing required claim(s) %s", ErrTokenInvalid, strings.Join(missing, ", "))
	}
	project, err := audienceProject(rc.Audience)
	if err != nil {
		return Claims{}, err
	}
	exp := rc.ExpiresAt.Time
	if !now.Before(exp.Add(Leeway)) {
		return Claims{}, fmt.Errorf("%w: expired at %s (now %s)",
			ErrTokenExpired, exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if rc.NotBefore != nil && now.Add(Leeway).Before(rc.NotBefore.Time) {
		return Claims{}, fmt.Errorf("%w: not valid before %s",
			ErrTokenInvalid, rc.NotBefore.Time.UTC().Format(time.RFC3339))
	}
	return Claims{
		Subject:   rc.Subject,
		Project:   project,
		IssuedAt:  rc.IssuedAt.Time,
		ExpiresAt: exp,
	}, nil
}

// MintUserToken signs an RS256 token for subject in project, valid for ttl
// from now. The kid header lets verifiers holding several keys log or pick
// the right one; verification does not depend on it.
func MintUserToken(key *rsa.PrivateKey, project, subject string, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case key == nil:
		return "", errors.New("auth: mint token: nil signing key")
	case subject == "":
		return "", errors.New("auth: mint token: empty subject")
	case ttl <= 0:
		return "", fmt.Errorf("auth: mint token: ttl must be positive, got %s", ttl)
	}
	// MapClaims rather than RegisteredClaims: the latter encodes aud as an
	// array unless a package-global in jwt is flipped, and we must not
	// mutate global state shared with the rest of the process.
	claims := jwt.MapClaims{
		"sub": subject,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if project != "" {
		claims["aud"] = project
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = KeyID(&key.PublicKey)
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: mint token: %w", err)
	}
	return s, nil
}

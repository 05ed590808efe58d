package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // linked for crypto.SHA512 in the RS512 case
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/auth"
)

// testKeys are generated once per test binary; RSA keygen is slow.
var testKeys = sync.OnceValue(func() [3]*rsa.PrivateKey {
	var ks [3]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

var now = time.Unix(1_700_000_000, 0)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRS256 is the test oracle: a JWT built by hand from the RFC 7515/7518
// definitions, sharing no code with golang-jwt.
func signRS256(t testing.TB, key *rsa.PrivateKey, header, payload any) string {
	t.Helper()
	return signRaw(t, key, crypto.SHA256, b64(mustJSON(t, header))+"."+b64(mustJSON(t, payload)))
}

func signRaw(t testing.TB, key *rsa.PrivateKey, h crypto.Hash, signingInput string) string {
	t.Helper()
	hh := h.New()
	hh.Write([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(nil, key, h, hh.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	return signingInput + "." + b64(sig)
}

func signHS256(t testing.TB, secret []byte, payload any) string {
	t.Helper()
	in := b64(mustJSON(t, map[string]any{"alg": "HS256", "typ": "JWT"})) + "." + b64(mustJSON(t, payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64(m.Sum(nil))
}

var rsHeader = map[string]any{"alg": "RS256", "typ": "JWT"}

func baseClaims() map[string]any {
	return map[string]any{
		"sub": "user-1",
		"aud": "proj-a",
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

func with(kv ...any) map[string]any {
	c := baseClaims()
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

var sentinels = []error{auth.ErrTokenMissing, auth.ErrTokenExpired, auth.ErrTokenInvalid}

// checkErr asserts err matches exactly want among the sentinels.
func checkErr(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got nil error, want %v", want)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Fatalf("errors.Is(%q, %v) = %v", err, s, got)
		}
	}
}

func pubs(ks ...*rsa.PrivateKey) []*rsa.PublicKey {
	out := make([]*rsa.PublicKey, len(ks))
	for i, k := range ks {
		out[i] = &k.PublicKey
	}
	return out
}

// flipTrailingBits makes the last base64 char non-canonical while decoding
// to the same bytes under lenient decoding.
func flipTrailingBits(tok string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alpha, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alpha[last|1])
}

func TestVerifyUserToken(t *testing.T) {
	ks := testKeys()
	k1, k2, k3 := ks[0], ks[1], ks[2]
	pkix, err := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})

	valid := signRS256(t, k1, rsHeader, baseClaims())
	parts := strings.Split(valid, ".")
	otherPayload := b64(mustJSON(t, with("sub", "admin")))

	tests := []struct {
		name    string
		token   string
		keys    []*rsa.PublicKey
		want    Claims
		wantErr error
		msg     string // substring the error must contain
	}{
		{name: "valid", token: valid, keys: pubs(k1),
			want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "valid with kid and extra claims",
			token: signRS256(t, k1, map[string]any{"alg": "RS256", "kid": "whatever"}, with("iss", "x", "custom", []int{1})),
			keys:  pubs(k1), want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "no aud", token: signRS256(t, k1, rsHeader, with("aud", nil)), keys: pubs(k1),
			want: Claims{"user-1", "", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "aud single-element array", token: signRS256(t, k1, rsHeader, with("aud", []string{"proj-b"})), keys: pubs(k1),
			want: Claims{"user-1", "proj-b", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "aud two projects", token: signRS256(t, k1, rsHeader, with("aud", []string{"a", "b"})), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "aud"},
		{name: "aud wrong type", token: signRS256(t, k1, rsHeader, with("aud", 7)), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "iat far in future still accepted", token: signRS256(t, k1, rsHeader, with("iat", now.Add(24*time.Hour).Unix())),
			keys: pubs(k1), want: Claims{"user-1", "proj-a", now.Add(24 * time.Hour), now.Add(time.Hour)}},
		{name: "expired", token: signRS256(t, k1, rsHeader, with("exp", now.Add(-31*time.Second).Unix())), keys: pubs(k1),
			wantErr: auth.ErrTokenExpired, msg: "expired at"},
		{name: "expired exactly at leeway", token: signRS256(t, k1, rsHeader, with("exp", now.Add(-30*time.Second).Unix())), keys: pubs(k1),
			wantErr: auth.ErrTokenExpired},
		{name: "expired within leeway", token: signRS256(t, k1, rsHeader, with("exp", now.Add(-29*time.Second).Unix())), keys: pubs(k1),
			want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(-29 * time.Second)}},
		{name: "expired and wrong key is a signature error", token: signRS256(t, k3, rsHeader, with("exp", now.Add(-time.Hour).Unix())),
			keys: pubs(k1), wantErr: auth.ErrTokenInvalid, msg: "signature"},
		{name: "nbf in future", token: signRS256(t, k1, rsHeader, with("nbf", now.Add(time.Minute).Unix())), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "not valid before"},
		{name: "missing sub", token: signRS256(t, k1, rsHeader, with("sub", nil)), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "sub"},
		{name: "empty sub", token: signRS256(t, k1, rsHeader, with("sub", "")), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "sub"},
		{name: "sub wrong type", token: signRS256(t, k1, rsHeader, with("sub", 42)), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "missing exp", token: signRS256(t, k1, rsHeader, with("exp", nil)), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "exp"},
		{name: "exp wrong type", token: signRS256(t, k1, rsHeader, with("exp", "tomorrow")), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "missing iat", token: signRS256(t, k1, rsHeader, with("iat", nil)), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "iat"},
		{name: "wrong key", token: valid, keys: pubs(k2), wantErr: auth.ErrTokenInvalid, msg: "signature"},
		{name: "wrong keys", token: valid, keys: pubs(k2, k3), wantErr: auth.ErrTokenInvalid, msg: "tried 2 keys"},
		{name: "rotation: second key verifies", token: valid, keys: pubs(k2, k1),
			want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "rotation: new key verifies", token: signRS256(t, k2, rsHeader, baseClaims()), keys: pubs(k1, k2),
			want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "rotation: kid picks third key", token: signRS256(t, k2, map[string]any{"alg": "RS256", "kid": auth.KeyID(&k2.PublicKey)}, baseClaims()),
			keys: pubs(k1, k3, k2), want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "rotation: lying kid still verifies", token: signRS256(t, k2, map[string]any{"alg": "RS256", "kid": auth.KeyID(&k1.PublicKey)}, baseClaims()),
			keys: pubs(k1, k2), want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "rotation: kid cannot bypass signature", token: signRS256(t, k3, map[string]any{"alg": "RS256", "kid": auth.KeyID(&k1.PublicKey)}, baseClaims()),
			keys: pubs(k2, k1), wantErr: auth.ErrTokenInvalid, msg: "signature"},
		{name: "nil keys skipped", token: valid, keys: []*rsa.PublicKey{nil, {}, &k1.PublicKey},
			want: Claims{"user-1", "proj-a", now.Add(-time.Minute), now.Add(time.Hour)}},
		{name: "no keys", token: valid, keys: nil, wantErr: auth.ErrTokenInvalid, msg: "no verification keys"},
		{name: "tampered payload", token: parts[0] + "." + otherPayload + "." + parts[2], keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "signature"},
		{name: "tampered signature", token: valid[:len(valid)-4] + "AAAA", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "non-canonical base64 signature", token: flipTrailingBits(valid), keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "padded segments", token: valid + "==", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "HS256 keyed with public key PEM", token: signHS256(t, pubPEM, baseClaims()), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "HS256"},
		{name: "HS256 keyed with public key DER", token: signHS256(t, pkix, baseClaims()), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid, msg: "HS256"},
		{name: "alg none", token: b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "alg None", token: b64([]byte(`{"alg":"None"}`)) + "." + parts[1] + ".", keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "alg none keeping RS256 signature", token: b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + "." + parts[2], keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "alg missing", token: signRS256(t, k1, map[string]any{"typ": "JWT"}, baseClaims()), keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "RS256 header but empty signature", token: parts[0] + "." + parts[1] + ".", keys: pubs(k1),
			wantErr: auth.ErrTokenInvalid},
		{name: "RS512 correctly signed", token: signRaw(t, k1, crypto.SHA512,
			b64([]byte(`{"alg":"RS512"}`))+"."+parts[1]), keys: pubs(k1), wantErr: auth.ErrTokenInvalid, msg: "RS512"},
		{name: "PS256", token: func() string {
			in := b64([]byte(`{"alg":"PS256"}`)) + "." + parts[1]
			sum := sha256.Sum256([]byte(in))
			sig, err := rsa.SignPSS(rand.Reader, k1, crypto.SHA256, sum[:], nil)
			if err != nil {
				t.Fatal(err)
			}
			return in + "." + b64(sig)
		}(), keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "empty", token: "", keys: pubs(k1), wantErr: auth.ErrTokenMissing},
		{name: "garbage", token: "not a token", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "dots", token: "..", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "four segments", token: valid + ".x", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "api key", token: "sk_abc", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "json not object", token: b64([]byte(`[]`)) + "." + b64([]byte(`"x"`)) + ".sig", keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
		{name: "huge", token: strings.Repeat("a", auth.MaxTokenLen+1), keys: pubs(k1), wantErr: auth.ErrTokenInvalid, msg: "longer"},
		{name: "sha512 hash forced under RS256 name", token: signRaw(t, k1, crypto.SHA512,
			parts[0]+"."+parts[1]), keys: pubs(k1), wantErr: auth.ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.VerifyUserToken(tt.token, tt.keys, now)
			checkErr(t, err, tt.wantErr)
			if err != nil {
				if !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %q does not mention %q", err, tt.msg)
				}
				if got != (auth.Claims{}) {
					t.Errorf("claims on error: %+v", got)
				}
				return
			}
			if !claimsEqual(got, auth.Claims(tt.want)) {
				t.Errorf("claims = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Claims mirrors auth.Claims so table rows can use positional literals.
type Claims auth.Claims

func claimsEqual(a, b auth.Claims) bool {
	return a.Subject == b.Subject && a.Project == b.Project &&
		a.IssuedAt.Equal(b.IssuedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// decodeOracle checks a token's structure and signature without golang-jwt.
func decodeOracle(t *testing.T, tok string, pub *rsa.PublicKey) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	dec := func(s string, v any) {
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			t.Fatalf("segment not raw base64url: %v", err)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	dec(parts[0], &header)
	dec(parts[1], &payload)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("oracle signature check: %v", err)
	}
	return header, payload
}

func TestMintUserToken(t *testing.T) {
	ks := testKeys()
	k1, k2 := ks[0], ks[1]

	t.Run("round trip and oracle", func(t *testing.T) {
		tok, err := auth.MintUserToken(k1, "proj-a", "user-9", 15*time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		h, p := decodeOracle(t, tok, &k1.PublicKey)
		if h["alg"] != "RS256" || h["kid"] != auth.KeyID(&k1.PublicKey) {
			t.Errorf("header = %v", h)
		}
		wantP := map[string]any{"sub": "user-9", "aud": "proj-a",
			"iat": float64(now.Unix()), "exp": float64(now.Add(15 * time.Minute).Unix())}
		if fmt.Sprint(p) != fmt.Sprint(wantP) {
			t.Errorf("payload = %v, want %v", p, wantP)
		}
		got, err := auth.VerifyUserToken(tok, pubs(k2, k1), now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want := auth.Claims{Subject: "user-9", Project: "proj-a", IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
		if !claimsEqual(got, want) {
			t.Errorf("claims = %+v, want %+v", got, want)
		}
		_, err = auth.VerifyUserToken(tok, pubs(k1), now.Add(16*time.Minute))
		checkErr(t, err, auth.ErrTokenExpired)
	})

	t.Run("no project omits aud", func(t *testing.T) {
		tok, err := auth.MintUserToken(k1, "", "user-9", time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, p := decodeOracle(t, tok, &k1.PublicKey); p["aud"] != nil {
			t.Errorf("aud = %v", p["aud"])
		}
		got, err := auth.VerifyUserToken(tok, pubs(k1), now)
		if err != nil || got.Project != "" {
			t.Fatalf("got %+v, %v", got, err)
		}
	})

	bad := []struct {
		name    string
		key     *rsa.PrivateKey
		subject string
		ttl     time.Duration
	}{
		{"nil key", nil, "u", time.Minute},
		{"empty subject", k1, "", time.Minute},
		{"zero ttl", k1, "u", 0},
		{"negative ttl", k1, "u", -time.Minute},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := auth.MintUserToken(tt.key, "p", tt.subject, tt.ttl, now); err == nil {
				t.Fatalf("minted %q", tok)
			}
		})
	}
}

func TestParseUnverifiedProject(t *testing.T) {
	ks := testKeys()
	k1, k3 := ks[0], ks[2]
	valid := signRS256(t, k1, rsHeader, baseClaims())
	tests := []struct {
		name    string
		token   string
		want    string
		wantErr error
	}{
		{"aud string", valid, "proj-a", nil},
		{"signature not checked", signRS256(t, k3, rsHeader, with("aud", "proj-z")), "proj-z", nil},
		{"expiry not checked", signRS256(t, k1, rsHeader, with("exp", 1)), "proj-a", nil},
		{"no aud", signRS256(t, k1, rsHeader, with("aud", nil)), "", nil},
		{"aud array", signRS256(t, k1, rsHeader, with("aud", []string{"p"})), "p", nil},
		{"aud two", signRS256(t, k1, rsHeader, with("aud", []string{"p", "q"})), "", auth.ErrTokenInvalid},
		{"aud number", signRS256(t, k1, rsHeader, with("aud", 3)), "", auth.ErrTokenInvalid},
		{"empty", "", "", auth.ErrTokenMissing},
		{"garbage", "garbage", "", auth.ErrTokenInvalid},
		{"bad base64", "!!!.!!!.!!!", "", auth.ErrTokenInvalid},
		{"huge", strings.Repeat("a", auth.MaxTokenLen+1), "", auth.ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.ParseUnverifiedProject(tt.token)
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Errorf("project = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAPIKeys(t *testing.T) {
	shape := regexp.MustCompile(`^sk_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 100 {
		k, err := auth.GenerateAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(k) {
			t.Fatalf("key %q has wrong shape", k)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimPrefix(k, "sk_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("key %q: %d bytes, %v", k, len(raw), err)
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
		if !auth.LooksLikeAPIKey(k) {
			t.Fatalf("LooksLikeAPIKey(%q) = false", k)
		}
	}

	t.Run("hash", func(t *testing.T) {
		// FIPS 180-2 test vector.
		if got := auth.HashAPIKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
			t.Errorf("HashAPIKey(abc) = %s", got)
		}
	})

	looks := []struct {
		tok  string
		want bool
	}{
		{"sk_abc", true},
		{"sk_", true},
		{"SK_abc", false},
		{"eyJhbGciOiJSUzI1NiJ9.e30.x", false},
		{"", false},
		{" sk_abc", false},
	}
	for _, tt := range looks {
		t.Run("looks/"+tt.tok, func(t *testing.T) {
			if got := auth.LooksLikeAPIKey(tt.tok); got != tt.want {
				t.Errorf("LooksLikeAPIKey(%q) = %v", tt.tok, got)
			}
		})
	}
}

func TestEqualSecret(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"s3cret", "s3cret", true},
		{"s3cret", "s3creT", false},
		{"s3cret", "s3cret ", false},
		{"s3cret", "", false},
		{"", "s3cret", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q=%q", tt.a, tt.b), func(t *testing.T) {
			if got := auth.EqualSecret(tt.a, tt.b); got != tt.want {
				t.Errorf("EqualSecret = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	ks := testKeys()
	id := auth.KeyID(&ks[0].PublicKey)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("KeyID = %q", id)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ks[0].PublicKey)
	sum := sha256.Sum256(der)
	if want := fmt.Sprintf("%x", sum[:8]); id != want {
		t.Errorf("KeyID = %s, want %s", id, want)
	}
	// Same key read back from PKCS#1 must have the same id.
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&ks[0].PublicKey)})
	p, err := auth.ParsePublicKeyPEM(pkcs1)
	if err != nil {
		t.Fatal(err)
	}
	if auth.KeyID(p) != id {
		t.Error("KeyID depends on encoding")
	}
	if auth.KeyID(&ks[1].PublicKey) == id {
		t.Error("distinct keys share an id")
	}
	if auth.KeyID(nil) != "" {
		t.Error("KeyID(nil) not empty")
	}
}

func TestPEM(t *testing.T) {
	k := testKeys()[0]
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	enc := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	pubTests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"encoded PKIX", []byte(auth.EncodePublicKeyPEM(&k.PublicKey)), false},
		{"PKCS1", enc("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.PublicKey)), false},
		{"leading text", append([]byte("comment\n"), auth.EncodePublicKeyPEM(&k.PublicKey)...), false},
		{"EC key", enc("PUBLIC KEY", ecPub), true},
		{"wrong type", enc("CERTIFICATE", []byte{1}), true},
		{"corrupt", enc("PUBLIC KEY", []byte{1, 2, 3}), true},
		{"not PEM", []byte("hello"), true},
		{"empty", nil, true},
	}
	for _, tt := range pubTests {
		t.Run("public/"+tt.name, func(t *testing.T) {
			got, err := auth.ParsePublicKeyPEM(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(&k.PublicKey) {
				t.Error("key mismatch")
			}
		})
	}
	if s := auth.EncodePublicKeyPEM(&k.PublicKey); !strings.HasPrefix(s, "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("public PEM = %q", s)
	}

	privPEM, err := auth.EncodePrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(privPEM, "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("private PEM header: %q", privPEM[:40])
	}
	privTests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"encoded PKCS8", []byte(privPEM), false},
		{"PKCS1", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)), false},
		{"EC key", enc("PRIVATE KEY", ecPriv), true},
		{"public key", []byte(auth.EncodePublicKeyPEM(&k.PublicKey)), true},
		{"corrupt", enc("RSA PRIVATE KEY", []byte{0}), true},
		{"not PEM", []byte("nope"), true},
	}
	for _, tt := range privTests {
		t.Run("private/"+tt.name, func(t *testing.T) {
			got, err := auth.ParsePrivateKeyPEM(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(k) {
				t.Error("key mismatch")
			}
		})
	}
}

func TestLoadOrCreateSigningKey(t *testing.T) {
	mode := func(t *testing.T, p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}

	t.Run("create then load", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data", "keys")
		k, created, err := auth.LoadOrCreateSigningKey(dir)
		if err != nil || !created {
			t.Fatalf("first call: created=%v err=%v", created, err)
		}
		if k.N.BitLen() != 2048 {
			t.Errorf("key is %d bits", k.N.BitLen())
		}
		keyPath := filepath.Join(dir, auth.SigningKeyFile)
		pubPath := filepath.Join(dir, auth.SigningPubKeyFile)
		for p, want := range map[string]os.FileMode{dir: 0o700, keyPath: 0o600, pubPath: 0o644} {
			if got := mode(t, p); got != want {
				t.Errorf("%s mode %o, want %o", filepath.Base(p), got, want)
			}
		}
		pubData, err := os.ReadFile(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := auth.ParsePublicKeyPEM(pubData)
		if err != nil || !pub.Equal(&k.PublicKey) {
			t.Fatalf("public file mismatch: %v", err)
		}

		k2, created, err := auth.LoadOrCreateSigningKey(dir)
		if err != nil || created || !k2.Equal(k) {
			t.Fatalf("second call: created=%v err=%v same=%v", created, err, k2 != nil && k2.Equal(k))
		}

		// A deleted public half is restored from the private key.
		if err := os.Remove(pubPath); err != nil {
			t.Fatal(err)
		}
		if _, _, err := auth.LoadOrCreateSigningKey(dir); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(pubPath); string(got) != string(pubData) {
			t.Error("public key not restored")
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 2 {
			t.Errorf("dir has %d entries, want 2 (temp files left?)", len(entries))
		}
	})

	t.Run("loads PKCS1 key", func(t *testing.T) {
		dir := t.TempDir()
		k := testKeys()[1]
		data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		if err := os.WriteFile(filepath.Join(dir, auth.SigningKeyFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, created, err := auth.LoadOrCreateSigningKey(dir)
		if err != nil || created || !got.Equal(k) {
			t.Fatalf("created=%v err=%v", created, err)
		}
	})

	t.Run("corrupt key is an error, not replaced", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, auth.SigningKeyFile)
		if err := os.WriteFile(p, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := auth.LoadOrCreateSigningKey(dir); err == nil {
			t.Fatal("no error")
		}
		if b, _ := os.ReadFile(p); string(b) != "junk" {
			t.Error("corrupt key was overwritten")
		}
	})

	t.Run("concurrent creators agree", func(t *testing.T) {
		dir := t.TempDir()
		const n = 4
		var (
			wg      sync.WaitGroup
			keys    [n]*rsa.PrivateKey
			created [n]bool
			errs    [n]error
		)
		for i := range n {
			wg.Go(func() { keys[i], created[i], errs[i] = auth.LoadOrCreateSigningKey(dir) })
		}
		wg.Wait()
		nCreated := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !keys[i].Equal(keys[0]) {
				t.Fatalf("creator %d got a different key", i)
			}
			if created[i] {
				nCreated++
			}
		}
		if nCreated != 1 {
			t.Errorf("%d callers report created, want 1", nCreated)
		}
	})
}

func TestTokenCache(t *testing.T) {
	cl := func(sub string, exp time.Time) auth.Claims {
		return auth.Claims{Subject: sub, Project: "p", IssuedAt: now.Add(-time.Minute), ExpiresAt: exp}
	}

	t.Run("expiry", func(t *testing.T) {
		c := auth.NewTokenCache(10)
		want := cl("u", now.Add(time.Minute))
		c.Put("ks1", "tok", want)
		tests := []struct {
			name string
			at   time.Time
			hit  bool
		}{
			{"before exp", now, true},
			{"just before exp", now.Add(time.Minute - time.Nanosecond), true},
			{"at exp", now.Add(time.Minute), false},
			{"within verify leeway", now.Add(time.Minute + time.Second), false},
			{"long after", now.Add(time.Hour), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, ok := c.Get("ks1", "tok", tt.at)
				if ok != tt.hit {
					t.Fatalf("hit = %v, want %v", ok, tt.hit)
				}
				if ok && got != want {
					t.Errorf("got %+v", got)
				}
				if !ok && got != (auth.Claims{}) {
					t.Errorf("miss returned claims %+v", got)
				}
			})
		}
	})

	t.Run("isolation", func(t *testing.T) {
		c := auth.NewTokenCache(10)
		c.Put("ks1", "tok", cl("u", now.Add(time.Minute)))
		c.Put("ks", "1tok", cl("v", now.Add(time.Minute)))
		tests := []struct {
			name, ks, tok, wantSub string
		}{
			{"same", "ks1", "tok", "u"},
			{"rotated key set", "ks2", "tok", ""},
			{"empty key set", "", "tok", ""},
			{"other token", "ks1", "tok2", ""},
			{"boundary not ambiguous", "ks", "1tok", "v"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, ok := c.Get(tt.ks, tt.tok, now)
				if ok != (tt.wantSub != "") || got.Subject != tt.wantSub {
					t.Errorf("Get = %+v, %v; want sub %q", got, ok, tt.wantSub)
				}
			})
		}
	})

	t.Run("bounded", func(t *testing.T) {
		c := auth.NewTokenCache(16)
		for i := range 1000 {
			c.Put("ks", fmt.Sprint("tok", i), cl("u", now.Add(time.Hour)))
			if c.Len() > 16 {
				t.Fatalf("Len = %d after %d puts", c.Len(), i+1)
			}
		}
		if got, ok := c.Get("ks", "tok999", now); !ok || got.Subject != "u" {
			t.Error("most recent entry missing")
		}
		// Overwriting an existing key never evicts.
		c.Put("ks", "tok999", cl("u2", now.Add(time.Hour)))
		if got, _ := c.Get("ks", "tok999", now); got.Subject != "u2" || c.Len() != 16 {
			t.Errorf("overwrite: sub %q len %d", got.Subject, c.Len())
		}
	})

	t.Run("evicts soonest expiry first", func(t *testing.T) {
		c := auth.NewTokenCache(4)
		for i := range 4 {
			c.Put("ks", fmt.Sprint(i), cl("u", now.Add(time.Duration(4-i)*time.Minute)))
		}
		c.Put("ks", "new", cl("u", now.Add(time.Hour)))
		if _, ok := c.Get("ks", "3", now); ok {
			t.Error("entry expiring soonest survived")
		}
		for _, tok := range []string{"0", "1", "2", "new"} {
			if _, ok := c.Get("ks", tok, now); !ok {
				t.Errorf("entry %s evicted", tok)
			}
		}
	})

	t.Run("disabled and degenerate", func(t *testing.T) {
		var nilCache *auth.TokenCache
		for name, c := range map[string]*auth.TokenCache{"nil": nilCache, "zero": auth.NewTokenCache(0), "negative": auth.NewTokenCache(-1)} {
			t.Run(name, func(t *testing.T) {
				c.Put("ks", "tok", cl("u", now.Add(time.Hour)))
				if _, ok := c.Get("ks", "tok", now); ok || c.Len() != 0 {
					t.Error("disabled cache stored an entry")
				}
			})
		}
		c := auth.NewTokenCache(4)
		c.Put("ks", "tok", auth.Claims{Subject: "u"})
		if _, ok := c.Get("ks", "tok", now); ok {
			t.Error("claims without expiry were cached")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		c := auth.NewTokenCache(64)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 2000 {
					tok := fmt.Sprint(g, "-", i%100)
					c.Put("ks", tok, cl(tok, now.Add(time.Hour)))
					if got, ok := c.Get("ks", tok, now); ok && got.Subject != tok {
						t.Errorf("Get(%s) returned %s", tok, got.Subject)
						return
					}
				}
			})
		}
		wg.Wait()
		if c.Len() > 64 {
			t.Errorf("Len = %d", c.Len())
		}
	})
}

// TestCacheWithVerify shows the intended hot-path composition.
func TestCacheWithVerify(t *testing.T) {
	k := testKeys()[0]
	tok, err := auth.MintUserToken(k, "p", "u", time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	keySetID := auth.KeyID(&k.PublicKey)
	c := auth.NewTokenCache(8)
	verify := func(at time.Time) (auth.Claims, error) {
		if cl, ok := c.Get(keySetID, tok, at); ok {
			return cl, nil
		}
		cl, err := auth.VerifyUserToken(tok, pubs(k), at)
		if err == nil {
			c.Put(keySetID, tok, cl)
		}
		return cl, err
	}
	if _, err := verify(now); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatal("not cached")
	}
	_, err = verify(now.Add(2 * time.Minute))
	checkErr(t, err, auth.ErrTokenExpired)
}

func FuzzVerifyUserToken(f *testing.F) {
	ks := testKeys()
	keys := pubs(ks[0], ks[1])
	minted, err := auth.MintUserToken(ks[0], "proj-a", "user-1", time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	oracle := signRS256(f, ks[1], rsHeader, baseClaims())
	validSeeds := map[string]bool{minted: true, oracle: true}
	seeds := []string{
		minted, oracle,
		signRS256(f, ks[0], rsHeader, with("exp", now.Add(-time.Hour).Unix())),
		signRS256(f, ks[0], rsHeader, with("sub", nil)),
		signRS256(f, ks[0], rsHeader, with("aud", []any{"a", 1})),
		signRS256(f, ks[2], rsHeader, baseClaims()),
		signHS256(f, []byte(auth.EncodePublicKeyPEM(&ks[0].PublicKey)), baseClaims()),
		b64([]byte(`{"alg":"none"}`)) + "." + b64(mustJSON(f, baseClaims())) + ".",
		"", ".", "..", "a.b.c", "eyJ.eyJ.", "sk_x", "\x00\xff",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		cl, err := auth.VerifyUserToken(tok, keys, now)
		if err == nil {
			// Forging is infeasible, so only the valid seeds themselves may
			// pass; anything else means a mutation slipped past verification.
			if !validSeeds[tok] {
				t.Fatalf("accepted mutated token %q: %+v", tok, cl)
			}
			if cl.Subject == "" || !now.Before(cl.ExpiresAt.Add(auth.Leeway)) {
				t.Fatalf("accepted bad claims %+v", cl)
			}
		} else {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q matches %d sentinels", err, n)
			}
		}
		if _, err := auth.ParseUnverifiedProject(tok); err != nil &&
			!errors.Is(err, auth.ErrTokenInvalid) && !errors.Is(err, auth.ErrTokenMissing) {
			t.Fatalf("ParseUnverifiedProject error %q matches no sentinel", err)
		}
	})
}

func BenchmarkVerifyUserToken(b *testing.B) {
	ks := testKeys()
	tok, err := auth.MintUserToken(ks[0], "proj-a", "user-1", time.Hour, now)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, keys []*rsa.PublicKey) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := auth.VerifyUserToken(tok, keys, now); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("one-key", func(b *testing.B) { run(b, pubs(ks[0])) })
	b.Run("second-of-two-keys", func(b *testing.B) { run(b, pubs(ks[1], ks[0])) })
	b.Run("parallel", func(b *testing.B) {
		keys := pubs(ks[0])
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := auth.VerifyUserToken(tok, keys, now); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("cached-hit", func(b *testing.B) {
		c := auth.NewTokenCache(1024)
		cl, err := auth.VerifyUserToken(tok, pubs(ks[0]), now)
		if err != nil {
			b.Fatal(err)
		}
		c.Put("ks", tok, cl)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := c.Get("ks", tok, now); !ok {
					b.Error("miss")
					return
				}
			}
		})
	})
}

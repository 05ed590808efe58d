package verify

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"testing"
	"time"
)

// The helpers below compute signatures straight from each provider's
// documented formula with the standard library, independently of this
// package's template engine and Signer.

func req(method, url, body string, kv ...string) Request {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return Request{Method: method, URL: url, Header: h, Body: []byte(body)}
}

func mac(alg func() hash.Hash, key, msg string) []byte {
	m := hmac.New(alg, []byte(key))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func hmacHex(alg func() hash.Hash, key, msg string) string {
	return hex.EncodeToString(mac(alg, key, msg))
}
func hmacB64(alg func() hash.Hash, key, msg string) string {
	return base64.StdEncoding.EncodeToString(mac(alg, key, msg))
}

var (
	h1   = sha1.New
	h256 = sha256.New
	h512 = sha512.New
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// jwtHS256 mints a JWT by hand (no JWT library) for the jwt-scheme vectors.
func jwtHS256(secret, claims string) string {
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims))
	return signing + "." + enc.EncodeToString(mac(sha256.New, secret, signing))
}

func at(unix int64) Options { return Options{Now: func() time.Time { return time.Unix(unix, 0) }} }

func mustNew(t testing.TB, s Spec, o Options) *SpecVerifier {
	t.Helper()
	v, err := New(s, o)
	if err != nil {
		t.Fatalf("New(%+v): %v", s, err)
	}
	return v
}

func sec(v string) []Secret { return []Secret{{ID: "k1", Value: v}} }

func discordKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed([]byte("discord-test-seed-32-bytes-long!"))
}

func discordPubHex() string { return hex.EncodeToString(discordKey().Public().(ed25519.PublicKey)) }

func discordPing(body, ts string) Request {
	return req("POST", "https://h.example/dc", body, "X-Signature-Timestamp", ts,
		"X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(discordKey(), []byte(ts+body))))
}

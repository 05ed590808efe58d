package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// Fuzz targets, one per verifier family plus the spec parser and the
// handshakes. Each checks that nothing panics (Check converts a panic into
// an error with a fixed message, which is asserted absent), that every
// refusal has a known code, and, where an oracle is cheap, that an accepted
// delivery really carries the right signature.
//
// Run one with: go test ./verify/ -run '^$' -fuzz FuzzVerifyHMAC -fuzztime 30s

var knownCodes = map[Code]bool{"": true, ErrMissingSignature: true, ErrBadSignature: true,
	ErrTimestampOutOfRange: true, ErrNoSecret: true}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "malformed input") {
		t.Fatalf("panic inside the verifier: %v", err)
	}
	if !knownCodes[CodeOf(err)] {
		t.Fatalf("unexpected error %v", err)
	}
}

func fuzzNow() Options { return at(t0) }

func FuzzVerifyHMAC(f *testing.F) {
	f.Add("sha256="+hmacHex(h256, "k", "body"), "body", "k")
	f.Add("sha256=", "", "k")
	f.Add("sha1=00", "x", "")
	f.Add(strings.Repeat("sha256=", 100), "\x00\xff", "k")
	v := mustNew(f, Spec{Preset: "github"}, fuzzNow())
	f.Fuzz(func(t *testing.T, sig, body, secret string) {
		err := v.Verify(req("POST", "u", body, "X-Hub-Signature-256", sig), sec(secret))
		checkErr(t, err)
		if err == nil && sig != "sha256="+hmacHex(h256, secret, body) && !strings.EqualFold(sig, "sha256="+hmacHex(h256, secret, body)) {
			t.Fatalf("accepted a wrong signature %q", sig)
		}
	})
}

func FuzzVerifyHMACKV(f *testing.F) {
	ts := itoa(t0)
	f.Add("t="+ts+",v1="+hmacHex(h256, "whsec_x", ts+".{}"), "{}")
	f.Add("t=,v1=,v1=,,,==", "")
	f.Add("t=99999999999999999999,v1=00", "{}")
	f.Add("v1="+strings.Repeat("0", 64)+",t=-1", "a")
	v := mustNew(f, Spec{Preset: "stripe"}, fuzzNow())
	f.Fuzz(func(t *testing.T, header, body string) {
		err := v.Verify(req("POST", "u", body, "Stripe-Signature", header), sec("whsec_x"))
		checkErr(t, err)
		// Hex is case-insensitive: the same bytes in capitals are the same MAC.
		if err == nil && !strings.Contains(strings.ToLower(header), hmacHex(h256, "whsec_x", ts+"."+body)) {
			t.Fatalf("accepted %q", header)
		}
	})
}

func FuzzVerifyHMACList(f *testing.F) {
	f.Add(swSigV1, swID, swTS, swBody)
	f.Add("v1, v1a,x v2,", "", "", "")
	f.Add("v1,!!!!", "a.b", "1e9", "{}")
	v := mustNew(f, Spec{Preset: "standard-webhooks"}, at(1614265330))
	f.Fuzz(func(t *testing.T, sig, id, ts, body string) {
		err := v.Verify(req("POST", "u", body, "webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig), sec(swSecret))
		checkErr(t, err)
	})
}

func FuzzVerifyHash(f *testing.F) {
	f.Add(sha256Hex("s"+"POST"+"u"+"b"), "POST", "u", "b")
	f.Add("", "", "", "")
	v := mustNew(f, Spec{Preset: "hubspot-v2"}, fuzzNow())
	f.Fuzz(func(t *testing.T, sig, method, url, body string) {
		err := v.Verify(Request{Method: method, URL: url, Header: map[string][]string{"X-Hubspot-Signature": {sig}}, Body: []byte(body)}, sec("s"))
		checkErr(t, err)
		if err == nil && !strings.EqualFold(sig, sha256Hex("s"+method+url+body)) {
			t.Fatalf("accepted %q", sig)
		}
	})
}

func FuzzVerifyHubSpotV3(f *testing.F) {
	f.Add("https://h.example/a?x=%3A%2f%zz", "POST", "[]", "1700000000000", "sig")
	f.Add("::::", "", "", "", "")
	v := mustNew(f, Spec{Preset: "hubspot-v3"}, fuzzNow())
	f.Fuzz(func(t *testing.T, url, method, body, ts, sig string) {
		checkErr(t, v.Verify(Request{Method: method, URL: url, Body: []byte(body), Header: map[string][]string{
			"X-Hubspot-Request-Timestamp": {ts}, "X-Hubspot-Signature-V3": {sig}}}, sec("s")))
	})
}

func FuzzVerifyForm(f *testing.F) {
	f.Add("https://mycompany.com/myapp.php?foo=1&bar=2", "CallSid=CA1&Digits=1234", "application/x-www-form-urlencoded", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
	f.Add("http://[::1]:80/x?bodySHA256=00", "{}", "application/json", "")
	f.Add("%zz", "%zz;a=b", "", "====")
	v := mustNew(f, Spec{Preset: "twilio"}, fuzzNow())
	f.Fuzz(func(t *testing.T, url, body, ct, sig string) {
		checkErr(t, v.Verify(req("POST", url, body, "Content-Type", ct, "X-Twilio-Signature", sig), sec("12345")))
	})
}

func FuzzVerifyBodyField(f *testing.F) {
	ts := itoa(t0)
	f.Add(`{"signature":{"token":"t","timestamp":"` + ts + `","signature":"` + hmacHex(h256, "k", ts+"t") + `"}}`)
	f.Add(`{"signature":{"timestamp":1e400}}`)
	f.Add(`[[[[[[`)
	f.Add(`{"signature":[1,2,{"signature":null}]}`)
	v := mustNew(f, Spec{Preset: "mailgun"}, fuzzNow())
	f.Fuzz(func(t *testing.T, body string) {
		checkErr(t, v.Verify(req("POST", "u", body), sec("k")))
	})
}

func FuzzVerifyEd25519(f *testing.F) {
	priv := discordKey()
	ts := itoa(t0)
	f.Add(discordPubHex(), strHex(ed25519.Sign(priv, []byte(ts+"{}"))), ts, "{}")
	f.Add("whpk_"+swPub, "00", "0", "")
	f.Add("not a key", "zz", "x", "x")
	f.Add("whsk_AAAA", strings.Repeat("ab", 64), ts, "{}")
	opts := fuzzNow()
	f.Fuzz(func(t *testing.T, key, sig, ts, body string) {
		v := mustNew(t, Spec{Preset: "discord"}, opts)
		checkErr(t, v.Verify(req("POST", "u", body, "X-Signature-Ed25519", sig, "X-Signature-Timestamp", ts), sec(key)))
	})
}

func FuzzVerifyECDSA(f *testing.F) {
	f.Add(sgPub, sgSig, sgTS, sgBody)
	f.Add("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "MEUCIQ==", "1", "")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, key, sig, ts, body string) {
		v := mustNew(t, Spec{Preset: "sendgrid"}, at(1588788367))
		checkErr(t, v.Verify(req("POST", "u", body, "X-Twilio-Email-Event-Webhook-Signature", sig, "X-Twilio-Email-Event-Webhook-Timestamp", ts), sec(key)))
	})
}

func FuzzVerifyRSA(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub := base64.StdEncoding.EncodeToString(der)
	sum := sha256.Sum256([]byte("payload"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	spec := Spec{Scheme: "rsa", Header: "X-Sig", Encoding: "base64"}
	v := mustNew(f, spec, fuzzNow())
	if err := v.Verify(req("POST", "u", "payload", "X-Sig", base64.StdEncoding.EncodeToString(sig)), sec(pub)); err != nil {
		f.Fatalf("RSA signature refused: %v", err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	eder, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	if CodeOf(v.Verify(req("POST", "u", "payload", "X-Sig", base64.StdEncoding.EncodeToString(sig)), sec(base64.StdEncoding.EncodeToString(eder)))) != ErrNoSecret {
		f.Fatal("an ECDSA key was used for an RSA spec")
	}
	f.Add(base64.StdEncoding.EncodeToString(sig), "payload")
	f.Add("", "")
	f.Add("AAAA", strings.Repeat("x", 1000))
	f.Fuzz(func(t *testing.T, s, body string) {
		checkErr(t, v.Verify(req("POST", "u", body, "X-Sig", s), sec(pub)))
	})
}

func FuzzVerifyToken(f *testing.F) {
	f.Add("X-Gitlab-Token", "tok", "tok")
	f.Add("X-Gitlab-Token", "", "tok")
	f.Add("x-gitlab-token", strings.Repeat("t", 10000), "t")
	v := mustNew(f, Spec{Preset: "gitlab"}, fuzzNow())
	f.Fuzz(func(t *testing.T, name, got, secret string) {
		err := v.Verify(req("POST", "u", "", name, got), sec(secret))
		checkErr(t, err)
		// HTTP field values carry no surrounding whitespace, so it is trimmed.
		if err == nil && strings.TrimSpace(got) != secret {
			t.Fatalf("accepted %q for %q", got, secret)
		}
	})
}

func FuzzVerifyBasicBearer(f *testing.F) {
	f.Add("Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")), "u:p")
	f.Add("Bearer tok", "tok")
	f.Add("Basic !!!", "")
	f.Add("basic", "x")
	basic := mustNew(f, Spec{Preset: "basic"}, fuzzNow())
	bearer := mustNew(f, Spec{Preset: "bearer"}, fuzzNow())
	f.Fuzz(func(t *testing.T, auth, secret string) {
		checkErr(t, basic.Verify(req("POST", "u", "", "Authorization", auth), sec(secret)))
		checkErr(t, bearer.Verify(req("POST", "u", "", "Authorization", auth), sec(secret)))
	})
}

func FuzzVerifyJWT(f *testing.F) {
	f.Add(jwtHS256("s", `{"exp":1700000300}`), "s")
	f.Add("Bearer a.b.c", "s")
	f.Add(jwtHS256("s", `{"exp":"soon"}`), "s")
	f.Add("JWT "+strings.Repeat(".", 100), "")
	v := mustNew(f, Spec{Preset: "monday"}, fuzzNow())
	f.Fuzz(func(t *testing.T, auth, secret string) {
		checkErr(t, v.Verify(req("POST", "u", "", "Authorization", auth), sec(secret)))
	})
}

func FuzzVerifyGraph(f *testing.F) {
	f.Add(`{"value":[{"clientState":"cs"}]}`, "cs")
	f.Add(`{"value":{"a":{"clientState":"cs"}}}`, "cs")
	f.Add(`{"value":[null,1,"x",[]]}`, "")
	v := mustNew(f, Spec{Preset: "microsoft-graph"}, fuzzNow())
	f.Fuzz(func(t *testing.T, body, secret string) {
		checkErr(t, v.Verify(req("POST", "u", body), sec(secret)))
	})
}

// FuzzVerifyGeneric drives every preset with the same arbitrary headers/body.
func FuzzVerifyGeneric(f *testing.F) {
	f.Add(0, "sig", "1700000000", "{}", "k")
	f.Add(7, "", "", "", "")
	f.Add(1000, "t=1,v1=2", "2023-11-14T22:13:20Z", `{"a":[1,{"b":"c"}]}`, "whsec_AAAA")
	ps := Presets()
	vs := make([]*SpecVerifier, len(ps))
	for i, p := range ps {
		vs[i] = mustNew(f, Spec{Preset: p.Name}, fuzzNow())
	}
	f.Fuzz(func(t *testing.T, which int, sig, ts, body, secret string) {
		if which < 0 {
			which = -which
		}
		v := vs[which%len(vs)]
		s := v.Spec()
		r := req("POST", "https://h.example/x?bodySHA256="+sig, body)
		for _, h := range strings.Split(strings.TrimSuffix(s.Header, "*")+"1|Authorization", "|") {
			r.Header.Set(h, sig)
		}
		if s.Timestamp != nil && s.Timestamp.Header != "" {
			r.Header.Set(firstAlt(s.Timestamp.Header), ts)
		}
		checkErr(t, v.Verify(r, sec(secret)))
		_, _, err := v.Handshake(r, sec(secret))
		if err != nil && strings.Contains(err.Error(), "malformed input") {
			t.Fatalf("panic in handshake: %v", err)
		}
	})
}

func FuzzParseSpec(f *testing.F) {
	f.Add("preset: stripe")
	f.Add(`{"scheme":"hmac","header":"X","content":"{timestamp}.{body}","timestamp":{"header":"T","unit":"ms","tolerance":"1m"}}`)
	f.Add("handshake: {type: custom, method: GET, body: '{query:x}{'}\nheader: X")
	f.Add("content: '{header:'\nheader: X")
	f.Add("timestamp: {tolerance: 9999999999999h}\nheader: X\ncontent: '{timestamp}'")
	f.Add("- a\n- b")
	f.Add("&a [*a, *a]")
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := ParseSpec([]byte(doc))
		if err != nil {
			if c := CodeOf(err); c != ErrInvalidSpec && c != ErrUnknownScheme {
				t.Fatalf("unexpected %v", err)
			}
			return
		}
		// A spec that parses compiles, and its verifier never panics.
		v, err := New(s, fuzzNow())
		if err != nil {
			t.Fatalf("parsed spec does not compile: %v", err)
		}
		checkErr(t, v.Verify(req("POST", "https://h.example/x", "{}", "X", "y"), sec("k")))
		if sg, err := NewSigner(s, fuzzNow()); err == nil {
			r := req("POST", "https://h.example/x", "{}")
			_ = sg.Sign(&r, Secret{Value: "k"}, time.Unix(t0, 0))
		}
	})
}

func strHex(b []byte) string { return string(hexEncode(b)) }

package verify

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Code
	}{
		{"preset", "preset: stripe", ""},
		{"preset with override", "preset: paddle\ntimestamp: {tolerance: 1m}", ""},
		{"generic hmac yaml", `
scheme: hmac
algorithm: sha512
encoding: base64url
header: X-Sig
prefix: "sha512="
content: "{timestamp}.{body}"
timestamp: {header: X-Ts, unit: ms, tolerance: 2m, futureTolerance: 30s}
`, ""},
		{"json", `{"scheme":"hmac","header":"X-Sig","format":"kv","timestampKey":"t","signatureKey":"v1","content":"{timestamp}.{body}","timestamp":{"tolerance":"5m"}}`, ""},
		{"template with header and field", `{"header":"X-Sig","content":"{header:X-Id}.{field:data.id}.{body}"}`, ""},
		{"ed25519", "scheme: ed25519\nheader: X-Sig\nencoding: base64", ""},
		{"token query", "scheme: token\nquery: key", ""},
		{"custom handshake", "preset: github\nhandshake: {type: custom, method: GET, query: challenge, body: '{query:challenge}'}", ""},
		{"unknown field", "preset: stripe\nheadr: X", ErrInvalidSpec},
		{"not yaml", "{{{", ErrInvalidSpec},
		{"bad duration", "header: X\ncontent: '{timestamp}{body}'\ntimestamp: {header: T, tolerance: soon}", ErrInvalidSpec},
		{"negative duration", "header: X\ncontent: '{timestamp}{body}'\ntimestamp: {header: T, tolerance: -1m}", ErrInvalidSpec},
		{"unknown preset", "preset: nope", ErrUnknownScheme},
		{"unknown algorithm", "header: X\nalgorithm: md5", ErrUnknownScheme},
		{"unknown placeholder", "header: X\ncontent: '{bodyy}'", ErrInvalidSpec},
		{"unclosed placeholder", "header: X\ncontent: '{body'", ErrInvalidSpec},
		{"timestamp placeholder without timestamp", "header: X\ncontent: '{timestamp}.{body}'", ErrInvalidSpec},
		{"timestamp without a source", "header: X\ntimestamp: {unit: s}", ErrInvalidSpec},
		{"hmac without header", "scheme: hmac", ErrInvalidSpec},
		{"secret in an hmac template", "header: X\ncontent: '{secret}{body}'", ErrInvalidSpec},
		{"hash without secret", "scheme: hash\nheader: X", ErrInvalidSpec},
		{"token without location", "scheme: token", ErrInvalidSpec},
		{"jwt sha1", "scheme: jwt\nalgorithm: sha1", ErrUnknownScheme},
		{"header placeholder without name", "header: X\ncontent: '{header:}'", ErrInvalidSpec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tc.doc))
			if CodeOf(err) != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A spec survives a JSON round trip (manifests are stored as JSON).
func TestSpecJSONRoundTrip(t *testing.T) {
	for _, p := range Presets() {
		t.Run(p.Name, func(t *testing.T) {
			b, err := json.Marshal(p.Spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSpec(b)
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			b2, _ := json.Marshal(got)
			if string(b) != string(b2) {
				t.Fatalf("round trip changed the spec:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestPresetsAreFresh(t *testing.T) {
	a := Presets()
	a[0].Spec.Header = "tampered"
	a[0].Name = "tampered"
	if b := Presets(); b[0].Name == "tampered" || b[0].Spec.Header == "tampered" {
		t.Fatal("preset table is shared mutable state")
	}
	p, _ := LookupPreset("slack")
	p.Spec.Timestamp.Tolerance = 0
	if q, _ := LookupPreset("slack"); q.Spec.Timestamp.Tolerance == 0 {
		t.Fatal("preset timestamp spec is shared")
	}
}

// Our signer and verifier agree for every preset that has a signer.
func TestSignerRoundTrip(t *testing.T) {
	now := time.Unix(t0, 0)
	signable := 0
	for _, p := range Presets() {
		t.Run(p.Name, func(t *testing.T) {
			s, err := NewSigner(Spec{Preset: p.Name}, Options{})
			if err != nil {
				if CodeOf(err) != ErrUnsupported {
					t.Fatalf("NewSigner: %v", err)
				}
				t.Skipf("no signer: %v", err)
			}
			signable++
			body := `{"webhookTimestamp":` + itoa(now.UnixMilli()) + `,"type":"x"}`
			r := req("POST", "https://h.example/hook?x=1", body)
			for _, seg := range mustNew(t, Spec{Preset: p.Name}, Options{}).tmpl {
				if seg.kind == "header" {
					r.Header.Set(firstAlt(seg.arg), "id-1")
				}
			}
			signWith, verifyWith := Secret{ID: "k", Value: "round-trip-secret"}, []Secret{{ID: "k", Value: "round-trip-secret"}}
			if p.Spec.SecretEncoding == "whsec" {
				signWith.Value, verifyWith[0].Value = swSecret, swSecret
			}
			if p.Spec.Scheme == "ed25519" {
				signWith.Value, verifyWith[0].Value = "whsk_"+swPriv, "whpk_"+swPub
			}
			if err := s.Sign(&r, signWith, now); err != nil {
				t.Fatal(err)
			}
			v := mustNew(t, Spec{Preset: p.Name}, Options{Now: func() time.Time { return now }})
			if err := v.Verify(r, verifyWith); err != nil {
				t.Fatalf("own signature refused: %v (headers %v)", err, r.Header)
			}
			r.Body = []byte(strings.Replace(string(r.Body), `"x"`, `"y"`, 1))
			if v.Verify(r, verifyWith) == nil {
				t.Fatal("changed body accepted")
			}
		})
	}
	if signable < 35 {
		t.Errorf("only %d presets have a signer", signable)
	}
}

// A generic spec exercises what no preset uses: sha512, base64url, a custom
// template over a header and a body field, and a millisecond timestamp.
func TestGenericSpec(t *testing.T) {
	spec, err := ParseSpec([]byte(`
scheme: hmac
algorithm: sha512
encoding: base64url
header: X-Sig
prefix: "v9="
content: "{method}|{header:X-Id}|{field:data.id}|{timestamp}|{body}"
timestamp: {header: X-Ts, unit: ms, tolerance: 30s, futureTolerance: 1s}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(t0, 0)
	body := `{"data":{"id":"d-9"}}`
	mk := func(at time.Time) Request {
		ts := itoa(at.UnixMilli())
		m := mac(h512, "gen", "POST|id-1|d-9|"+ts+"|"+body)
		return req("POST", "u", body, "X-Id", "id-1", "X-Ts", ts, "X-Sig", "v9="+base64.URLEncoding.EncodeToString(m))
	}
	v := mustNew(t, spec, Options{Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name string
		at   time.Time
		want Code
	}{
		{"now", now, ""},
		{"29 s old", now.Add(-29 * time.Second), ""},
		{"31 s old", now.Add(-31 * time.Second), ErrTimestampOutOfRange},
		{"2 s ahead", now.Add(2 * time.Second), ErrTimestampOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CodeOf(v.Verify(mk(tc.at), sec("gen"))); got != tc.want {
				t.Fatalf("code %q, want %q", got, tc.want)
			}
		})
	}
	s, err := NewSigner(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := req("POST", "u", body, "X-Id", "id-1")
	if err := s.Sign(&r, Secret{Value: "gen"}, now); err != nil {
		t.Fatal(err)
	}
	if want := mk(now).Header.Get("X-Sig"); r.Header.Get("X-Sig") != want {
		t.Fatalf("signer %q, formula %q", r.Header.Get("X-Sig"), want)
	}
}

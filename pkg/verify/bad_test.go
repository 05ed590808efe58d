package verify

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func slackReq(t *testing.T, secret string, at time.Time, body string) Request {
	t.Helper()
	s, err := NewSigner(Spec{Preset: "slack"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := req("POST", "https://h.example/slack", body)
	if err := s.Sign(&r, Secret{Value: secret}, at); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBadInput(t *testing.T) {
	now := time.Unix(t0, 0)
	v := mustNew(t, Spec{Preset: "slack"}, Options{Now: func() time.Time { return now }})
	good := slackReq(t, "s1", now, `{"type":"event_callback"}`)
	tests := []struct {
		name    string
		r       func() Request
		secrets []Secret
		want    Code
	}{
		{"authentic", func() Request { return good }, sec("s1"), ""},
		{"bad signature", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("ab", 32))
			return r
		}, sec("s1"), ErrBadSignature},
		{"not hex", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Set("X-Slack-Signature", "v0=zz")
			return r
		}, sec("s1"), ErrBadSignature},
		{"wrong prefix", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Set("X-Slack-Signature", strings.Replace(good.Header.Get("X-Slack-Signature"), "v0=", "v1=", 1))
			return r
		}, sec("s1"), ErrBadSignature},
		{"expired timestamp", func() Request { return slackReq(t, "s1", now.Add(-6*time.Minute), "{}") }, sec("s1"), ErrTimestampOutOfRange},
		{"future timestamp", func() Request { return slackReq(t, "s1", now.Add(6*time.Minute), "{}") }, sec("s1"), ErrTimestampOutOfRange},
		{"inside the window both ways", func() Request { return slackReq(t, "s1", now.Add(4*time.Minute), "{}") }, sec("s1"), ""},
		{"malformed timestamp", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Set("X-Slack-Request-Timestamp", "yesterday")
			return r
		}, sec("s1"), ErrTimestampOutOfRange},
		{"missing signature header", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Del("X-Slack-Signature")
			return r
		}, sec("s1"), ErrMissingSignature},
		{"missing timestamp header", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Del("X-Slack-Request-Timestamp")
			return r
		}, sec("s1"), ErrMissingSignature},
		{"no headers at all", func() Request { return Request{Method: "POST", Body: []byte("{}")} }, sec("s1"), ErrMissingSignature},
		{"wrong secret", func() Request { return good }, sec("s2"), ErrBadSignature},
		{"no secret: fail closed", func() Request { return good }, nil, ErrNoSecret},
		{"only empty secrets", func() Request { return good }, []Secret{{Value: ""}}, ErrNoSecret},
		{"only a verify token", func() Request { return good }, []Secret{{Value: "s1", Use: UseVerifyToken}}, ErrNoSecret},
		{"re-serialized JSON", func() Request {
			r := slackReq(t, "s1", now, `{"b": 1, "a": 2}`)
			r.Body = []byte(`{"a":2,"b":1}`)
			return r
		}, sec("s1"), ErrBadSignature},
		{"empty body signed", func() Request { return slackReq(t, "s1", now, "") }, sec("s1"), ""},
		{"empty body, signature of another", func() Request {
			r := good
			r.Body = nil
			return r
		}, sec("s1"), ErrBadSignature},
		{"huge signature header", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("a", 1<<20))
			return r
		}, sec("s1"), ErrBadSignature},
		{"huge unrelated header", func() Request {
			r := good
			r.Header = good.Header.Clone()
			r.Header.Set("X-Junk", strings.Repeat("a", 1<<20))
			return r
		}, sec("s1"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(tc.r(), tc.secrets)
			if got := CodeOf(err); got != tc.want {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, tc.want) {
				t.Errorf("errors.Is(err, %s) = false", tc.want)
			}
		})
	}
}

// Rotation: the old secret is accepted until its ExpiresAt (the end of its
// grace period) and refused from then on; the new one works throughout.
func TestRotation(t *testing.T) {
	start := time.Unix(t0, 0)
	grace := start.Add(24 * time.Hour)
	secrets := []Secret{{ID: "old", Value: "old-secret", ExpiresAt: grace}, {ID: "new", Value: "new-secret"}}
	tests := []struct {
		name   string
		signer string
		now    time.Time
		want   Code
		id     string
	}{
		{"old secret inside grace", "old-secret", start.Add(time.Hour), "", "old"},
		{"new secret inside grace", "new-secret", start.Add(time.Hour), "", "new"},
		{"old secret at expiry", "old-secret", grace, ErrBadSignature, ""},
		{"old secret after expiry", "old-secret", grace.Add(time.Minute), ErrBadSignature, ""},
		{"new secret after expiry", "new-secret", grace.Add(time.Minute), "", "new"},
		{"unknown secret", "other", start, ErrBadSignature, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			v := mustNew(t, Spec{Preset: "github"}, Options{Now: func() time.Time { return now }})
			body := `{"action":"opened"}`
			r := req("POST", "https://h.example/g", body, "X-Hub-Signature-256", "sha256="+hmacHex(h256, tc.signer, body))
			res, err := v.Check(r, secrets)
			if CodeOf(err) != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if res.SecretID != tc.id {
				t.Errorf("matched %q, want %q", res.SecretID, tc.id)
			}
		})
	}
	t.Run("all expired: no_secret", func(t *testing.T) {
		v := mustNew(t, Spec{Preset: "github"}, Options{Now: func() time.Time { return grace.Add(time.Hour) }})
		err := v.Verify(req("POST", "u", "{}", "X-Hub-Signature-256", "sha256=00"), secrets[:1])
		if CodeOf(err) != ErrNoSecret {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestUnknownSchemeFailsClosed(t *testing.T) {
	for _, s := range []Spec{
		{Preset: "no-such-provider"},
		{Scheme: "rot13", Header: "X"},
		{Header: "X", Algorithm: "md5"},
		{Header: "X", Encoding: "base32"},
		{Header: "X", Format: "xml"},
		{Header: "X", SecretEncoding: "rot13"},
		{Header: "X", Timestamp: &TimestampSpec{Header: "T", Unit: "fortnights"}},
		{Header: "X", Handshake: &HandshakeSpec{Type: "telepathy"}},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			_, err := New(s, Options{})
			if CodeOf(err) != ErrUnknownScheme {
				t.Fatalf("err = %v, want unknown_scheme", err)
			}
			if ErrUnknownScheme.HTTPStatus() != http.StatusServiceUnavailable {
				t.Fatal("unknown_scheme must be a 503")
			}
		})
	}
}

func TestHTTPStatus(t *testing.T) {
	for c, want := range map[Code]int{ErrMissingSignature: 401, ErrBadSignature: 401, ErrTimestampOutOfRange: 401, ErrNoSecret: 503, ErrUnknownScheme: 503} {
		if c.HTTPStatus() != want {
			t.Errorf("%s → %d, want %d", c, c.HTTPStatus(), want)
		}
	}
}

// Errors never carry the computed MAC or the secret.
func TestErrorsDoNotLeak(t *testing.T) {
	now := time.Unix(t0, 0)
	v := mustNew(t, Spec{Preset: "github"}, Options{Now: func() time.Time { return now }})
	body := "payload"
	want := hmacHex(h256, "topsecret", body)
	err := v.Verify(req("POST", "u", body, "X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64)), sec("topsecret"))
	if err == nil || strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("error leaks: %v", err)
	}
}

// Each family refuses tampering and a missing signature the same way.
func TestFamiliesRefuse(t *testing.T) {
	for _, vec := range vectors() {
		t.Run(vec.preset, func(t *testing.T) {
			v := mustNew(t, Spec{Preset: vec.preset}, at(vec.now))
			bare := Request{Method: vec.req.Method, URL: vec.req.URL, Header: http.Header{}, Body: vec.req.Body}
			if ct := vec.req.Header.Get("Content-Type"); ct != "" {
				bare.Header.Set("Content-Type", ct)
			}
			err := v.Verify(bare, vec.secret)
			switch CodeOf(err) {
			case ErrMissingSignature, ErrBadSignature:
			default:
				if vec.preset == "mailgun" || vec.preset == "microsoft-graph" {
					// signature lives in the body, still present
					if err != nil {
						t.Fatalf("unexpected %v", err)
					}
					return
				}
				t.Fatalf("no signature: err = %v", err)
			}
			if err := v.Verify(vec.req, []Secret{{Value: "definitely-not-it"}}); err == nil {
				t.Fatalf("accepted with the wrong secret")
			}
		})
	}
}

func TestTimestampWindows(t *testing.T) {
	// Providers with their own units and windows: HubSpot v3 (ms), Linear
	// (body field, ms, 60 s), Twitch (RFC 3339, 10 min), Paddle (5 s).
	base := time.Unix(t0, 0)
	tests := []struct {
		name string
		spec Spec
		mk   func(at time.Time) Request
		skew time.Duration
		want Code
	}{
		{"hubspot ms inside", Spec{Preset: "hubspot-v3"}, hubspotV3Req, -4 * time.Minute, ""},
		{"hubspot ms too old", Spec{Preset: "hubspot-v3"}, hubspotV3Req, -6 * time.Minute, ErrTimestampOutOfRange},
		{"hubspot ms too new", Spec{Preset: "hubspot-v3"}, hubspotV3Req, 6 * time.Minute, ErrTimestampOutOfRange},
		{"linear inside", Spec{Preset: "linear"}, linearReq, 50 * time.Second, ""},
		{"linear too old", Spec{Preset: "linear"}, linearReq, -61 * time.Second, ErrTimestampOutOfRange},
		{"paddle 5 s", Spec{Preset: "paddle"}, paddleReq, -6 * time.Second, ErrTimestampOutOfRange},
		{"paddle overridden to 1 min", Spec{Preset: "paddle", Timestamp: &TimestampSpec{Tolerance: Duration(time.Minute)}}, paddleReq, -30 * time.Second, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustNew(t, tc.spec, Options{Now: func() time.Time { return base }})
			if got := CodeOf(v.Verify(tc.mk(base.Add(tc.skew)), sec("k"))); got != tc.want {
				t.Fatalf("code %q, want %q", got, tc.want)
			}
		})
	}
}

func hubspotV3Req(at time.Time) Request {
	ts := fmt.Sprint(at.UnixMilli())
	return req("POST", "https://h.example/hs", "[]", "X-HubSpot-Request-Timestamp", ts, "X-HubSpot-Signature-v3", hmacB64(h256, "k", "POSThttps://h.example/hs[]"+ts))
}

func linearReq(at time.Time) Request {
	b := fmt.Sprintf(`{"webhookTimestamp":%d}`, at.UnixMilli())
	return req("POST", "u", b, "Linear-Signature", hmacHex(h256, "k", b))
}

func paddleReq(at time.Time) Request {
	ts := fmt.Sprint(at.Unix())
	return req("POST", "u", "{}", "Paddle-Signature", "ts="+ts+";h1="+hmacHex(h256, "k", ts+":{}"))
}

func TestGraphClientStateEveryItem(t *testing.T) {
	v := mustNew(t, Spec{Preset: "microsoft-graph"}, Options{})
	for _, tc := range []struct {
		body string
		want Code
	}{
		{`{"value":[{"clientState":"cs"},{"clientState":"cs"}]}`, ""},
		{`{"value":[{"clientState":"cs"},{"clientState":"other"}]}`, ErrBadSignature},
		{`{"value":[{"clientState":"cs"},{"changeType":"created"}]}`, ErrBadSignature},
		{`{"value":[]}`, ErrMissingSignature},
		{`not json`, ErrMissingSignature},
	} {
		t.Run(tc.body, func(t *testing.T) {
			if got := CodeOf(v.Verify(req("POST", "u", tc.body), sec("cs"))); got != tc.want {
				t.Fatalf("code %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDeeplyNestedJSON(t *testing.T) {
	body := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	v := mustNew(t, Spec{Preset: "linear"}, Options{})
	if got := CodeOf(v.Verify(req("POST", "u", body, "Linear-Signature", "00"), sec("k"))); got != ErrMissingSignature {
		t.Fatalf("code %q", got)
	}
}

// A Twilio signature over URL and parameters cannot carry a body that was
// not part of them.
func TestTwilioBodyCannotRideAlong(t *testing.T) {
	v := mustNew(t, Spec{Preset: "twilio"}, Options{})
	u := "https://h.example/t?foo=1"
	sig := hmacB64(h1, "tok", u) // signature of the URL with no parameters
	for _, tc := range []struct {
		name, body, ct string
		want           Code
	}{
		{"no body", "", "", ""},
		{"json body added", `{"evil":true}`, "application/json", ErrBadSignature},
		{"form body added", "evil=true", "application/x-www-form-urlencoded", ErrBadSignature},
		{"unparseable body", "%zz", "text/plain", ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CodeOf(v.Verify(req("POST", u, tc.body, "Content-Type", tc.ct, "X-Twilio-Signature", sig), sec("tok"))); got != tc.want {
				t.Fatalf("code %q, want %q", got, tc.want)
			}
		})
	}
}

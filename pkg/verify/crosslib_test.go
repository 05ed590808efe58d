package verify

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v82/webhook"
	svix "github.com/svix/svix-webhooks/go"
	"github.com/twilio/twilio-go/client"
)

// Cross-implementation tests: each independent library signs and we verify,
// and we sign and the library verifies. The libraries check their own clock,
// so these use the real time.

const crossBody = `{"id":"evt_cross","type":"invoice.paid","data":{"amount":4200}}`

func TestCrossStripe(t *testing.T) {
	const secret = "whsec_cross_stripe_secret"
	now := time.Now()
	v := mustNew(t, Spec{Preset: "stripe"}, Options{})
	t.Run("stripe-go signs, we verify", func(t *testing.T) {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(crossBody), Secret: secret, Timestamp: now, Scheme: "v1"})
		r := req("POST", "https://h.example/s", crossBody, "Stripe-Signature", sp.Header)
		if err := v.Verify(r, sec(secret)); err != nil {
			t.Fatal(err)
		}
		// ComputeSignature is the primitive behind it.
		sig := webhook.ComputeSignature(now, []byte(crossBody), secret)
		if !strings.Contains(sp.Header, string(hexEncode(sig))) {
			t.Errorf("ComputeSignature disagrees with GenerateTestSignedPayload")
		}
	})
	t.Run("we sign, stripe-go verifies", func(t *testing.T) {
		s, err := NewSigner(Spec{Preset: "stripe"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := req("POST", "https://h.example/s", crossBody)
		if err := s.Sign(&r, Secret{Value: secret}, now); err != nil {
			t.Fatal(err)
		}
		if err := webhook.ValidatePayload([]byte(crossBody), r.Header.Get("Stripe-Signature"), secret); err != nil {
			t.Fatalf("stripe-go refused our signature: %v", err)
		}
		if err := webhook.ValidatePayload([]byte(crossBody+" "), r.Header.Get("Stripe-Signature"), secret); err == nil {
			t.Fatalf("stripe-go accepted a changed body")
		}
	})
	t.Run("rotation: two v1 entries", func(t *testing.T) {
		old := webhook.ComputeSignature(now, []byte(crossBody), "whsec_old")
		cur := webhook.ComputeSignature(now, []byte(crossBody), secret)
		h := "t=" + itoa(now.Unix()) + ",v1=" + string(hexEncode(old)) + ",v1=" + string(hexEncode(cur))
		if err := v.Verify(req("POST", "https://h.example/s", crossBody, "Stripe-Signature", h), sec(secret)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCrossStandardWebhooksAndSvix(t *testing.T) {
	now := time.Now()
	sw, err := standardwebhooks.NewWebhook(swSecret)
	if err != nil {
		t.Fatal(err)
	}
	sx, err := svix.NewWebhook(swSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, preset, prefix string
		sign                 func(id string, ts time.Time, b []byte) (string, error)
		verify               func(b []byte, h http.Header) error
	}{
		{"standard-webhooks lib", "standard-webhooks", "webhook-", sw.Sign, sw.Verify},
		{"svix lib", "svix", "svix-", sx.Sign, sx.Verify},
		{"svix lib, webhook-* headers", "svix", "webhook-", sx.Sign, sx.Verify},
		{"svix lib for clerk", "clerk", "svix-", sx.Sign, sx.Verify},
	} {
		t.Run(tc.name+": theirs signs, we verify", func(t *testing.T) {
			sig, err := tc.sign("msg_cross", now, []byte(crossBody))
			if err != nil {
				t.Fatal(err)
			}
			r := req("POST", "https://h.example/x", crossBody, tc.prefix+"id", "msg_cross", tc.prefix+"timestamp", itoa(now.Unix()), tc.prefix+"signature", sig)
			if err := mustNew(t, Spec{Preset: tc.preset}, Options{}).Verify(r, sec(swSecret)); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(tc.name+": we sign, theirs verifies", func(t *testing.T) {
			s, err := NewSigner(Spec{Preset: tc.preset}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := req("POST", "https://h.example/x", crossBody, tc.prefix+"id", "msg_cross2")
			if tc.prefix == "webhook-" && tc.preset == "svix" {
				t.Skip("our svix signer writes svix-* headers")
			}
			if err := s.Sign(&r, Secret{Value: swSecret}, now); err != nil {
				t.Fatal(err)
			}
			if err := tc.verify([]byte(crossBody), r.Header); err != nil {
				t.Fatalf("library refused our signature: %v", err)
			}
			if err := tc.verify([]byte(crossBody+"x"), r.Header); err == nil {
				t.Fatal("library accepted a changed body")
			}
		})
	}
	// Both libraries agree on the published vector too.
	h := http.Header{}
	h.Set("webhook-id", swID)
	h.Set("webhook-timestamp", swTS)
	h.Set("webhook-signature", swSigV1)
	if err := sw.VerifyIgnoringTimestamp([]byte(swBody), h); err != nil {
		t.Errorf("standard-webhooks lib refuses the published vector: %v", err)
	}
}

func TestCrossSlack(t *testing.T) {
	const secret = "slack-signing-secret-cross"
	s, err := NewSigner(Spec{Preset: "slack"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	body := "token=x&team_id=T1&command=%2Fcross&text=hello"
	r := req("POST", "https://h.example/slack", body)
	if err := s.Sign(&r, Secret{Value: secret}, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Run("we sign, slack-go verifies", func(t *testing.T) {
		sv, err := slack.NewSecretsVerifier(r.Header, secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sv.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := sv.Ensure(); err != nil {
			t.Fatalf("slack-go refused our signature: %v", err)
		}
	})
	t.Run("slack-go refuses a wrong secret, as we do", func(t *testing.T) {
		sv, err := slack.NewSecretsVerifier(r.Header, "other")
		if err != nil {
			t.Fatal(err)
		}
		sv.Write([]byte(body))
		if sv.Ensure() == nil {
			t.Fatal("slack-go accepted a wrong secret")
		}
		if CodeOf(mustNew(t, Spec{Preset: "slack"}, Options{}).Verify(r, sec("other"))) != ErrBadSignature {
			t.Fatal("we accepted a wrong secret")
		}
	})
	t.Run("slack-go accepts the published vector's form (own clock aside)", func(t *testing.T) {
		// slack-go has no signer; its verifier is the oracle for ours above.
		if err := mustNew(t, Spec{Preset: "slack"}, Options{}).Verify(r, sec(secret)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCrossTwilio(t *testing.T) {
	// twilio-go's own test vectors (client/request_validator_test.go), verified
	// by ours; twilio-go has no exported signer.
	const token = "12345"
	testURL := "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := url.Values{}
	for k, v := range map[string]string{"Digits": "1234", "CallSid": "CA1234567890ABCDE", "To": "+18005551212",
		"Caller": "+14158675309", "From": "+14158675309", "ReasonConferenceEnded": "test", "Reason": "Participant"} {
		params.Set(k, v)
	}
	const bodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	jsonBody := `{"property": "value", "boolean": true}`
	form := "application/x-www-form-urlencoded"
	v := mustNew(t, Spec{Preset: "twilio"}, Options{})
	for _, tc := range []struct {
		name, url, body, ct, sig string
		ok                       bool
	}{
		{"form params", testURL, params.Encode(), form, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"form params, non-default port in URL", strings.Replace(testURL, ".com", ".com:1234", 1), params.Encode(), form, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"http with port", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", params.Encode(), form, "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{"params sorted wrongly", testURL, params.Encode(), form, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", false},
		{"json body with bodySHA256", testURL + "&bodySHA256=" + bodyHash, jsonBody, "application/json", "a9nBmqA0ju/hNViExpshrM61xv4=", true},
		{"form body", testURL, "property=value&boolean=true", form, "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", true},
		{"json body without bodySHA256", testURL, jsonBody, "application/json", "vOEb5UThFn24KEfnOFLQY2AE5FY=", false},
		{"only bodySHA256", "https://mycompany.com/myapp.php?bodySHA256=" + bodyHash, jsonBody, "application/json", "y77kIzt2vzLz71DgmJGsen2scGs=", true},
		{"json body changed", testURL + "&bodySHA256=" + bodyHash, jsonBody + " ", "application/json", "a9nBmqA0ju/hNViExpshrM61xv4=", false},
	} {
		t.Run("twilio-go vector: "+tc.name, func(t *testing.T) {
			err := v.Verify(req("POST", tc.url, tc.body, "Content-Type", tc.ct, "X-Twilio-Signature", tc.sig), sec(token))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("we sign, twilio-go verifies", func(t *testing.T) {
		s, err := NewSigner(Spec{Preset: "twilio"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rv := client.NewRequestValidator(token)
		r := req("POST", testURL, params.Encode(), "Content-Type", form)
		if err := s.Sign(&r, Secret{Value: token}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if !rv.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
			t.Fatal("twilio-go refused our form signature")
		}
		ju := testURL + "&bodySHA256=" + sha256Hex(jsonBody)
		rj := req("POST", ju, jsonBody, "Content-Type", "application/json")
		if err := s.Sign(&rj, Secret{Value: token}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if !rv.ValidateBody(rj.URL, rj.Body, rj.Header.Get("X-Twilio-Signature")) {
			t.Fatal("twilio-go refused our JSON-body signature")
		}
	})
}

func hexEncode(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, len(b)*2)
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

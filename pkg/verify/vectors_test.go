package verify

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"
)

// vector is one authentic delivery for a preset. source says where the
// expected signature comes from: "published" (the provider's documentation,
// its SDK's tests or the Standard Webhooks spec, reproduced verbatim) or
// "formula" (computed in this file from the provider's documented formula
// with the standard library, independently of the package's template engine).
type vector struct {
	preset string
	source string
	secret []Secret
	req    Request
	now    int64
}

// Standard Webhooks / Svix test vector: from the Svix server's tests; the v1a
// signature is the example header of the Standard Webhooks spec. The v1a key
// is base64 of the Ed25519 seed followed by the public key.
const (
	swID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTS     = "1614265330"
	swBody   = `{"test": 2432232314}`
	swSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swSigV1  = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	swSigV1a = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
	swPub    = "1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
	swPriv   = "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
)

// SendGrid's Event Webhook test vector (its SDKs' eventwebhook tests).
const (
	sgPub  = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	sgSig  = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
	sgTS   = "1588788367"
	sgBody = `{"category":"example_payload","event":"test_event","message_id":"message_id"}`
)

const t0 = 1700000000 // 2023-11-14T22:13:20Z

func svixVector(name string) vector {
	return vector{name, "published", sec(swSecret), req("POST", "https://h.example/x", swBody,
		"svix-id", swID, "svix-timestamp", swTS, "svix-signature", swSigV1), 1614265330}
}

func vectors() []vector {
	const body = `{"id":"evt_1","type":"thing.created"}`
	discordPriv := ed25519.NewKeyFromSeed([]byte("discord-test-seed-32-bytes-long!"))
	discordPub := hex.EncodeToString(discordPriv.Public().(ed25519.PublicKey))
	ts := fmt.Sprint(t0)
	tsMS := fmt.Sprint(int64(t0) * 1000)

	mailgunSig := hmacHex(h256, "mg-key", ts+"tok-50-chars")
	mailgunBody := `{"signature":{"token":"tok-50-chars","timestamp":"` + ts + `","signature":"` + mailgunSig + `"},"event-data":{"event":"delivered","id":"ev1"}}`
	linearBody := `{"type":"Issue","action":"create","webhookTimestamp":` + tsMS + `}`
	graphBody := `{"value":[{"clientState":"cs-7f3a","changeType":"created"},{"clientState":"cs-7f3a","changeType":"updated"}]}`
	hubURL := "https://hooks.example/hubspot?name=a%3Ab%2Fc%20d"
	hubDecoded := "https://hooks.example/hubspot?name=a:b/c%20d"
	mandrillURL := "https://hooks.example/mandrill"
	mandrillForm := "mandrill_events=%5B%7B%22event%22%3A%22send%22%7D%5D"
	twitchID := "e76c6bd4-55c9-4987-8304-da1588d8988b"
	twitchTS := "2023-11-14T22:13:20Z"
	mondayJWT := jwtHS256("monday-signing", fmt.Sprintf(`{"accountId":42,"exp":%d}`, t0+300))
	jiraJWT := jwtHS256("jira-client-secret", fmt.Sprintf(`{"iss":"site","exp":%d}`, t0+300))
	basic := base64.StdEncoding.EncodeToString([]byte("hookuser:s3cret"))

	return []vector{
		{"standard-webhooks", "published", sec(swSecret), req("POST", "https://h.example/x", swBody,
			"webhook-id", swID, "webhook-timestamp", swTS, "webhook-signature", swSigV1), 1614265330},
		{"standard-webhooks-v1a", "published", sec("whpk_" + swPub), req("POST", "https://h.example/x", swBody,
			"webhook-id", swID, "webhook-timestamp", swTS, "webhook-signature", swSigV1a), 1614265330},
		svixVector("svix"), svixVector("clerk"), svixVector("resend"), svixVector("replicate"), svixVector("stytch"), svixVector("brex"),
		{"stripe", "formula", sec("whsec_stripe"), req("POST", "https://h.example/s", body,
			"Stripe-Signature", "t="+ts+",v1="+hmacHex(h256, "whsec_stripe", ts+"."+body)+",v0=ignored"), t0},
		// GitHub's "Validating webhook deliveries" example.
		{"github", "published", sec("It's a Secret to Everybody"), req("POST", "https://h.example/g", "Hello, World!",
			"X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"), t0},
		{"github-sha1", "formula", sec("gh"), req("POST", "https://h.example/g", body, "X-Hub-Signature", "sha1="+hmacHex(h1, "gh", body)), t0},
		// Slack's "Verifying requests from Slack" example.
		{"slack", "published", sec("8f742231b10e8888abcd99yyyzzz85a5"), req("POST", "https://h.example/slack",
			"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
			"X-Slack-Request-Timestamp", "1531420618", "X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"), 1531420618},
		{"shopify", "formula", sec("shpss"), req("POST", "https://h.example/shop", body, "X-Shopify-Hmac-Sha256", hmacB64(h256, "shpss", body)), t0},
		// HubSpot's v1 documentation example.
		{"hubspot-v1", "published", sec("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"), req("POST", "https://h.example/hs",
			`[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]`,
			"X-HubSpot-Signature", "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de", "X-HubSpot-Signature-Version", "v1"), t0},
		// HubSpot's v2 documentation example.
		{"hubspot-v2", "published", sec("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"), req("POST", "https://www.example.com/webhook_uri", `{"example_field":"example_value"}`,
			"X-HubSpot-Signature", "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900", "X-HubSpot-Signature-Version", "v2"), t0},
		{"hubspot-v2", "formula", sec("hs-secret"), req("POST", "https://h.example/hs", body,
			"X-HubSpot-Signature", sha256Hex("hs-secret"+"POST"+"https://h.example/hs"+body)), t0},
		{"hubspot-v3", "formula", sec("hs-secret"), req("POST", hubURL, body,
			"X-HubSpot-Request-Timestamp", tsMS, "X-HubSpot-Signature-v3", hmacB64(h256, "hs-secret", "POST"+hubDecoded+body+tsMS)), t0},
		// Twilio's "Webhooks security" example.
		{"twilio", "published", sec("12345"), req("POST", "https://mycompany.com/myapp.php?foo=1&bar=2",
			"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212",
			"Content-Type", "application/x-www-form-urlencoded", "X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), t0},
		{"zendesk", "formula", sec("zd"), req("POST", "https://h.example/zd", body,
			"X-Zendesk-Webhook-Signature-Timestamp", "2023-11-14T22:13:20Z", "X-Zendesk-Webhook-Signature", hmacB64(h256, "zd", "2023-11-14T22:13:20Z"+body)), t0},
		{"intercom", "formula", sec("ic"), req("POST", "https://h.example/ic", body, "X-Hub-Signature", "sha1="+hmacHex(h1, "ic", body)), t0},
		{"linear", "formula", sec("lin"), req("POST", "https://h.example/lin", linearBody, "Linear-Signature", hmacHex(h256, "lin", linearBody)), t0},
		{"asana", "formula", sec("hook-secret"), req("POST", "https://h.example/as", body, "X-Hook-Signature", hmacHex(h256, "hook-secret", body)), t0},
		{"zoom", "formula", sec("zoomtok"), req("POST", "https://h.example/zoom", body,
			"x-zm-request-timestamp", ts, "x-zm-signature", "v0="+hmacHex(h256, "zoomtok", "v0:"+ts+":"+body)), t0},
		{"dropbox", "formula", sec("dbx"), req("POST", "https://h.example/dbx", body, "X-Dropbox-Signature", hmacHex(h256, "dbx", body)), t0},
		{"jira", "formula", sec("jira"), req("POST", "https://h.example/jira", body, "X-Hub-Signature", "sha256="+hmacHex(h256, "jira", body)), t0},
		{"jira-oauth", "formula", sec("jira-client-secret"), req("POST", "https://h.example/jira", body, "Authorization", "Bearer "+jiraJWT), t0},
		{"calendly", "formula", sec("cal"), req("POST", "https://h.example/cal", body,
			"Calendly-Webhook-Signature", "t="+ts+",v1="+hmacHex(h256, "cal", ts+"."+body)), t0},
		{"docusign", "formula", []Secret{{ID: "old", Value: "ds-old"}, {ID: "new", Value: "ds-new"}}, req("POST", "https://h.example/ds", body,
			"X-DocuSign-Signature-1", hmacB64(h256, "ds-other", body), "X-DocuSign-Signature-2", hmacB64(h256, "ds-new", body)), t0},
		{"microsoft-graph", "formula", sec("cs-7f3a"), req("POST", "https://h.example/graph", graphBody), t0},
		{"google-drive", "formula", sec("chan-tok"), req("POST", "https://h.example/gd", "", "X-Goog-Channel-Token", "chan-tok", "X-Goog-Resource-State", "update"), t0},
		{"google-calendar", "formula", sec("chan-tok"), req("POST", "https://h.example/gc", "", "X-Goog-Channel-Token", "chan-tok", "X-Goog-Resource-State", "exists"), t0},
		{"mailchimp-transactional", "formula", sec("mandrill-key"), req("POST", mandrillURL, mandrillForm,
			"Content-Type", "application/x-www-form-urlencoded", "X-Mandrill-Signature", hmacB64(h1, "mandrill-key", mandrillURL+"mandrill_events"+`[{"event":"send"}]`)), t0},
		{"monday", "formula", sec("monday-signing"), req("POST", "https://h.example/monday", body, "Authorization", mondayJWT), t0},
		{"clickup", "formula", sec("cu"), req("POST", "https://h.example/cu", body, "X-Signature", hmacHex(h256, "cu", body)), t0},
		{"typeform", "formula", sec("tf"), req("POST", "https://h.example/tf", body, "Typeform-Signature", "sha256="+hmacB64(h256, "tf", body)), t0},
		{"paddle", "formula", sec("pdl_ntfset"), req("POST", "https://h.example/paddle", body,
			"Paddle-Signature", "ts="+ts+";h1="+hmacHex(h256, "pdl_ntfset", ts+":"+body)), t0},
		{"square", "formula", sec("sq-key"), req("POST", "https://h.example/square", body,
			"x-square-hmacsha256-signature", hmacB64(h256, "sq-key", "https://h.example/square"+body)), t0},
		{"sendgrid", "published", sec(sgPub), req("POST", "https://h.example/sg", sgBody,
			"X-Twilio-Email-Event-Webhook-Signature", sgSig, "X-Twilio-Email-Event-Webhook-Timestamp", sgTS), 1588788367},
		{"twitch", "formula", sec("twitch-secret"), req("POST", "https://h.example/tw", body,
			"Twitch-Eventsub-Message-Id", twitchID, "Twitch-Eventsub-Message-Timestamp", twitchTS,
			"Twitch-Eventsub-Message-Signature", "sha256="+hmacHex(h256, "twitch-secret", twitchID+twitchTS+body)), t0},
		{"meta", "formula", sec("app-secret"), req("POST", "https://h.example/meta", body, "X-Hub-Signature-256", "sha256="+hmacHex(h256, "app-secret", body)), t0},
		{"gitlab", "formula", sec("gl-token"), req("POST", "https://h.example/gl", body, "X-Gitlab-Token", "gl-token"), t0},
		{"discord", "formula", sec(discordPub), req("POST", "https://h.example/dc", body,
			"X-Signature-Timestamp", ts, "X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(discordPriv, []byte(ts+body)))), t0},
		{"mailgun", "formula", sec("mg-key"), req("POST", "https://h.example/mg", mailgunBody, "Content-Type", "application/json"), t0},
		{"razorpay", "formula", sec("rzp"), req("POST", "https://h.example/rzp", body, "X-Razorpay-Signature", hmacHex(h256, "rzp", body)), t0},
		{"xero", "formula", sec("xero-key"), req("POST", "https://h.example/xero", body, "x-xero-signature", hmacB64(h256, "xero-key", body)), t0},
		{"vercel", "formula", sec("vc"), req("POST", "https://h.example/vc", body, "x-vercel-signature", hmacHex(h1, "vc", body)), t0},
		{"sentry", "formula", sec("sentry-client"), req("POST", "https://h.example/sentry", body, "Sentry-Hook-Signature", hmacHex(h256, "sentry-client", body)), t0},
		{"woocommerce", "formula", sec("wc"), req("POST", "https://h.example/wc", body, "X-WC-Webhook-Signature", hmacB64(h256, "wc", body)), t0},
		{"pipedrive", "formula", sec("hookuser:s3cret"), req("POST", "https://h.example/pd", body, "Authorization", "Basic "+basic), t0},
		{"basic", "formula", sec("hookuser:s3cret"), req("POST", "https://h.example/b", body, "Authorization", "Basic "+basic), t0},
		{"bearer", "formula", sec("tok-123"), req("POST", "https://h.example/b", body, "Authorization", "Bearer tok-123"), t0},
	}
}

func TestPresetVectors(t *testing.T) {
	for _, vec := range vectors() {
		t.Run(vec.preset+"/"+vec.source, func(t *testing.T) {
			v := mustNew(t, Spec{Preset: vec.preset}, at(vec.now))
			res, err := v.Check(vec.req, vec.secret)
			if err != nil {
				t.Fatalf("authentic delivery refused: %v", err)
			}
			if res.SecretID == "" {
				t.Errorf("matched secret not reported")
			}
			// The same delivery with one body byte changed must fail
			// (token/basic/bearer schemes don't cover the body).
			switch v.Spec().Scheme {
			case "token", "basic", "bearer", "jwt":
				return
			}
			bad := vec.req
			bad.Body = append([]byte(nil), vec.req.Body...)
			if len(bad.Body) == 0 {
				return
			}
			bad.Body[len(bad.Body)-1] ^= 0x01
			if err := v.Verify(bad, vec.secret); err == nil {
				t.Errorf("tampered body accepted")
			}
		})
	}
}

// Every preset has a vector: a preset without one is an untested claim.
func TestEveryPresetHasVector(t *testing.T) {
	have := map[string]bool{}
	for _, v := range vectors() {
		have[v.preset] = true
	}
	ps := Presets()
	if len(ps) < 40 {
		t.Errorf("only %d presets", len(ps))
	}
	for _, p := range ps {
		if !have[p.Name] {
			t.Errorf("preset %s has no vector", p.Name)
		}
		if p.Doc == "" || p.Title == "" || p.EventIDHint == "" || p.TenantHint == "" || p.EventTypeHint == "" {
			t.Errorf("preset %s lacks documentation fields", p.Name)
		}
		if _, err := New(Spec{Preset: p.Name}, Options{}); err != nil {
			t.Errorf("preset %s does not compile: %v", p.Name, err)
		}
	}
}

// The published Ed25519 key also verifies given as the 64-byte private key
// (seed‖public) and as raw base64, as the spec leaves the whsk_ form open.
func TestStandardWebhooksV1aKeyForms(t *testing.T) {
	r := req("POST", "https://h.example/x", swBody, "webhook-id", swID, "webhook-timestamp", swTS, "webhook-signature", "v1,bogus "+swSigV1a)
	v := mustNew(t, Spec{Preset: "standard-webhooks-v1a"}, at(1614265330))
	for _, k := range []string{swPub, "whpk_" + swPub, "whsk_" + swPriv, swPriv} {
		if err := v.Verify(r, sec(k)); err != nil {
			t.Errorf("key form %.10s…: %v", k, err)
		}
	}
	seed, _ := base64.StdEncoding.DecodeString(swPriv)
	if !ed25519.NewKeyFromSeed(seed[:32]).Equal(ed25519.PrivateKey(seed)) {
		t.Errorf("published v1a key is not seed‖public")
	}
}

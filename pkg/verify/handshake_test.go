package verify

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestHandshakes(t *testing.T) {
	now := time.Unix(t0, 0)
	ts := "1700000000"
	slackBody := `{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	zoomBody := `{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`
	twitchBody := `{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"channel.follow"}}`
	twitchID, twitchTS := "e76c6bd4-55c9-4987-8304-da1588d8988b", "2023-11-14T22:13:20Z"
	discordBody := `{"type":1,"id":"123"}`

	type want struct {
		handled bool
		code    Code
		status  int
		body    string
		ctype   string
		store   string
	}
	tests := []struct {
		name    string
		preset  string
		r       Request
		secrets []Secret
		want    want
	}{
		{"slack url_verification, signed", "slack", req("POST", "u", slackBody, "X-Slack-Request-Timestamp", ts,
			"X-Slack-Signature", "v0="+hmacHex(h256, "ss", "v0:"+ts+":"+slackBody)), sec("ss"),
			want{true, "", 200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "text/plain; charset=utf-8", ""}},
		{"slack url_verification, unsigned", "slack", req("POST", "u", slackBody), sec("ss"), want{true, ErrMissingSignature, 0, "", "", ""}},
		{"slack event is not a handshake", "slack", req("POST", "u", `{"type":"event_callback"}`), sec("ss"), want{}},
		{"asana X-Hook-Secret", "asana", req("POST", "u", "", "X-Hook-Secret", "b537207f20cbfa02357cf448134da559"), nil,
			want{true, "", 200, "", "", "b537207f20cbfa02357cf448134da559"}},
		{"asana event", "asana", req("POST", "u", `{"events":[]}`), nil, want{}},
		{"graph validationToken", "microsoft-graph", req("POST", "https://h.example/g?validationToken=Validation%3A+Testing+client+application+reachability", ""), nil,
			want{true, "", 200, "Validation: Testing client application reachability", "text/plain; charset=utf-8", ""}},
		{"zoom url_validation", "zoom", req("POST", "u", zoomBody, "x-zm-request-timestamp", ts,
			"x-zm-signature", "v0="+hmacHex(h256, "zoom-secret", "v0:"+ts+":"+zoomBody)), sec("zoom-secret"),
			want{true, "", 200, `{"encryptedToken":"` + hmacHex(h256, "zoom-secret", "qgg8vlvZRS6UYooatFL8Aw") + `","plainToken":"qgg8vlvZRS6UYooatFL8Aw"}`, "application/json", ""}},
		{"zoom url_validation with a bad signature", "zoom", req("POST", "u", zoomBody, "x-zm-request-timestamp", ts, "x-zm-signature", "v0=00"), sec("zoom-secret"),
			want{true, ErrBadSignature, 0, "", "", ""}},
		{"dropbox challenge", "dropbox", req("GET", "https://h.example/d?challenge=abc123", ""), nil,
			want{true, "", 200, "abc123", "text/plain; charset=utf-8", ""}},
		{"dropbox POST is an event", "dropbox", req("POST", "https://h.example/d?challenge=abc123", "{}"), nil, want{}},
		{"meta challenge", "meta", req("GET", "https://h.example/m?hub.mode=subscribe&hub.verify_token=vt-1&hub.challenge=1158201444", ""),
			[]Secret{{Value: "app-secret"}, {Value: "vt-1", Use: UseVerifyToken}}, want{true, "", 200, "1158201444", "text/plain; charset=utf-8", ""}},
		{"meta challenge, wrong verify token", "meta", req("GET", "https://h.example/m?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1", ""),
			[]Secret{{Value: "vt-1", Use: UseVerifyToken}}, want{true, ErrBadSignature, 0, "", "", ""}},
		{"meta challenge, app secret is not a verify token", "meta", req("GET", "https://h.example/m?hub.mode=subscribe&hub.verify_token=app-secret&hub.challenge=1", ""),
			[]Secret{{Value: "app-secret"}}, want{true, ErrNoSecret, 0, "", "", ""}},
		{"twitch verification", "twitch", req("POST", "u", twitchBody, "Twitch-Eventsub-Message-Type", "webhook_callback_verification",
			"Twitch-Eventsub-Message-Id", twitchID, "Twitch-Eventsub-Message-Timestamp", twitchTS,
			"Twitch-Eventsub-Message-Signature", "sha256="+hmacHex(h256, "tw", twitchID+twitchTS+twitchBody)), sec("tw"),
			want{true, "", 200, "pogchamp-kappa-360noscope-vohiyo", "text/plain; charset=utf-8", ""}},
		{"twitch verification, unsigned", "twitch", req("POST", "u", twitchBody, "Twitch-Eventsub-Message-Type", "webhook_callback_verification"), sec("tw"),
			want{true, ErrMissingSignature, 0, "", "", ""}},
		{"monday challenge", "monday", req("POST", "u", `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`), nil,
			want{true, "", 200, `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`, "application/json", ""}},
		{"google sync", "google-drive", req("POST", "u", "", "X-Goog-Channel-Token", "ct", "X-Goog-Resource-State", "sync"), sec("ct"), want{true, "", 200, "", "", ""}},
		{"google sync with a wrong token", "google-drive", req("POST", "u", "", "X-Goog-Channel-Token", "no", "X-Goog-Resource-State", "sync"), sec("ct"), want{true, ErrBadSignature, 0, "", "", ""}},
		{"intercom HEAD", "intercom", req("HEAD", "u", ""), nil, want{true, "", 200, "", "", ""}},
		{"discord PING", "discord", discordPing(discordBody, ts), sec(discordPubHex()), want{true, "", 200, `{"type":1}`, "application/json", ""}},
		{"handshake on a source without one", "github", req("POST", "https://h.example/g?validationToken=x&challenge=y", slackBody, "X-Hook-Secret", "s"), sec("k"), want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustNew(t, Spec{Preset: tc.preset}, Options{Now: func() time.Time { return now }})
			resp, handled, err := v.Handshake(tc.r, tc.secrets)
			if handled != tc.want.handled || CodeOf(err) != tc.want.code {
				t.Fatalf("handled=%v err=%v, want handled=%v code=%q", handled, err, tc.want.handled, tc.want.code)
			}
			if err != nil || !handled {
				if resp != nil {
					t.Fatal("response with an error")
				}
				return
			}
			if resp.Status != tc.want.status || string(resp.Body) != tc.want.body || resp.StoreSecret != tc.want.store {
				t.Fatalf("resp = %d %q store=%q", resp.Status, resp.Body, resp.StoreSecret)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.want.ctype {
				t.Errorf("content type %q, want %q", ct, tc.want.ctype)
			}
			if len(resp.Body) > 0 && resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("echo without nosniff")
			}
			if tc.want.store != "" && resp.Header.Get("X-Hook-Secret") != tc.want.store {
				t.Errorf("X-Hook-Secret not echoed")
			}
		})
	}
}

func TestCustomHandshake(t *testing.T) {
	spec := Spec{Header: "X-Sig", Handshake: &HandshakeSpec{Type: HandshakeCustom, Method: "GET", Query: "echo",
		Status: 202, ContentType: "application/json", Body: `{"echo":"{query:echo}","h":"{header:X-Probe}"}`}}
	v := mustNew(t, spec, Options{})
	resp, handled, err := v.Handshake(req("GET", "https://h.example/c?echo=hello", "", "X-Probe", "p"), nil)
	if err != nil || !handled || resp.Status != 202 || string(resp.Body) != `{"echo":"hello","h":"p"}` {
		t.Fatalf("resp=%+v handled=%v err=%v", resp, handled, err)
	}
	var m map[string]string
	if json.Unmarshal(resp.Body, &m) != nil {
		t.Fatal("not JSON")
	}
	if _, handled, _ := v.Handshake(req("POST", "https://h.example/c?echo=hello", ""), nil); handled {
		t.Fatal("method not respected")
	}
	for _, bad := range []HandshakeSpec{{Type: HandshakeCustom}, {Type: HandshakeCustom, Method: "GET", Status: 500}} {
		if _, err := New(Spec{Header: "X", Handshake: &bad}, Options{}); CodeOf(err) != ErrInvalidSpec {
			t.Errorf("%+v: err = %v", bad, err)
		}
	}
}

func TestPackageHandshake(t *testing.T) {
	resp, handled, err := Handshake(Spec{Preset: "dropbox"}, Request{Method: http.MethodGet, URL: "https://h.example/d?challenge=c"}, nil)
	if err != nil || !handled || string(resp.Body) != "c" {
		t.Fatalf("%+v %v %v", resp, handled, err)
	}
	if _, _, err := Handshake(Spec{Preset: "nope"}, Request{}, nil); CodeOf(err) != ErrUnknownScheme {
		t.Fatalf("err = %v", err)
	}
}

// During a rotation Zoom's encryptedToken uses the secret that verified the
// request, even when the secrets carry no IDs.
func TestZoomHandshakeUsesMatchedSecret(t *testing.T) {
	ts := "1700000000"
	body := `{"payload":{"plainToken":"pt"},"event":"endpoint.url_validation"}`
	r := req("POST", "u", body, "x-zm-request-timestamp", ts, "x-zm-signature", "v0="+hmacHex(h256, "new", "v0:"+ts+":"+body))
	v := mustNew(t, Spec{Preset: "zoom"}, at(t0))
	resp, handled, err := v.Handshake(r, []Secret{{Value: "old"}, {Value: "new"}})
	if err != nil || !handled {
		t.Fatal(err)
	}
	if want := `{"encryptedToken":"` + hmacHex(h256, "new", "pt") + `","plainToken":"pt"}`; string(resp.Body) != want {
		t.Fatalf("body %s, want %s", resp.Body, want)
	}
}

func TestTokenGuessesBounded(t *testing.T) {
	v := mustNew(t, Spec{Preset: "gitlab"}, Options{})
	r := req("POST", "u", "")
	for i := 0; i < 100; i++ {
		r.Header.Add("X-Gitlab-Token", itoa(int64(i)))
	}
	if CodeOf(v.Verify(r, sec("42"))) != ErrBadSignature {
		t.Fatal("100 guesses in one request accepted")
	}
}

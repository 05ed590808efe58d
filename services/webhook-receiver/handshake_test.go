package receiver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// TestProviderHandshakes: each provider's endpoint check, through the
// receiver's one route, is answered as the provider expects and stores no
// event; a wrong verify token or signature is refused.
func TestProviderHandshakes(t *testing.T) {
	e := newEnv(t)
	e.secrets("zoom", directory.WebhookSecret{Value: "zoom-secret"})
	e.secrets("twitch", directory.WebhookSecret{Value: "twitch-secret"})
	e.secrets("dropbox", directory.WebhookSecret{Value: "dropbox-app-secret"})
	e.secrets("meta", directory.WebhookSecret{Value: "meta-app-secret"}, directory.WebhookSecret{Value: "vt-1", Use: "verify_token"})
	e.secrets("intercom", directory.WebhookSecret{Value: "intercom-secret"})
	now := time.Now()
	zoomBody := `{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`
	twitchBody := `{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"channel.follow"}}`
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		body   string // "" = not checked
	}{
		{"zoom url_validation", func() *http.Request {
			return e.sign(e.hook("POST", "zoom", "application/json", zoomBody), "zoom", "zoom-secret", now)
		}, 200, `{"encryptedToken":"` + hmacHex("zoom-secret", "qgg8vlvZRS6UYooatFL8Aw") + `","plainToken":"qgg8vlvZRS6UYooatFL8Aw"}`},
		{"zoom url_validation, wrong secret", func() *http.Request {
			return e.sign(e.hook("POST", "zoom", "application/json", zoomBody), "zoom", "other", now)
		}, 401, ""},
		{"twitch callback verification", func() *http.Request {
			r := e.hook("POST", "twitch", "application/json", twitchBody,
				"Twitch-Eventsub-Message-Type", "webhook_callback_verification", "Twitch-Eventsub-Message-Id", "e76c6bd4")
			return e.sign(r, "twitch", "twitch-secret", now)
		}, 200, "pogchamp-kappa-360noscope-vohiyo"},
		{"dropbox challenge (GET)", func() *http.Request { return e.hook("GET", "dropbox?challenge=abc123", "", "") }, 200, "abc123"},
		{"meta challenge (GET)", func() *http.Request {
			return e.hook("GET", "meta?hub.mode=subscribe&hub.verify_token=vt-1&hub.challenge=1158201444", "", "")
		}, 200, "1158201444"},
		{"meta challenge, wrong verify token", func() *http.Request {
			return e.hook("GET", "meta?hub.mode=subscribe&hub.verify_token=meta-app-secret&hub.challenge=1", "", "")
		}, 401, ""},
		{"intercom HEAD check", func() *http.Request { return e.hook("HEAD", "intercom", "", "") }, 200, ""},
		{"GET on a source whose handshake is not a GET", func() *http.Request { return e.hook("GET", "zoom", "", "") }, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.stored())
			r := e.do(tt.req())
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.body != "" && r.body != tt.body {
				t.Fatalf("body %q, want %q", r.body, tt.body)
			}
			if n := len(e.stored()) - before; n != 0 {
				t.Fatalf("a handshake stored %d events", n)
			}
		})
	}
}

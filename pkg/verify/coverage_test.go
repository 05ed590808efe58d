package verify

import "testing"

func TestCoverage(t *testing.T) {
	tests := []struct {
		preset            string
		body, url, method bool
		signed, notSigned string
	}{
		{"github", true, false, false, "", "X-GitHub-Event"},
		{"shopify", true, false, false, "", "X-Shopify-Topic"},
		{"standard-webhooks", true, false, false, "webhook-id", "webhook-type"},
		{"svix", true, false, false, "svix-id", "x-event"},
		{"slack", true, false, false, "X-Slack-Request-Timestamp", "X-Slack-Retry-Num"},
		{"twitch", true, false, false, "Twitch-Eventsub-Message-Id", "Twitch-Eventsub-Subscription-Type"},
		{"hubspot-v3", true, true, true, "X-HubSpot-Request-Timestamp", ""},
		{"twilio", true, true, false, "", "I-Twilio-Idempotency-Token"},
		{"gitlab", false, false, false, "", "X-Gitlab-Event"},
		{"monday", false, false, false, "", "Authorization"},
	}
	for _, tc := range tests {
		t.Run(tc.preset, func(t *testing.T) {
			c := mustNew(t, Spec{Preset: tc.preset}, Options{}).Coverage()
			if c.Body != tc.body || c.URL != tc.url || c.Method != tc.method {
				t.Fatalf("coverage %+v", c)
			}
			if tc.signed != "" && !c.Signs(tc.signed) {
				t.Errorf("%s should be signed", tc.signed)
			}
			if tc.notSigned != "" && c.Signs(tc.notSigned) {
				t.Errorf("%s should not be signed", tc.notSigned)
			}
		})
	}
}

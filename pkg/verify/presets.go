package verify

import (
	"sort"
	"time"
)

// Preset is a built-in verification spec for one provider, with the hints an
// integration manifest needs next to it. The hints are documentation for
// manifest authors (where the tenant, event id and event type live); the
// receiver takes the actual expressions from the manifest.
type Preset struct {
	Name  string
	Title string
	// Doc says what is signed, with which secret, and any trap worth knowing.
	Doc  string
	Spec Spec
	// TenantHint: where the provider account id is (for app-level routing).
	TenantHint string
	// EventIDHint: the dedupe key; "hash" when the provider has none.
	EventIDHint string
	// EventTypeHint: where the event type is.
	EventTypeHint string
}

func dur(d time.Duration) Duration { return Duration(d) }

// standardWebhooks builds the Standard Webhooks spec over the given header
// names (Svix-branded senders use svix-*, falling back to webhook-*).
func standardWebhooks(sig, id, ts, version, scheme string) Spec {
	return Spec{
		Scheme: scheme, Encoding: "base64", Header: sig, Format: "list", SignatureKey: version,
		Content: "{header:" + id + "}.{timestamp}.{body}", SecretEncoding: "whsec",
		Timestamp: &TimestampSpec{Header: ts, Unit: "s", Tolerance: dur(5 * time.Minute)},
	}
}

func svixSpec() Spec {
	return standardWebhooks("svix-signature|webhook-signature", "svix-id|webhook-id", "svix-timestamp|webhook-timestamp", "v1", "hmac")
}

func bodyHMAC(header, alg, enc, prefix string) Spec {
	return Spec{Scheme: "hmac", Algorithm: alg, Encoding: enc, Header: header, Prefix: prefix}
}

// presetTable is built on every call, so no caller can change what another sees.
func presetTable() []Preset {
	svixFamily := func(name, title string) Preset {
		return Preset{Name: name, Title: title,
			Doc:  title + " sends its webhooks through Svix: svix-id, svix-timestamp, svix-signature (v1, HMAC-SHA256 base64 over id.timestamp.body, key = base64 after whsec_); ±5 min.",
			Spec: svixSpec(), EventIDHint: "header svix-id", EventTypeHint: "body type", TenantHint: "per endpoint (use a per-credential URL)"}
	}
	return []Preset{
		{Name: "standard-webhooks", Title: "Standard Webhooks v1",
			Doc:  "webhook-id, webhook-timestamp (Unix s), webhook-signature: space-separated \"v1,<base64>\" entries (several during rotation). HMAC-SHA256 over \"id.timestamp.body\"; the key is the base64 after \"whsec_\". ±5 min. The default for custom webhooks.",
			Spec: standardWebhooks("webhook-signature", "webhook-id", "webhook-timestamp", "v1", "hmac"), TenantHint: "sender-specific (body)", EventIDHint: "header webhook-id", EventTypeHint: "body type"},
		{Name: "standard-webhooks-v1a", Title: "Standard Webhooks v1a (Ed25519)",
			Doc:  "Same headers and content as v1, entries \"v1a,<base64 Ed25519 signature>\". Secrets are the sender's public keys (whpk_… or base64); never taken from the request. ±5 min.",
			Spec: standardWebhooks("webhook-signature", "webhook-id", "webhook-timestamp", "v1a", "ed25519"), TenantHint: "sender-specific (body)", EventIDHint: "header webhook-id", EventTypeHint: "body type"},
		{Name: "svix", Title: "Svix", Doc: "Standard Webhooks with svix-id, svix-timestamp, svix-signature (falls back to webhook-* like the Svix libraries). v1 HMAC-SHA256, whsec_ secret, ±5 min.",
			Spec: svixSpec(), TenantHint: "per endpoint", EventIDHint: "header svix-id", EventTypeHint: "body type"},
		svixFamily("clerk", "Clerk"),
		svixFamily("resend", "Resend"),
		svixFamily("replicate", "Replicate"),
		svixFamily("stytch", "Stytch"),
		svixFamily("brex", "Brex"),
		{Name: "stripe", Title: "Stripe",
			Doc: "Stripe-Signature: t=<unix s>,v1=<hex>[,v1=…] (several v1 while a secret is rolled; v0 ignored). HMAC-SHA256 over \"t.body\" keyed with the whsec_… string as is (not decoded). ±5 min (stripe-go only checks the past; we check both).",
			Spec: Spec{Scheme: "hmac", Header: "Stripe-Signature", Format: "kv", TimestampKey: "t", SignatureKey: "v1", Content: "{timestamp}.{body}",
				Timestamp: &TimestampSpec{Unit: "s", Tolerance: dur(5 * time.Minute)}},
			TenantHint: "body account (Connect; also check livemode)", EventIDHint: "body id", EventTypeHint: "body type"},
		{Name: "github", Title: "GitHub", Doc: "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body> (JSON or form payload=). No timestamp: dedupe on X-GitHub-Delivery is the only replay defence.",
			Spec: bodyHMAC("X-Hub-Signature-256", "sha256", "hex", "sha256="), TenantHint: "body installation.id (App) or repository/organization", EventIDHint: "header X-GitHub-Delivery", EventTypeHint: "header X-GitHub-Event + body action"},
		{Name: "github-sha1", Title: "GitHub (legacy SHA-1)", Doc: "X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>; only for senders that lack X-Hub-Signature-256.",
			Spec: bodyHMAC("X-Hub-Signature", "sha1", "hex", "sha1="), TenantHint: "as github", EventIDHint: "header X-GitHub-Delivery", EventTypeHint: "header X-GitHub-Event"},
		{Name: "slack", Title: "Slack", Doc: "X-Slack-Signature: v0=<hex HMAC-SHA256 of \"v0:ts:body\"> with the app's signing secret; X-Slack-Request-Timestamp (s), ±5 min. url_verification is signed too and answered after verifying. Ack within 3 s.",
			Spec: Spec{Scheme: "hmac", Header: "X-Slack-Signature", Prefix: "v0=", Content: "v0:{timestamp}:{body}",
				Timestamp: &TimestampSpec{Header: "X-Slack-Request-Timestamp", Unit: "s", Tolerance: dur(5 * time.Minute)},
				Handshake: &HandshakeSpec{Type: HandshakeSlack}},
			TenantHint: "body team_id (enterprise_id, authorizations[])", EventIDHint: "body event_id", EventTypeHint: "body event.type (outer type event_callback)"},
		{Name: "shopify", Title: "Shopify", Doc: "X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body with the app's client secret. Shop domain and topic headers are unsigned: hints only. No timestamp.",
			Spec: bodyHMAC("X-Shopify-Hmac-Sha256", "sha256", "base64", ""), TenantHint: "header X-Shopify-Shop-Domain (unsigned; cross-check the body)", EventIDHint: "header X-Shopify-Webhook-Id", EventTypeHint: "header X-Shopify-Topic (unsigned)"},
		{Name: "hubspot-v1", Title: "HubSpot signature v1", Doc: "X-HubSpot-Signature (X-HubSpot-Signature-Version: v1): hex SHA-256 (a plain hash, not HMAC) of client secret + body. No timestamp.",
			Spec: Spec{Scheme: "hash", Header: "X-HubSpot-Signature", Content: "{secret}{body}"}, TenantHint: "body [].portalId (batched array)", EventIDHint: "body [].eventId", EventTypeHint: "body [].subscriptionType"},
		{Name: "hubspot-v2", Title: "HubSpot signature v2", Doc: "X-HubSpot-Signature (version v2): hex SHA-256 of client secret + method + URL + body. The URL must be the one HubSpot called.",
			Spec: Spec{Scheme: "hash", Header: "X-HubSpot-Signature", Content: "{secret}{method}{url}{body}"}, TenantHint: "body portalId", EventIDHint: "body eventId", EventTypeHint: "body subscriptionType"},
		{Name: "hubspot-v3", Title: "HubSpot signature v3", Doc: "X-HubSpot-Signature-v3: base64 HMAC-SHA256 of method + URI (HubSpot's selected %XX decoded) + body + X-HubSpot-Request-Timestamp (ms); reject older than 5 min (we also refuse 5 min ahead).",
			Spec: Spec{Scheme: "hmac", Encoding: "base64", Header: "X-HubSpot-Signature-v3", Content: "{method}{url_hubspot}{body}{timestamp}",
				Timestamp: &TimestampSpec{Header: "X-HubSpot-Request-Timestamp", Unit: "ms", Tolerance: dur(5 * time.Minute)}},
			TenantHint: "body [].portalId", EventIDHint: "body [].eventId", EventTypeHint: "body [].subscriptionType"},
		{Name: "twilio", Title: "Twilio", Doc: "X-Twilio-Signature: base64 HMAC-SHA1 of the full URL + each POST parameter name+value sorted by name, with the account auth token. JSON bodies: the URL carries bodySHA256=<hex sha256(body)>, checked too. URL tried with and without the default port, like twilio-go. No timestamp.",
			Spec:       Spec{Scheme: "hmac", Algorithm: "sha1", Encoding: "base64", Header: "X-Twilio-Signature", Content: "{url}{form}", URLPortVariants: true, BodyHashParam: "bodySHA256"},
			TenantHint: "param AccountSid", EventIDHint: "header I-Twilio-Idempotency-Token", EventTypeHint: "depends on the configured URL (status params)"},
		{Name: "zendesk", Title: "Zendesk", Doc: "X-Zendesk-Webhook-Signature: base64 HMAC-SHA256 of X-Zendesk-Webhook-Signature-Timestamp + body (no separator), per-webhook secret. Tolerance not documented: 5 min here; the timestamp may be Unix seconds or RFC 3339.",
			Spec: Spec{Scheme: "hmac", Encoding: "base64", Header: "X-Zendesk-Webhook-Signature", Content: "{timestamp}{body}",
				Timestamp: &TimestampSpec{Header: "X-Zendesk-Webhook-Signature-Timestamp", Unit: "auto", Tolerance: dur(5 * time.Minute)}},
			TenantHint: "header X-Zendesk-Account-Id (unsigned) / body account_id", EventIDHint: "header X-Zendesk-Webhook-Invocation-Id", EventTypeHint: "body type (zen:event-type:…)"},
		{Name: "intercom", Title: "Intercom", Doc: "X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body> with the app's client secret. Intercom probes the URL with HEAD when saved (answered 200). No timestamp.",
			Spec:       Spec{Scheme: "hmac", Algorithm: "sha1", Header: "X-Hub-Signature", Prefix: "sha1=", Handshake: &HandshakeSpec{Type: HandshakeHeadOK}},
			TenantHint: "body app_id", EventIDHint: "body id (notif_…)", EventTypeHint: "body topic"},
		{Name: "linear", Title: "Linear", Doc: "Linear-Signature: hex HMAC-SHA256 of the body; the body's webhookTimestamp (ms) must be within 60 s (as @linear/sdk).",
			Spec:       Spec{Scheme: "hmac", Header: "Linear-Signature", Timestamp: &TimestampSpec{Field: "webhookTimestamp", Unit: "ms", Tolerance: dur(time.Minute)}},
			TenantHint: "body organizationId", EventIDHint: "header Linear-Delivery", EventTypeHint: "body type + action (header Linear-Event)"},
		{Name: "asana", Title: "Asana", Doc: "X-Hook-Signature: hex HMAC-SHA256 of the body keyed with the X-Hook-Secret Asana sent in the handshake (stored on the credential). No timestamp; at-most-once delivery.",
			Spec:       Spec{Scheme: "hmac", Header: "X-Hook-Signature", Handshake: &HandshakeSpec{Type: HandshakeAsana}},
			TenantHint: "none in payload: route by the per-credential URL", EventIDHint: "hash", EventTypeHint: "body events[].action + resource.resource_type"},
		{Name: "zoom", Title: "Zoom", Doc: "x-zm-signature: v0=<hex HMAC-SHA256 of \"v0:ts:body\"> with the app's secret token; x-zm-request-timestamp (s). Tolerance not documented: 5 min. endpoint.url_validation answered with {plainToken, encryptedToken} (re-validated every 72 h).",
			Spec: Spec{Scheme: "hmac", Header: "x-zm-signature", Prefix: "v0=", Content: "v0:{timestamp}:{body}",
				Timestamp: &TimestampSpec{Header: "x-zm-request-timestamp", Unit: "s", Tolerance: dur(5 * time.Minute)},
				Handshake: &HandshakeSpec{Type: HandshakeZoom}},
			TenantHint: "body payload.account_id", EventIDHint: "hash (event_ts + body)", EventTypeHint: "body event"},
		{Name: "dropbox", Title: "Dropbox", Doc: "X-Dropbox-Signature: hex HMAC-SHA256 of the body with the app secret. GET ?challenge= is echoed as text/plain. Notifications are thin and list many accounts: split per account.",
			Spec:       Spec{Scheme: "hmac", Header: "X-Dropbox-Signature", Handshake: &HandshakeSpec{Type: HandshakeDropbox}},
			TenantHint: "body list_folder.accounts[] (fan out)", EventIDHint: "hash", EventTypeHint: "none (something changed)"},
		{Name: "jira", Title: "Jira / Atlassian admin webhooks", Doc: "X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body> (WebSub style), only for admin-registered webhooks with a secret. OAuth apps: see jira-oauth.",
			Spec: bodyHMAC("X-Hub-Signature", "sha256", "hex", "sha256="), TenantHint: "per webhook (per-credential URL)", EventIDHint: "header X-Atlassian-Webhook-Identifier", EventTypeHint: "body webhookEvent"},
		{Name: "jira-oauth", Title: "Jira OAuth 2.0 dynamic webhooks", Doc: "Authorization: Bearer <JWT HS256 signed with the app's client secret>; exp enforced (1 min leeway).",
			Spec: Spec{Scheme: "jwt", Header: "Authorization"}, TenantHint: "site / JWT claims", EventIDHint: "header X-Atlassian-Webhook-Identifier", EventTypeHint: "body webhookEvent"},
		{Name: "calendly", Title: "Calendly", Doc: "Calendly-Webhook-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of \"t.body\"> with the subscription's signing key. 3 min tolerance, as Calendly suggests.",
			Spec: Spec{Scheme: "hmac", Header: "Calendly-Webhook-Signature", Format: "kv", TimestampKey: "t", SignatureKey: "v1", Content: "{timestamp}.{body}",
				Timestamp: &TimestampSpec{Unit: "s", Tolerance: dur(3 * time.Minute)}},
			TenantHint: "body created_by / payload URIs (organization)", EventIDHint: "hash", EventTypeHint: "body event"},
		{Name: "docusign", Title: "DocuSign Connect", Doc: "X-DocuSign-Signature-1 … -N: base64 HMAC-SHA256 of the body, one header per active Connect key (rotation); any one matching is enough. No timestamp.",
			Spec: bodyHMAC("X-DocuSign-Signature-*", "sha256", "base64", ""), TenantHint: "body data.accountId", EventIDHint: "hash (envelopeId + generatedDateTime)", EventTypeHint: "body event"},
		{Name: "microsoft-graph", Title: "Microsoft Graph change notifications", Doc: "Unsigned: every notification in value[] must carry the subscription's clientState (≤255 chars), compared in constant time. POST ?validationToken= is echoed as text/plain within 10 s. Rich notifications' validationTokens (JWTs) are not checked here.",
			Spec:       Spec{Scheme: "token", Field: "value.*.clientState", Handshake: &HandshakeSpec{Type: HandshakeGraph}},
			TenantHint: "body value[].tenantId / subscriptionId", EventIDHint: "hash", EventTypeHint: "body value[].changeType / lifecycleEvent"},
		{Name: "google-drive", Title: "Google Drive push channel", Doc: "X-Goog-Channel-Token: the opaque token we set on watch, compared in constant time. The first message (X-Goog-Resource-State: sync) is acknowledged and starts nothing. No body.",
			Spec:       Spec{Scheme: "token", Header: "X-Goog-Channel-Token", Handshake: &HandshakeSpec{Type: HandshakeGoogle}},
			TenantHint: "header X-Goog-Channel-ID (ours)", EventIDHint: "channel id + header X-Goog-Message-Number", EventTypeHint: "header X-Goog-Resource-State"},
		{Name: "google-calendar", Title: "Google Calendar push channel", Doc: "Same channel mechanism as Drive: X-Goog-Channel-Token compared in constant time; sync message acknowledged.",
			Spec:       Spec{Scheme: "token", Header: "X-Goog-Channel-Token", Handshake: &HandshakeSpec{Type: HandshakeGoogle}},
			TenantHint: "header X-Goog-Channel-ID (ours)", EventIDHint: "channel id + header X-Goog-Message-Number", EventTypeHint: "header X-Goog-Resource-State"},
		{Name: "mailchimp-transactional", Title: "Mailchimp Transactional (Mandrill)", Doc: "X-Mandrill-Signature: base64 HMAC-SHA1 of the webhook URL + each POST parameter name+value sorted by name, with the webhook key. (Mailchimp Marketing webhooks are not signed: use a per-credential URL.)",
			Spec:       Spec{Scheme: "hmac", Algorithm: "sha1", Encoding: "base64", Header: "X-Mandrill-Signature", Content: "{url}{form}"},
			TenantHint: "per webhook (URL)", EventIDHint: "body mandrill_events[]._id", EventTypeHint: "body mandrill_events[].event"},
		{Name: "monday", Title: "monday.com", Doc: "Authorization: JWT (HS256) signed with the app's signing secret; exp enforced. The registration challenge {\"challenge\":…} is echoed as JSON.",
			Spec:       Spec{Scheme: "jwt", Header: "Authorization", Handshake: &HandshakeSpec{Type: HandshakeMonday}},
			TenantHint: "JWT accountId / body event", EventIDHint: "body event.triggerUuid", EventTypeHint: "body event.type"},
		{Name: "clickup", Title: "ClickUp", Doc: "X-Signature: hex HMAC-SHA256 of the body with the webhook's secret. No timestamp.",
			Spec: bodyHMAC("X-Signature", "sha256", "hex", ""), TenantHint: "body webhook_id (per webhook)", EventIDHint: "hash", EventTypeHint: "body event"},
		{Name: "typeform", Title: "Typeform", Doc: "Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body> with the webhook's secret. No timestamp.",
			Spec: bodyHMAC("Typeform-Signature", "sha256", "base64", "sha256="), TenantHint: "body form_response.form_id (per webhook)", EventIDHint: "body event_id", EventTypeHint: "body event_type"},
		{Name: "paddle", Title: "Paddle Billing", Doc: "Paddle-Signature: ts=<unix s>;h1=<hex HMAC-SHA256 of \"ts:body\"> (several h1 during rotation), per notification destination. 5 s tolerance, as Paddle's SDKs (override with timestamp.tolerance).",
			Spec: Spec{Scheme: "hmac", Header: "Paddle-Signature", Format: "kv", Separator: ";", TimestampKey: "ts", SignatureKey: "h1", Content: "{timestamp}:{body}",
				Timestamp: &TimestampSpec{Unit: "s", Tolerance: dur(5 * time.Second)}},
			TenantHint: "per destination", EventIDHint: "body event_id", EventTypeHint: "body event_type"},
		{Name: "square", Title: "Square", Doc: "x-square-hmacsha256-signature: base64 HMAC-SHA256 of the notification URL + body with the subscription's signature key. The URL must match the subscription byte for byte.",
			Spec:       Spec{Scheme: "hmac", Encoding: "base64", Header: "x-square-hmacsha256-signature", Content: "{url}{body}"},
			TenantHint: "body merchant_id", EventIDHint: "body event_id", EventTypeHint: "body type"},
		{Name: "sendgrid", Title: "SendGrid Event Webhook (signed)", Doc: "X-Twilio-Email-Event-Webhook-Signature: base64 ECDSA P-256/SHA-256 (ASN.1) over X-Twilio-Email-Event-Webhook-Timestamp + body; the secret is the base64 DER public key from Mail Settings. Tolerance not documented: 5 min. Body is a batch (JSON array).",
			Spec: Spec{Scheme: "ecdsa", Encoding: "base64", Header: "X-Twilio-Email-Event-Webhook-Signature", Content: "{timestamp}{body}",
				Timestamp: &TimestampSpec{Header: "X-Twilio-Email-Event-Webhook-Timestamp", Unit: "s", Tolerance: dur(5 * time.Minute)}},
			TenantHint: "per account (URL)", EventIDHint: "body [].sg_event_id", EventTypeHint: "body [].event"},
		{Name: "twitch", Title: "Twitch EventSub", Doc: "Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256 of message id + timestamp + body>; Twitch-Eventsub-Message-Timestamp (RFC 3339) within 10 min, as Twitch requires. webhook_callback_verification answered with the challenge (text/plain) after verifying.",
			Spec: Spec{Scheme: "hmac", Header: "Twitch-Eventsub-Message-Signature", Prefix: "sha256=", Content: "{header:Twitch-Eventsub-Message-Id}{timestamp}{body}",
				Timestamp: &TimestampSpec{Header: "Twitch-Eventsub-Message-Timestamp", Unit: "rfc3339", Tolerance: dur(10 * time.Minute)},
				Handshake: &HandshakeSpec{Type: HandshakeTwitch}},
			TenantHint: "body subscription.condition.broadcaster_user_id", EventIDHint: "header Twitch-Eventsub-Message-Id", EventTypeHint: "body subscription.type"},
		{Name: "meta", Title: "Meta (Facebook, Instagram, WhatsApp)", Doc: "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body> with the App Secret. GET hub.mode=subscribe&hub.verify_token=…&hub.challenge=… is echoed when the verify token (a secret with use: verify_token) matches.",
			Spec:       Spec{Scheme: "hmac", Header: "X-Hub-Signature-256", Prefix: "sha256=", Handshake: &HandshakeSpec{Type: HandshakeMeta}},
			TenantHint: "body entry[].id", EventIDHint: "hash", EventTypeHint: "body object + entry[].changes[].field"},
		{Name: "gitlab", Title: "GitLab", Doc: "X-Gitlab-Token: the webhook's secret token, compared in constant time (GitLab does not sign the body).",
			Spec: Spec{Scheme: "token", Header: "X-Gitlab-Token"}, TenantHint: "body project.id (per webhook)", EventIDHint: "header X-Gitlab-Event-UUID", EventTypeHint: "header X-Gitlab-Event / body object_kind"},
		{Name: "discord", Title: "Discord interactions", Doc: "X-Signature-Ed25519: hex Ed25519 signature of X-Signature-Timestamp + body; the secret is the application's hex public key. Tolerance not documented: 5 min. PING (type 1) answered {\"type\":1} after verifying.",
			Spec: Spec{Scheme: "ed25519", Header: "X-Signature-Ed25519", Content: "{timestamp}{body}",
				Timestamp: &TimestampSpec{Header: "X-Signature-Timestamp", Unit: "s", Tolerance: dur(5 * time.Minute)},
				Handshake: &HandshakeSpec{Type: HandshakeCustom, Method: "POST", Field: "type", FieldValue: "1", Verify: true, ContentType: "application/json", Body: `{"type":1}`}},
			TenantHint: "body guild_id / application_id", EventIDHint: "body id", EventTypeHint: "body type / data.name"},
		{Name: "mailgun", Title: "Mailgun", Doc: "Signature inside the JSON body: signature.signature = hex HMAC-SHA256 of signature.timestamp + signature.token with the webhook signing key. 5 min tolerance; cache the token to refuse replays.",
			Spec: Spec{Scheme: "hmac", Field: "signature.signature", Content: "{field:signature.timestamp}{field:signature.token}",
				Timestamp: &TimestampSpec{Field: "signature.timestamp", Unit: "s", Tolerance: dur(5 * time.Minute)}},
			TenantHint: "per domain (URL)", EventIDHint: "body event-data.id (or signature.token)", EventTypeHint: "body event-data.event"},
		{Name: "razorpay", Title: "Razorpay", Doc: "X-Razorpay-Signature: hex HMAC-SHA256 of the body with the webhook secret (not the API key secret). No timestamp.",
			Spec: bodyHMAC("X-Razorpay-Signature", "sha256", "hex", ""), TenantHint: "body account_id", EventIDHint: "header X-Razorpay-Event-Id", EventTypeHint: "body event"},
		{Name: "xero", Title: "Xero", Doc: "x-xero-signature: base64 HMAC-SHA256 of the body with the webhook key. Intent to Receive is just verification: 200 when valid, 401 when not. No timestamp.",
			Spec: bodyHMAC("x-xero-signature", "sha256", "base64", ""), TenantHint: "body events[].tenantId", EventIDHint: "hash (events[].resourceId + eventDateUtc)", EventTypeHint: "body events[].eventCategory + eventType"},
		{Name: "vercel", Title: "Vercel", Doc: "x-vercel-signature: hex HMAC-SHA1 of the body with the webhook secret (integrations: the client secret). No timestamp.",
			Spec: bodyHMAC("x-vercel-signature", "sha1", "hex", ""), TenantHint: "body payload.team.id", EventIDHint: "body id", EventTypeHint: "body type"},
		{Name: "sentry", Title: "Sentry integration platform", Doc: "Sentry-Hook-Signature: hex HMAC-SHA256 of the body with the integration's client secret. Sentry-Hook-Timestamp is sent but not signed, so not checked.",
			Spec: bodyHMAC("Sentry-Hook-Signature", "sha256", "hex", ""), TenantHint: "body installation.uuid", EventIDHint: "header Request-ID", EventTypeHint: "header Sentry-Hook-Resource + body action"},
		{Name: "woocommerce", Title: "WooCommerce", Doc: "X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body with the webhook secret. No timestamp.",
			Spec: bodyHMAC("X-WC-Webhook-Signature", "sha256", "base64", ""), TenantHint: "header X-WC-Webhook-Source (unsigned; per-credential URL)", EventIDHint: "header X-WC-Webhook-Delivery-ID", EventTypeHint: "header X-WC-Webhook-Topic"},
		{Name: "pipedrive", Title: "Pipedrive", Doc: "No HMAC: HTTP Basic credentials set when the webhook was created (secret value \"user:password\"), compared in constant time.",
			Spec: Spec{Scheme: "basic"}, TenantHint: "body meta.company_id", EventIDHint: "body meta.id", EventTypeHint: "body meta.action + meta.entity"},
		{Name: "basic", Title: "HTTP Basic", Doc: "Authorization: Basic; the secret is \"user:password\". A weak fallback for senders that can do nothing else.",
			Spec: Spec{Scheme: "basic"}, TenantHint: "per-credential URL", EventIDHint: "hash", EventTypeHint: "manifest-defined"},
		{Name: "bearer", Title: "Bearer token", Doc: "Authorization: Bearer <secret>, compared in constant time. A weak fallback.",
			Spec: Spec{Scheme: "bearer"}, TenantHint: "per-credential URL", EventIDHint: "hash", EventTypeHint: "manifest-defined"},
	}
}

// Presets returns the built-in presets sorted by name; a fresh slice each call.
func Presets() []Preset {
	t := presetTable()
	sort.Slice(t, func(i, j int) bool { return t[i].Name < t[j].Name })
	return t
}

// LookupPreset finds a preset by name.
func LookupPreset(name string) (Preset, bool) {
	for _, p := range presetTable() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

package app

import (
	"os"

	"github.com/switchboard-hq/switchboard/pkg/service"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

// RoleWebhookReceiver is the webhook receiver's role name.
const RoleWebhookReceiver = receiver.Name

// EnvPublicURL is the base URL providers call the webhook routes at
// (e.g. https://hooks.example.com). Schemes that sign the URL (Twilio,
// Square, HubSpot v2/v3) are verified against it, never against the Host
// or X-Forwarded-* headers a client sends; unset, the request's own URL is
// used (no proxy in front).
const EnvPublicURL = "SWITCHBOARD_PUBLIC_URL"

func buildWebhookReceiver(d *Deps, o *Options) (service.Role, error) {
	return receiver.New(receiver.Options{
		Catalog: d.Catalog, Directory: d.Directory, Access: d.Access, Triggers: d.Triggers, JS: d.JS, Logger: d.Logger,
		MaxBody: o.MaxBody, PublicBaseURL: os.Getenv(EnvPublicURL),
	})
}

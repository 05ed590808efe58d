package manifest

import (
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// Levels of an API Resource's credentials (the mirrored product's
// "User-Level" and "App-Level" resources).
const (
	// LevelUser: every connected user connects the resource with their own
	// credential (POST /projects/{p}/sdk/resources/{r}/connect). The default.
	LevelUser = "user"
	// LevelApp: one credential set, stored for the whole project with the
	// API key (PUT /v1/projects/{p}/resources/{r}/credential), is used for
	// every user; users connect nothing.
	LevelApp = "app"
)

// ResourceSpec holds the manifest fields only an API Resource
// (`resource: true`) may set. Embedded in Manifest, so its fields sit at
// the manifest's top level.
type ResourceSpec struct {
	// Level is LevelUser (default) or LevelApp.
	Level string `json:"level,omitempty" yaml:"level,omitempty"`
}

// AppLevel reports whether m is an API Resource whose one app-level
// credential serves every user.
func (m *Manifest) AppLevel() bool { return m.Resource && m.Level == LevelApp }

// ResourceRouting holds the webhook fields only an API Resource may set.
// Embedded in Webhook, so its fields sit in the `webhook:` section.
type ResourceRouting struct {
	// UserID names the connected user an item is for, from the verified
	// delivery (e.g. body.data.userId): the app-level URL routes the item
	// to that user — for an app-level resource the user needs no
	// credential; for a user-level one, to the user's credentials of the
	// resource. Like accountId it may read only what the signature covers.
	UserID string `json:"userId,omitempty" yaml:"userId,omitempty"`

	userID *template.Expr
}

// compileResource checks the resource-only fields: a level other than
// user or app, either field on a manifest that is not a resource, and a
// userId read from an unsigned header or query (the rule accountId
// follows: the tenant never comes from what the signature leaves out).
// It runs after the webhook's own compile, whose verifier it reads.
func compileResource(m *Manifest, p *Problems) {
	switch m.Level {
	case "", LevelUser, LevelApp:
	default:
		p.add("level", "must be %q or %q", LevelUser, LevelApp)
	}
	if m.Level != "" && !m.Resource {
		p.add("level", "only an API Resource (resource: true) has a credential level")
	}
	w := m.Webhook
	if w == nil {
		return
	}
	w.userID = nil
	src := strings.TrimSpace(w.UserID)
	switch {
	case src == "":
		if m.AppLevel() {
			// Nobody connects an app-level resource, so no credential
			// carries an account id to route by: the user must come from
			// the delivery, or no event could ever run.
			p.add("webhook.userId", "is required for an app-level resource (level: app): its deliveries are routed to the user they name")
		}
		return
	case !m.Resource:
		p.add("webhook.userId", "only an API Resource (resource: true) routes deliveries by user id; an integration routes by accountId")
		return
	}
	e, err := template.CompileExprEnv(src, VarBody, VarHeaders, VarQuery, VarItem)
	if err != nil {
		p.add("webhook.userId", "%v", err)
		return
	}
	if v := w.c.verifier; v != nil {
		if msg := signedBy(v).check(src); msg != "" {
			p.add("webhook.userId", "%s", msg)
			return
		}
	}
	w.userID = e
}

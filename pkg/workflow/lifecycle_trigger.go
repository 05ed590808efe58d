package workflow

import (
	"slices"
	"strings"
)

// Connection lifecycle trigger types: a change of a connected user's
// credential, derived by the connection-lifecycle role from the stored
// directory record (not from the HTTP call that made it), run for that
// user and credential.
const (
	// TriggerIntegrationEnabled: a credential of the integration is
	// connected and VALID and every required setting of the integration's
	// manifest is filled in. Fires once per connection; again after the
	// credential was removed or went INVALID and came back.
	TriggerIntegrationEnabled = "integration_enabled"
	// TriggerLifecycle: one of the other LifecycleEvents.
	TriggerLifecycle = "lifecycle"
)

// Lifecycle event names: the trigger event's name and, for
// `trigger: {type: lifecycle}`, its `event`.
const (
	EventIntegrationEnabled  = "integration.enabled"
	EventIntegrationDisabled = "integration.disabled"
	EventCredentialInvalid   = "credential.invalid"
	EventCredentialRefreshed = "credential.refreshed"
	EventSettingsUpdated     = "settings.updated"
)

// LifecycleEvents are the events a lifecycle trigger may name.
// integration.enabled has its own type (integration_enabled).
var lifecycleEvents = []string{EventIntegrationDisabled, EventCredentialInvalid, EventCredentialRefreshed, EventSettingsUpdated}

// LifecycleEvents lists the events a `type: lifecycle` trigger may name.
func LifecycleEvents() []string { return slices.Clone(lifecycleEvents) }

var (
	integrationEnabledFields = []string{"integration"}
	lifecycleFields          = []string{"event", "integration"}
)

// compileIntegrationEnabledTrigger checks `trigger: {type:
// integration_enabled, integration}`.
func compileIntegrationEnabledTrigger(t *Trigger, p *Problems) {
	checkLifecycleIntegration(t, p)
}

// compileLifecycleTrigger checks `trigger: {type: lifecycle, event,
// integration}`.
func compileLifecycleTrigger(t *Trigger, p *Problems) {
	checkLifecycleIntegration(t, p)
	switch {
	case t.Event == "":
		p.add("trigger.event", "is required for a lifecycle trigger (one of %s)", strings.Join(lifecycleEvents, ", "))
	case t.Event == EventIntegrationEnabled:
		p.add("trigger.event", "%s has its own trigger type: {type: %s, integration: …}", EventIntegrationEnabled, TriggerIntegrationEnabled)
	case !slices.Contains(lifecycleEvents, t.Event):
		p.add("trigger.event", "unknown lifecycle event %q (one of %s)", t.Event, strings.Join(lifecycleEvents, ", "))
	}
}

// checkLifecycleIntegration: a lifecycle trigger is about one integration's
// credentials, so it must name the integration (which becomes the
// workflow's, see Compile).
func checkLifecycleIntegration(t *Trigger, p *Problems) {
	switch {
	case t.Integration == "":
		p.add("trigger.integration", "is required for a %s trigger", t.Type)
	case !ValidID(t.Integration):
		p.add("trigger.integration", "must match [a-z0-9][a-z0-9_-]*")
	}
}

// takesIntegration reports whether the trigger type names the workflow's
// integration in `trigger.integration`.
func takesIntegration(typ string) bool {
	switch typ {
	case TriggerIntegration, TriggerIntegrationEnabled, TriggerLifecycle:
		return true
	}
	return false
}

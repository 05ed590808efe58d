package trigger

import (
	"fmt"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// KindToken returns the subject token of kind k (subjects.Kind*), and false
// for KIND_UNSPECIFIED or a value this build does not know.
func KindToken(k sbv1.Kind) (string, bool) {
	switch k {
	case sbv1.Kind_APP_EVENT:
		return subjects.KindAppEvent, true
	case sbv1.Kind_REQUEST:
		return subjects.KindRequest, true
	case sbv1.Kind_INTEGRATION:
		return subjects.KindIntegration, true
	case sbv1.Kind_INTEGRATION_ENABLED:
		return subjects.KindIntegrationEnabled, true
	case sbv1.Kind_SCHEDULE:
		return subjects.KindSchedule, true
	case sbv1.Kind_API_RESOURCE:
		return subjects.KindAPIResource, true
	case sbv1.Kind_LIFECYCLE:
		return subjects.KindLifecycle, true
	}
	return "", false
}

// SubjectKey returns the last token's source value of ev's subject: what
// spreads a kind's load and lets a consumer filter without decoding.
//
//   - APP_EVENT, INTEGRATION_ENABLED, LIFECYCLE: the connected user.
//   - REQUEST: the target workflow.
//   - INTEGRATION, API_RESOURCE: the integration the provider event came
//     from (the user is not known before the router resolves the account).
//   - SCHEDULE: the ticking workflow (ev.Workflow, else the tick's).
func SubjectKey(ev *sbv1.TriggerEvent) string {
	switch ev.GetKind() {
	case sbv1.Kind_REQUEST:
		return ev.GetWorkflow()
	case sbv1.Kind_INTEGRATION, sbv1.Kind_API_RESOURCE:
		return ev.GetIntegration()
	case sbv1.Kind_SCHEDULE:
		if w := ev.GetWorkflow(); w != "" {
			return w
		}
		return ev.GetSchedule().GetWorkflow()
	}
	return ev.GetUser()
}

// Subject returns the subject ev is published on:
// sb.trigger.<project>.<kind token>.<key>, key as SubjectKey says, escaped
// with subjects.Token. It fails (matching wire.ErrInvalid) for an event
// without a known kind, a project that is not a plain subject token, or a
// project or key longer than wire.MaxIDLen: ids are bounded so that no
// subject can approach the server's control-line limit, which closes the
// connection.
func Subject(ev *sbv1.TriggerEvent) (string, error) {
	if ev == nil {
		return "", fmt.Errorf("%w: nil trigger event", wire.ErrInvalid)
	}
	kind, ok := KindToken(ev.GetKind())
	if !ok {
		return "", fmt.Errorf("%w: trigger event %s has no known kind (%v)", wire.ErrInvalid, ev.GetId(), ev.GetKind())
	}
	p := ev.GetProject()
	if p == "" || subjects.Token(p) != p || len(p) > wire.MaxIDLen {
		return "", fmt.Errorf("%w: trigger event %s: project %q is not a plain subject token of at most %d bytes",
			wire.ErrInvalid, ev.GetId(), wire.Prefix(p, 64), wire.MaxIDLen)
	}
	key := SubjectKey(ev)
	if len(key) > wire.MaxIDLen {
		return "", fmt.Errorf("%w: trigger event %s: subject key is %d bytes, over %d", wire.ErrInvalid, ev.GetId(), len(key), wire.MaxIDLen)
	}
	return subjects.Trigger(p, kind, key), nil
}

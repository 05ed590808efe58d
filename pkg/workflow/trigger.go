package workflow

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// triggerSpec is everything one trigger type adds to the shared Trigger
// document: which of its fields the type owns, how they are checked and
// compiled, and what the type allows elsewhere in the workflow. Every type
// has exactly one entry in triggerSpecs; adding a trigger kind means adding
// a spec (and its decider in the router), not a case in several switches.
type triggerSpec struct {
	// fields are the trigger fields (JSON names) this type may set.
	fields []string
	// compile checks and normalizes the type's own fields.
	compile func(t *Trigger, p *Problems)
	// responds tells whether the workflow may have a response step (a
	// caller waits for it).
	responds bool
}

// triggerSpecs is the one list of trigger types (read-only after init).
var triggerSpecs = map[string]triggerSpec{
	TriggerAppEvent:           {fields: []string{"event"}, compile: compileAppEventTrigger},
	TriggerRequest:            {fields: []string{"methods", "timeout", "validation"}, compile: compileRequestTrigger, responds: true},
	TriggerSchedule:           {fields: scheduleFields, compile: compileScheduleTrigger},
	TriggerIntegration:        {fields: integrationFields, compile: compileIntegrationTrigger},
	TriggerIntegrationEnabled: {fields: integrationEnabledFields, compile: compileIntegrationEnabledTrigger},
	TriggerLifecycle:          {fields: lifecycleFields, compile: compileLifecycleTrigger},
}

// TriggerTypes lists the supported trigger types, sorted.
func TriggerTypes() []string {
	out := make([]string, 0, len(triggerSpecs))
	for k := range triggerSpecs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (t *Trigger) spec() triggerSpec { return triggerSpecs[t.Type] }

// setFields lists the JSON names of the type-specific fields that are set.
func (t *Trigger) setFields() []string {
	var out []string
	if t.Event != "" {
		out = append(out, "event")
	}
	if len(t.Methods) > 0 {
		out = append(out, "methods")
	}
	if t.Timeout != 0 {
		out = append(out, "timeout")
	}
	if t.Validation != nil {
		out = append(out, "validation")
	}
	out = append(out, t.setScheduleFields()...)
	out = append(out, t.setIntegrationFields()...)
	return out
}

// compile validates the trigger with its type's spec; a field that belongs
// to another type is an error, so a typo'd type is not silently ignored.
func (t *Trigger) compile(p *Problems) {
	if t.Type == "" {
		p.add("trigger.type", "is required")
		return
	}
	spec, ok := triggerSpecs[t.Type]
	if !ok {
		p.add("trigger.type", "unknown trigger type %q (supported: %s)", t.Type, strings.Join(TriggerTypes(), ", "))
		return
	}
	for _, f := range t.setFields() {
		if !contains(spec.fields, f) {
			p.add("trigger."+f, "is not a field of %s triggers", t.Type)
		}
	}
	spec.compile(t, p)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func compileAppEventTrigger(t *Trigger, p *Problems) {
	if strings.TrimSpace(t.Event) == "" {
		p.add("trigger.event", "is required for an app_event trigger")
	}
}

func compileRequestTrigger(t *Trigger, p *Problems) {
	for i, m := range t.Methods {
		switch strings.ToUpper(m) {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			t.Methods[i] = strings.ToUpper(m)
		default:
			p.add(fmt.Sprintf("trigger.methods[%d]", i), "unsupported method %q", m)
		}
	}
	if d := time.Duration(t.Timeout); d < 0 || d > MaxRequestTimeout {
		p.add("trigger.timeout", "must be between 0 and %s", MaxRequestTimeout)
	}
	if v := t.Validation; v != nil {
		validateRequestValidation(v, p)
	}
}

func validateRequestValidation(v *RequestValidation, p *Problems) {
	for i, q := range v.Query {
		if q.Key == "" {
			p.add(fmt.Sprintf("trigger.validation.query[%d].key", i), "is required")
		}
	}
	for i, h := range v.Headers {
		if h.Key == "" {
			p.add(fmt.Sprintf("trigger.validation.headers[%d].key", i), "is required")
		}
	}
	for i, b := range v.Body {
		f := fmt.Sprintf("trigger.validation.body[%d]", i)
		if b.Key == "" || strings.HasPrefix(b.Key, ".") || strings.HasSuffix(b.Key, ".") || strings.Contains(b.Key, "..") {
			p.add(f+".key", "must be a field name or dotted path")
		}
		switch b.Type {
		case "", "string", "number", "boolean", "object", "array":
		default:
			p.add(f+".type", "must be one of string, number, boolean, object, array")
		}
	}
}

package workflow

import (
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/template"
)

// TriggerIntegration: a provider event (a verified webhook) of the
// workflow's integration, run for every credential it resolved to.
const TriggerIntegration = "integration"

// integrationFields are the trigger fields an integration trigger owns.
var integrationFields = []string{"event", "integration", "filter", "params"}

func (t *Trigger) setIntegrationFields() []string {
	var out []string
	if t.Integration != "" {
		out = append(out, "integration")
	}
	if t.Filter != "" {
		out = append(out, "filter")
	}
	if t.Params != nil {
		out = append(out, "params")
	}
	return out
}

// FilterExpr is an integration trigger's compiled filter, nil without one.
func (t *Trigger) FilterExpr() *template.Expr { return t.filter }

// compileIntegrationTrigger checks `trigger: {type: integration,
// integration, event, filter, params}`. The filter is an expression over
// trigger (name, payload, eventId, providerAccountId), credential and user,
// compiled here so a broken one is an apply error. Params are checked
// against the built-in manifest's declaration of the event when there is
// one; a project's own manifest is checked by apply (ingress), which sees
// the catalog.
func compileIntegrationTrigger(t *Trigger, p *Problems) {
	switch {
	case t.Integration == "":
		p.add("trigger.integration", "is required for an integration trigger")
	case !ValidID(t.Integration):
		p.add("trigger.integration", "must match [a-z0-9][a-z0-9_-]*")
	}
	if strings.TrimSpace(t.Event) == "" {
		p.add("trigger.event", "is required for an integration trigger (the provider event, e.g. contact.creation)")
	} else if len(t.Event) > 200 {
		p.add("trigger.event", "must be at most 200 characters")
	}
	t.filter = nil
	if t.Filter != "" {
		e, err := template.CompileExpr(t.Filter)
		if err != nil {
			p.add("trigger.filter", "%v", err)
		}
		t.filter = e
	}
	if m, ok := manifest.Builtin(t.Integration); ok {
		CheckTriggerParams(m, t, p)
	}
}

// CheckTriggerParams checks t's params against m's declaration of t.Event:
// every required one set, none unknown. An event m does not declare takes
// no params (it matches the provider event type as is).
func CheckTriggerParams(m *manifest.Manifest, t *Trigger, p *Problems) {
	ev, ok := m.Trigger(t.Event)
	if !ok {
		for k := range t.Params {
			p.add("trigger.params."+k, "integration %s does not declare event %q, which takes no params", m.ID, t.Event)
		}
		return
	}
	declared := map[string]bool{}
	for _, f := range ev.Params {
		declared[f.Key] = true
		if _, set := t.Params[f.Key]; f.Required && !set {
			p.add("trigger.params."+f.Key, "is required by %s event %q", m.ID, t.Event)
		}
	}
	for k := range t.Params {
		if !declared[k] {
			p.add("trigger.params."+k, "is not a param of %s event %q", m.ID, t.Event)
		}
	}
}

// CheckIntegrationTriggers checks, for an apply, that every integration
// trigger names an integration that receives webhooks — one applied with
// the same documents, else what lookup finds (the catalog, built-ins
// included) — and sets only the params its manifest declares for the
// event. It returns one DocError per workflow that does not.
func CheckIntegrationTriggers(objs []Object, lookup func(id string) (*Integration, bool)) []DocError {
	applied := map[string]*Integration{}
	for _, o := range objs {
		if in, ok := o.(*Integration); ok {
			applied[in.ID] = in
		}
	}
	var out []DocError
	for i, o := range objs {
		w, ok := o.(*Workflow)
		if !ok || w.Trigger.Type != TriggerIntegration {
			continue
		}
		in, ok := applied[w.Trigger.Integration]
		if !ok {
			in, ok = lookup(w.Trigger.Integration)
		}
		var p Problems
		switch {
		case !ok:
			p.add("trigger.integration", "integration %q does not exist: apply a kind: Integration document (or use a built-in id)", w.Trigger.Integration)
		case in.Effective().Webhook == nil && len(in.Effective().Polling) == 0:
			p.add("trigger.integration", "integration %q receives no webhooks: its manifest has no webhook or polling section", w.Trigger.Integration)
		default:
			CheckTriggerParams(in.Effective(), &w.Trigger, &p)
		}
		if len(p) > 0 {
			out = append(out, DocError{Index: i, Kind: w.DocKind(), Name: w.ID, Problems: p})
		}
	}
	return out
}

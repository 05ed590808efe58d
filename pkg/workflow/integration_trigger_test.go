package workflow_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

func TestIntegrationTrigger(t *testing.T) {
	const steps = ", steps: [{id: s, type: http, url: 'https://example.com'}]}"
	tests := []struct {
		name, doc, wantErr string
	}{
		{"valid with filter", `{kind: Workflow, id: w, trigger: {type: integration, integration: hubspot, event: contact.creation, filter: 'trigger.payload.portalId == 1'}}`, ""},
		{"sets the workflow's integration", `{kind: Workflow, id: w, integration: hubspot, trigger: {type: integration, integration: hubspot, event: x}}`, ""},
		{"integration mismatch", `{kind: Workflow, id: w, integration: slack, trigger: {type: integration, integration: hubspot, event: x}}`, "trigger.integration"},
		{"integration required", `{kind: Workflow, id: w, trigger: {type: integration, event: x}}`, "trigger.integration"},
		{"event required", `{kind: Workflow, id: w, trigger: {type: integration, integration: hubspot}}`, "trigger.event"},
		{"bad filter", `{kind: Workflow, id: w, trigger: {type: integration, integration: hubspot, event: x, filter: 'trigger.('}}`, "trigger.filter"},
		{"filter on an app_event trigger", `{kind: Workflow, id: w, trigger: {type: app_event, event: x, filter: 'true'}}`, "trigger.filter"},
		{"declared param", `{kind: Workflow, id: w, trigger: {type: integration, integration: hubspot, event: contact.propertyChange, params: {propertyName: email}}}`, ""},
		{"unknown param", `{kind: Workflow, id: w, trigger: {type: integration, integration: hubspot, event: contact.propertyChange, params: {nope: 1}}}`, "trigger.params.nope"},
		{"params on an undeclared event", `{kind: Workflow, id: w, trigger: {type: integration, integration: hubspot, event: ticket.creation, params: {a: 1}}}`, "trigger.params.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := workflow.Parse([]byte(strings.TrimSuffix(tt.doc, "}")+steps), "p")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if w := objs[0].(*workflow.Workflow); w.Integration != "hubspot" {
					t.Fatalf("workflow integration %q", w.Integration)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestIntegrationDocumentExtendsBuiltin(t *testing.T) {
	objs, err := workflow.Parse([]byte(`{kind: Integration, id: hubspot, webhook: {response: {status: 204}}}`), "p")
	if err != nil {
		t.Fatal(err)
	}
	in := objs[0].(*workflow.Integration)
	eff := in.Effective()
	if eff.Webhook == nil || eff.Webhook.Response.Status != 204 || eff.Webhook.EventType == "" {
		t.Fatalf("effective webhook %+v", eff.Webhook)
	}
	if _, err := workflow.Parse([]byte(`{kind: Integration, id: mine, webhook: {eventType: body.type}}`), "p"); err == nil ||
		!strings.Contains(err.Error(), "webhook.verification") {
		t.Fatalf("a new integration without verification: %v", err)
	}
	if _, ok := workflow.BuiltinIntegration("p", "stripe"); !ok {
		t.Fatal("no built-in stripe")
	}
}

func TestCheckIntegrationTriggers(t *testing.T) {
	const wf = `{kind: Workflow, id: w, trigger: {type: integration, integration: %s, event: %s %s}, steps: [{id: s, type: http, url: 'https://example.com'}]}`
	tests := []struct {
		name, docs, want string
	}{
		{"built-in", fmt.Sprintf(wf, "stripe", "invoice.paid", ""), ""},
		{"unknown integration", fmt.Sprintf(wf, "nope", "x", ""), "does not exist"},
		{"integration without webhook", "{kind: Integration, id: plain, auth: {type: bearer}}\n---\n" + fmt.Sprintf(wf, "plain", "x", ""), "receives no webhooks"},
		{"project manifest in the same apply, declared param", "{kind: Integration, id: crm, webhook: {verification: {preset: bearer}, eventType: body.type}, triggers: [{event: record_created, params: [{key: recordType, required: true}]}]}\n---\n" +
			fmt.Sprintf(wf, "crm", "record_created", ", params: {recordType: Account}"), ""},
		{"project manifest, missing required param", "{kind: Integration, id: crm, webhook: {verification: {preset: bearer}, eventType: body.type}, triggers: [{event: record_created, params: [{key: recordType, required: true}]}]}\n---\n" +
			fmt.Sprintf(wf, "crm", "record_created", ""), "trigger.params.recordType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := workflow.Parse([]byte(tt.docs), "p")
			if err != nil {
				t.Fatal(err)
			}
			errs := workflow.CheckIntegrationTriggers(objs, func(id string) (*workflow.Integration, bool) { return workflow.BuiltinIntegration("p", id) })
			got := ""
			for _, de := range errs {
				got += de.Problems.Error()
			}
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
		})
	}
}

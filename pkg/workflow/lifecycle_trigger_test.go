package workflow_test

import (
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

func TestLifecycleTriggers(t *testing.T) {
	const steps = ", steps: [{id: s, type: http, url: 'https://example.com'}]}"
	tests := []struct {
		name, doc, wantErr string
	}{
		{"integration enabled", `{kind: Workflow, id: w, trigger: {type: integration_enabled, integration: hubspot}}`, ""},
		{"integration enabled, workflow integration agrees", `{kind: Workflow, id: w, integration: hubspot, trigger: {type: integration_enabled, integration: hubspot}}`, ""},
		{"integration enabled without integration", `{kind: Workflow, id: w, trigger: {type: integration_enabled}}`, "trigger.integration"},
		{"integration enabled takes no event", `{kind: Workflow, id: w, trigger: {type: integration_enabled, integration: hubspot, event: x}}`, "trigger.event"},
		{"integration enabled, mismatch", `{kind: Workflow, id: w, integration: slack, trigger: {type: integration_enabled, integration: hubspot}}`, "trigger.integration"},
		{"credential invalid", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: credential.invalid, integration: hubspot}}`, ""},
		{"integration disabled", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: integration.disabled, integration: hubspot}}`, ""},
		{"refreshed", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: credential.refreshed, integration: hubspot}}`, ""},
		{"settings updated", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: settings.updated, integration: hubspot}}`, ""},
		{"lifecycle without event", `{kind: Workflow, id: w, trigger: {type: lifecycle, integration: hubspot}}`, "trigger.event"},
		{"lifecycle with unknown event", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: credential.nope, integration: hubspot}}`, "unknown lifecycle event"},
		{"lifecycle enabled has its own type", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: integration.enabled, integration: hubspot}}`, "integration_enabled"},
		{"lifecycle without integration", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: credential.invalid}}`, "trigger.integration"},
		{"lifecycle takes no filter", `{kind: Workflow, id: w, trigger: {type: lifecycle, event: credential.invalid, integration: hubspot, filter: 'true'}}`, "trigger.filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := workflow.Parse([]byte(strings.TrimSuffix(tt.doc, "}")+steps), "p")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if w := objs[0].(*workflow.Workflow); w.Integration != "hubspot" {
					t.Fatalf("workflow integration %q, want the trigger's", w.Integration)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

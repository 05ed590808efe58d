package openapi_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
	historyrole "github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/ingress"
	"github.com/switchboard-hq/switchboard/services/scheduler"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

// jsonFields are the names a value of t has in JSON (encoding/json's
// rules: json:"-" is left out, embedded structs are flattened) and which
// of them are always present (no omitempty or omitzero).
func jsonFields(t reflect.Type) (names, always []string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			n, a := jsonFields(f.Type)
			names, always = append(names, n...), append(always, a...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	return names, always
}

// schemaFields are a schema's property names and required ones (allOf
// members merged).
func schemaFields(s *openapi3.Schema) (names, required []string) {
	for _, sub := range s.AllOf {
		n, r := schemaFields(sub.Value)
		names, required = append(names, n...), append(required, r...)
	}
	for name := range s.Properties {
		names = append(names, name)
	}
	return names, append(required, s.Required...)
}

// TestSchemasMatchGoTypes holds each component schema against the Go type
// the server encodes it from: the json tags are the truth, so a field
// added, renamed or made optional in Go fails here until the document
// says so too.
func TestSchemasMatchGoTypes(t *testing.T) {
	doc := load(t)
	for _, tc := range []struct {
		schema string
		value  any
		// request: a body the server reads, where a field Go would
		// always write may still be left out by the caller.
		request bool
	}{
		{schema: "ErrorObject", value: apierr.Error{}},
		{schema: "Project", value: ingress.ProjectView{}},
		{schema: "ProjectRequest", request: true, value: ingress.ProjectRequest{}},
		{schema: "APIKeyCreated", value: ingress.APIKeyCreated{}},
		{schema: "ApplyResult", value: ingress.ApplyResult{}},
		{schema: "EventRequest", request: true, value: ingress.EventRequest{}},
		{schema: "EventAccepted", value: ingress.EventAccepted{}},
		{schema: "RequestAccepted", value: ingress.RequestAccepted{}},
		{schema: "RequestTimedOut", value: ingress.RequestTimedOut{}},
		{schema: "Step", value: runs.Step{}},
		{schema: "Run", value: runs.Run{}},
		{schema: "RunPage", value: history.Page{}},
		{schema: "Candidate", value: runs.Candidate{}},
		{schema: "Decision", value: runs.Decision{}},
		{schema: "ReplayAccepted", value: historyrole.ReplayAccepted{}},
		{schema: "BulkReplay", value: historyrole.BulkReplay{}},
		{schema: "DeadLetter", value: historyrole.DeadLetter{}},
		{schema: "DeadPage", value: historyrole.DeadPage{}},
		{schema: "User", value: directory.User{}},
		{schema: "UserPage", value: directory.UserPage{}},
		{schema: "Credential", value: directory.Credential{}},
		{schema: "ImportResult", value: lifecycle.ImportResponse{}},
		{schema: "SDKMe", value: lifecycle.SDKMe{}},
		{schema: "SDKIntegration", value: lifecycle.SDKIntegration{}},
		{schema: "ScheduleView", value: scheduler.ScheduleView{}},
		{schema: "HookAnswer", value: receiver.Answer{}},
		{schema: "WebhookReplayRequest", request: true, value: receiver.ReplayRequest{}},
		{schema: "WebhookReplayPage", value: receiver.ReplayPage{}},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			ref := doc.Components.Schemas[tc.schema]
			if ref == nil {
				t.Fatalf("components.schemas.%s is missing", tc.schema)
			}
			goNames, goAlways := jsonFields(reflect.TypeOf(tc.value))
			docNames, docRequired := schemaFields(ref.Value)
			slices.Sort(goNames)
			slices.Sort(goAlways)
			slices.Sort(docNames)
			slices.Sort(docRequired)
			docRequired = slices.Compact(docRequired)
			if !slices.Equal(goNames, docNames) {
				t.Errorf("properties %v, want the Go type's %v", docNames, goNames)
			}
			if !tc.request && !slices.Equal(goAlways, docRequired) {
				t.Errorf("required %v, want the fields Go always writes: %v", docRequired, goAlways)
			}
		})
	}
}

package workflow_test

import (
	"strings"
	"testing"
)

// Each trigger type checks its own fields and refuses another type's, so a
// document with the wrong type is an apply-time error, not a silent default.
func TestTriggerSpecs(t *testing.T) {
	cases := []struct {
		name    string
		trigger string
		field   string // the problem's field; "" means the document is valid
		message string
	}{
		{"app event", `{type: app_event, event: E}`, "", ""},
		{"request", `{type: request, methods: [get], timeout: 5s}`, "", ""},
		{"missing type", `{event: E}`, "trigger.type", "is required"},
		{"unknown type", `{type: webhook}`, "trigger.type", "supported: app_event, integration, integration_enabled, lifecycle, request"},
		{"app event without event", `{type: app_event}`, "trigger.event", "is required"},
		{"request field on app event", `{type: app_event, event: E, methods: [POST]}`, "trigger.methods", "not a field of app_event triggers"},
		{"app event field on request", `{type: request, event: E}`, "trigger.event", "not a field of request triggers"},
		{"bad method", `{type: request, methods: [TRACE]}`, "trigger.methods[0]", "unsupported method"},
		{"timeout too long", `{type: request, timeout: 301s}`, "trigger.timeout", "must be between"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "kind: Workflow\nid: w\ntrigger: " + tc.trigger + "\nsteps: [{id: a, type: http, url: 'https://example.com'}]\n"
			if tc.field == "" {
				parseOK(t, doc, "p")
				return
			}
			pe := parseErr(t, doc, "p")
			for _, pr := range pe.Docs[0].Problems {
				if pr.Field == tc.field && strings.Contains(pr.Message, tc.message) {
					return
				}
			}
			t.Fatalf("no problem %s: …%s… in %v", tc.field, tc.message, pe.Docs[0].Problems)
		})
	}
}

// A schema's $ref outside its own document is an apply-time error; no
// loader reads a file or calls the network. References within it work.
func TestAppEventSchemaRefs(t *testing.T) {
	for _, tc := range []struct {
		name, schema, problem string
	}{
		{"file", `{"$ref": "file:///etc/passwd"}`, "points outside the schema"},
		{"relative file", `{"$ref": "other.json"}`, "points outside the schema"},
		{"network", `{"$ref": "https://example.com/schema.json"}`, "points outside the schema"},
		{"within the document", `{"$defs": {"e": {"type": "string"}}, "properties": {"email": {"$ref": "#/$defs/e"}}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "kind: AppEvent\nname: E\nschema: " + tc.schema + "\n"
			if tc.problem == "" {
				parseOK(t, doc, "p")
				return
			}
			pe := parseErr(t, doc, "p")
			if !strings.Contains(pe.Error(), tc.problem) {
				t.Fatalf("error %q, want one saying %q", pe, tc.problem)
			}
		})
	}
}

// A response step's literal status must be one a response can have, and
// its headers may not frame the message (the server does).
func TestResponseStepRules(t *testing.T) {
	for _, tc := range []struct{ name, step, field string }{
		{"1xx status", `{id: r, type: response, status: 101}`, "steps[0].status"},
		{"content-length", `{id: r, type: response, headers: {content-length: "5"}, body: "hello world"}`, "steps[0].headers.content-length"},
		{"transfer-encoding", `{id: r, type: response, headers: {Transfer-Encoding: chunked}, body: "x"}`, "steps[0].headers.Transfer-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := parseErr(t, "kind: Workflow\nid: w\ntrigger: {type: request}\nsteps: ["+tc.step+"]\n", "p")
			for _, pr := range pe.Docs[0].Problems {
				if pr.Field == tc.field {
					return
				}
			}
			t.Fatalf("no problem on %s in %v", tc.field, pe.Docs[0].Problems)
		})
	}
	parseOK(t, "kind: Workflow\nid: w\ntrigger: {type: request}\nsteps: [{id: r, type: response, status: 204, headers: {X-A: b}}]\n", "p")
}

// An http step's URL, where its scheme is written out, must be http(s):
// file: or gopher: URLs are refused at apply, not at run time.
func TestHTTPStepScheme(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://example.com/x", true},
		{"HTTP://example.com/x", true},
		{"https://{{ credential.settings.host }}/x", true},
		{"{{ trigger.payload.url }}", true},
		{"file:///etc/passwd", false},
		{"gopher://example.com:70/1", false},
		{"file://{{ trigger.payload.path }}", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			doc := "kind: Workflow\nid: w\ntrigger: {type: request}\nsteps: [{id: a, type: http, url: '" + tc.url + "'}]\n"
			if tc.ok {
				parseOK(t, doc, "p")
				return
			}
			pe := parseErr(t, doc, "p")
			if !strings.Contains(pe.Error(), "must be an http or https URL") {
				t.Fatalf("error %q", pe)
			}
		})
	}
}

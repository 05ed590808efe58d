package workflow_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

const validYAML = `
kind: AppEvent
name: Contact Created
schema:
  type: object
  required: [email]
  properties:
    email: {type: string}
    count: {type: integer, minimum: 1}
---
kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: contact-to-crm
integration: crm
enabledByDefault: false
trigger: {type: app_event, event: Contact Created}
steps:
  - id: create
    type: http
    method: post
    url: "https://crm.example/{{ user.id }}"
    auth: credential
    headers: {X-Count: "{{ trigger.payload.count }}"}
    query: {q: static}
    json: {email: "{{ trigger.payload.email }}"}
    retry: {attempts: 3, backoff: 10s}
    timeout: 1m
  - id: maybe
    type: emit
    if: "{{ steps.create.status == 201 }}"
    event: Contact Synced
    payload: {id: "{{ steps.create.body.id }}"}
    user: "{{ user.id }}"
  - id: fn
    type: function
    function: enrich
    input: {email: "{{ trigger.payload.email }}"}
`

func parseOK(t *testing.T, data, project string) []workflow.Object {
	t.Helper()
	objs, err := workflow.Parse([]byte(data), project)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return objs
}

func parseErr(t *testing.T, data, project string) *workflow.ParseError {
	t.Helper()
	objs, err := workflow.Parse([]byte(data), project)
	if err == nil {
		t.Fatalf("Parse succeeded with %d objects, want error", len(objs))
	}
	if objs != nil {
		t.Errorf("Parse returned objects %v with an error", objs)
	}
	var pe *workflow.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %v is not a *ParseError", err, err)
	}
	return pe
}

func TestParseMultiDocYAML(t *testing.T) {
	objs := parseOK(t, validYAML, "acme")
	if len(objs) != 3 {
		t.Fatalf("got %d objects, want 3", len(objs))
	}
	ev, ok := objs[0].(*workflow.AppEvent)
	if !ok || ev.Name != "Contact Created" || ev.Project != "acme" || ev.DocKind() != workflow.KindAppEvent || ev.DocName() != "Contact Created" {
		t.Errorf("objs[0] = %#v", objs[0])
	}
	in, ok := objs[1].(*workflow.Integration)
	if !ok || in.ID != "crm" || in.Project != "acme" || in.Auth.Type != "bearer" || in.DocKind() != workflow.KindIntegration || in.DocName() != "crm" {
		t.Errorf("objs[1] = %#v", objs[1])
	}
	w, ok := objs[2].(*workflow.Workflow)
	if !ok {
		t.Fatalf("objs[2] is %T", objs[2])
	}
	if w.Project != "acme" || w.ID != "contact-to-crm" || w.Integration != "crm" || w.DocKind() != workflow.KindWorkflow || w.DocName() != "contact-to-crm" {
		t.Errorf("workflow header = %+v", w)
	}
	if w.IsEnabledByDefault() {
		t.Error("IsEnabledByDefault = true with enabledByDefault: false")
	}
	if len(w.Steps) != 3 {
		t.Fatalf("steps = %d", len(w.Steps))
	}
	create, emit, fn := w.Steps[0], w.Steps[1], w.Steps[2]
	if create.HTTPMethod() != http.MethodPost {
		t.Errorf("HTTPMethod = %q, want POST", create.HTTPMethod())
	}
	if create.StepTimeout() != time.Minute {
		t.Errorf("StepTimeout = %v", create.StepTimeout())
	}
	if got := create.RetryPolicy(); got != (workflow.Retry{Attempts: 3, Backoff: workflow.Duration(10 * time.Second)}) {
		t.Errorf("RetryPolicy = %+v", got)
	}
	if create.Cond() != nil {
		t.Error("Cond set without if")
	}
	env := map[string]any{
		"trigger": map[string]any{"payload": map[string]any{"email": "a@b.c", "count": 2.0}},
		"user":    map[string]any{"id": "u1"},
		"steps":   map[string]any{"create": map[string]any{"status": 201.0, "body": map[string]any{"id": "x9"}}},
	}
	evalTo := func(name string, tp interface {
		Eval(map[string]any) (any, error)
	}, want any) {
		t.Helper()
		got, err := tp.Eval(env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	evalTo("url", create.URLTemplate(), "https://crm.example/u1")
	evalTo("json", create.JSONTemplate(), map[string]any{"email": "a@b.c"})
	evalTo("header", create.HeaderTemplates()["X-Count"], 2.0)
	evalTo("query", create.QueryTemplates()["q"], "static")
	if create.BodyTemplate() != nil {
		t.Error("BodyTemplate set without body")
	}
	if emit.Cond() == nil {
		t.Fatal("emit Cond is nil")
	}
	if ok, err := emit.Cond().Bool(env); err != nil || !ok {
		t.Errorf("emit Cond = %v, %v", ok, err)
	}
	evalTo("payload", emit.PayloadTemplate(), map[string]any{"id": "x9"})
	evalTo("user", emit.UserTemplate(), "u1")
	evalTo("input", fn.InputTemplate(), map[string]any{"email": "a@b.c"})
	// Defaults for steps that set nothing.
	if fn.StepTimeout() != workflow.DefaultStepTimeout {
		t.Errorf("default StepTimeout = %v", fn.StepTimeout())
	}
	if got := fn.RetryPolicy(); got != (workflow.Retry{Attempts: workflow.DefaultAttempts, Backoff: workflow.Duration(workflow.DefaultBackoff)}) {
		t.Errorf("default RetryPolicy = %+v", got)
	}
}

func TestParseJSON(t *testing.T) {
	t.Run("array", func(t *testing.T) {
		objs := parseOK(t, `[
			{"kind":"AppEvent","name":"order.paid"},
			{"kind":"Workflow","id":"w1","trigger":{"type":"request","methods":["get","Put"],"timeout":"10s"},
			 "steps":[{"id":"r","type":"response","status":201,"json":{"ok":true}}]}
		]`, "acme")
		if len(objs) != 2 {
			t.Fatalf("got %d objects", len(objs))
		}
		if ev := objs[0].(*workflow.AppEvent); ev.Name != "order.paid" || ev.Project != "acme" {
			t.Errorf("event = %+v", ev)
		}
		w := objs[1].(*workflow.Workflow)
		if w.Project != "acme" {
			t.Errorf("project = %q", w.Project)
		}
		if !reflect.DeepEqual(w.Trigger.Methods, []string{"GET", "PUT"}) {
			t.Errorf("methods not normalised: %v", w.Trigger.Methods)
		}
		st, err := w.Steps[0].StatusTemplate().Eval(nil)
		if err != nil || st != 201.0 {
			t.Errorf("status = %#v, %v", st, err)
		}
	})
	t.Run("single object", func(t *testing.T) {
		objs := parseOK(t, `{"kind":"Integration","id":"x","project":"acme","auth":{"type":"none"}}`, "acme")
		if len(objs) != 1 || objs[0].(*workflow.Integration).ID != "x" {
			t.Fatalf("objs = %#v", objs)
		}
	})
	t.Run("array of non-objects", func(t *testing.T) {
		pe := parseErr(t, `[1, 2]`, "acme")
		if len(pe.Docs) != 1 || !strings.Contains(pe.Docs[0].Problems.Error(), "invalid JSON") {
			t.Errorf("docs = %+v", pe.Docs)
		}
	})
}

func TestParseProject(t *testing.T) {
	const doc = "kind: Integration\nid: x\nauth: {type: none}\n"
	t.Run("default fills", func(t *testing.T) {
		objs := parseOK(t, doc, "acme")
		if p := objs[0].(*workflow.Integration).Project; p != "acme" {
			t.Errorf("project = %q", p)
		}
	})
	t.Run("same project explicit", func(t *testing.T) {
		parseOK(t, doc+"project: acme\n", "acme")
	})
	t.Run("no default uses the document's", func(t *testing.T) {
		objs := parseOK(t, doc+"project: other\n", "")
		if p := objs[0].(*workflow.Integration).Project; p != "other" {
			t.Errorf("project = %q", p)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		pe := parseErr(t, doc+"project: other\n", "acme")
		if len(pe.Docs) != 1 {
			t.Fatalf("docs = %+v", pe.Docs)
		}
		d := pe.Docs[0]
		if d.Index != 0 || d.Kind != workflow.KindIntegration || len(d.Problems) != 1 || d.Problems[0].Field != "project" {
			t.Errorf("doc error = %+v", d)
		}
		if m := d.Problems[0].Message; !strings.Contains(m, `"other"`) || !strings.Contains(m, `"acme"`) {
			t.Errorf("message %q should name both projects", m)
		}
	})
	t.Run("neither", func(t *testing.T) {
		pe := parseErr(t, doc, "")
		if f := fields(pe.Docs[0].Problems); !reflect.DeepEqual(f, []string{"project"}) {
			t.Errorf("fields = %v", f)
		}
	})
}

func fields(p workflow.Problems) []string {
	out := make([]string, len(p))
	for i, x := range p {
		out[i] = x.Field
	}
	return out
}

func TestParseWholeStreamErrors(t *testing.T) {
	cases := []struct {
		name, data, want string
	}{
		{"empty", "", "no documents"},
		{"only separators", "---\n---\n", "no documents"},
		{"yaml syntax", "kind: Workflow\n  id: [unclosed\n", "invalid YAML/JSON"},
		{"scalar document", "just a string\n", "not a mapping"},
		{"bad json array", `[{"kind": "Workflow",}]`, "invalid JSON"},
		{"too many", strings.Repeat("kind: AppEvent\nname: e\n---\n", workflow.MaxDocuments+1), "at most 1000 documents"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pe := parseErr(t, c.data, "acme")
			if len(pe.Docs) != 1 || pe.Docs[0].Index != 0 {
				t.Fatalf("docs = %+v", pe.Docs)
			}
			if !strings.Contains(pe.Error(), c.want) {
				t.Errorf("error %q does not contain %q", pe.Error(), c.want)
			}
		})
	}
}

func TestParseJSONArrayWithNull(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Parse panicked: %v", r)
			}
		}()
		_, err = workflow.Parse([]byte(`[{"kind":"AppEvent","name":"a"}, null]`), "acme")
	}()
	var pe *workflow.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *ParseError", err)
	}
}

// problemCase is one invalid document and the fields its problems name.
type problemCase struct {
	name   string
	doc    string
	fields []string
	// msg must appear in the first problem's message
	msg string
}

func wf(trigger, steps string) string {
	return "kind: Workflow\nid: w\ntrigger: " + trigger + "\nsteps:\n" + steps
}

const okStep = "  - {id: s, type: emit, event: E}\n"

var problemCases = []problemCase{
	// document level
	{"missing kind", "id: w\n", []string{"kind"}, "is required"},
	{"unknown kind", "kind: Workflw\nid: w\n", []string{"kind"}, `unknown kind "Workflw"`},
	{"unknown field", "kind: Workflow\nid: w\ntrigger: {type: app_event, event: E}\nstpes:\n" + okStep, []string{""}, `unknown field "stpes"`},
	{"unknown nested field", wf("{type: app_event, event: E, methdos: [GET]}", okStep), []string{""}, `unknown field "methdos"`},
	{"wrong type", "kind: Workflow\nid: w\ntrigger: {type: app_event, event: E}\nsteps: nope\n", []string{""}, "cannot unmarshal"},
	{"bad duration", wf("{type: request, timeout: soon}", okStep), []string{""}, `invalid duration "soon"`},
	// ids
	{"bad workflow id", "kind: Workflow\nid: Bad_ID\ntrigger: {type: app_event, event: E}\nsteps:\n" + okStep, []string{"id"}, "must match"},
	{"missing workflow id", "kind: Workflow\ntrigger: {type: app_event, event: E}\nsteps:\n" + okStep, []string{"id"}, "must match"},
	{"too long workflow id", "kind: Workflow\nid: " + strings.Repeat("a", 64) + "\ntrigger: {type: app_event, event: E}\nsteps:\n" + okStep, []string{"id"}, "63"},
	{"bad integration id", "kind: Workflow\nid: w\nintegration: Hub Spot\ntrigger: {type: app_event, event: E}\nsteps:\n" + okStep, []string{"integration"}, "must match"},
	// triggers
	{"missing trigger type", wf("{event: E}", okStep), []string{"trigger.type"}, "is required"},
	{"unknown trigger type", wf("{type: cron}", okStep), []string{"trigger.type"}, `unknown trigger type "cron"`},
	{"app_event without event", wf("{type: app_event}", okStep), []string{"trigger.event"}, "is required"},
	{"app_event blank event", wf("{type: app_event, event: '  '}", okStep), []string{"trigger.event"}, "is required"},
	{"bad methods", wf("{type: request, methods: [GET, TRACE, post, CONNECT]}", okStep), []string{"trigger.methods[1]", "trigger.methods[3]"}, `unsupported method "TRACE"`},
	{"timeout too long", wf("{type: request, timeout: 301s}", okStep), []string{"trigger.timeout"}, "between 0 and 5m0s"},
	{"negative timeout", wf("{type: request, timeout: -1s}", okStep), []string{"trigger.timeout"}, "between 0 and 5m0s"},
	{"validation keys", wf("{type: request, validation: {query: [{required: true}], headers: [{key: X}, {equals: v}], body: [{key: .a}, {key: a..b}, {key: ok, type: int}]}}", okStep),
		[]string{"trigger.validation.query[0].key", "trigger.validation.headers[1].key", "trigger.validation.body[0].key", "trigger.validation.body[1].key", "trigger.validation.body[2].type"}, "is required"},
	// steps
	{"no steps", "kind: Workflow\nid: w\ntrigger: {type: app_event, event: E}\n", []string{"steps"}, "at least one step"},
	{"null step", wf("{type: app_event, event: E}", "  - null\n"), []string{"steps[0]"}, "is empty"},
	{"bad step id", wf("{type: app_event, event: E}", "  - {id: a-b, type: emit, event: E}\n"), []string{"steps[0].id"}, "must be an identifier"},
	{"missing step id", wf("{type: app_event, event: E}", "  - {type: emit, event: E}\n"), []string{"steps[0].id"}, "must be an identifier"},
	{"duplicate step id", wf("{type: app_event, event: E}", okStep+okStep), []string{"steps[1].id"}, `duplicate step id "s"`},
	{"missing step type", wf("{type: app_event, event: E}", "  - {id: s}\n"), []string{"steps[0].type"}, "is required"},
	{"unknown step type", wf("{type: app_event, event: E}", "  - {id: s, type: sleep}\n"), []string{"steps[0].type"}, `unknown step type "sleep"`},
	{"response without request trigger", wf("{type: app_event, event: E}", "  - {id: r, type: response}\n"), []string{"steps[0].type"}, "needs a request trigger"},
	{"two response steps", wf("{type: request}", "  - {id: r1, type: response}\n  - {id: r2, type: response}\n"), []string{"steps"}, "at most one response step"},
	{"response bad status", wf("{type: request}", "  - {id: r, type: response, status: 700}\n"), []string{"steps[0].status"}, "200-599"},
	{"response json and body", wf("{type: request}", "  - {id: r, type: response, json: {a: 1}, body: x}\n"), []string{"steps[0]"}, "not both"},
	{"http without url", wf("{type: app_event, event: E}", "  - {id: h, type: http}\n"), []string{"steps[0].url"}, "is required"},
	{"http bad method", wf("{type: app_event, event: E}", "  - {id: h, type: http, url: 'http://x', method: CONNECT}\n"), []string{"steps[0].method"}, `unsupported method "CONNECT"`},
	{"http json and body", wf("{type: app_event, event: E}", "  - {id: h, type: http, url: 'http://x', json: {a: 1}, body: raw}\n"), []string{"steps[0]"}, "set json or body, not both"},
	{"http bad auth", wf("{type: app_event, event: E}", "  - {id: h, type: http, url: 'http://x', auth: oauth}\n"), []string{"steps[0].auth"}, "credential or none"},
	{"emit without event", wf("{type: app_event, event: E}", "  - {id: e, type: emit}\n"), []string{"steps[0].event"}, "is required"},
	{"function bad name", wf("{type: app_event, event: E}", "  - {id: f, type: function, function: Bad.Name}\n"), []string{"steps[0].function"}, "must name a function"},
	{"function no name", wf("{type: app_event, event: E}", "  - {id: f, type: function}\n"), []string{"steps[0].function"}, "must name a function"},
	{"retry attempts too many", wf("{type: app_event, event: E}", "  - {id: s, type: emit, event: E, retry: {attempts: 21}}\n"), []string{"steps[0].retry.attempts"}, "between 1 and 20"},
	{"retry attempts negative", wf("{type: app_event, event: E}", "  - {id: s, type: emit, event: E, retry: {attempts: -1}}\n"), []string{"steps[0].retry.attempts"}, "between 1 and 20"},
	{"retry negative backoff", wf("{type: app_event, event: E}", "  - {id: s, type: emit, event: E, retry: {backoff: -1s}}\n"), []string{"steps[0].retry.backoff"}, "must not be negative"},
	{"step timeout too long", wf("{type: app_event, event: E}", "  - {id: s, type: emit, event: E, timeout: 6m}\n"), []string{"steps[0].timeout"}, "between 0 and 5m0s"},
	{"step timeout negative", wf("{type: app_event, event: E}", "  - {id: s, type: emit, event: E, timeout: -5s}\n"), []string{"steps[0].timeout"}, "between 0 and 5m0s"},
	{"bad if", wf("{type: app_event, event: E}", "  - {id: s, type: emit, event: E, if: 'foo.bar == 1'}\n"), []string{"steps[0].if"}, "foo.bar"},
	{"bad url expression", wf("{type: app_event, event: E}", "  - {id: h, type: http, url: 'http://x/{{ user.id +  }}'}\n"), []string{"steps[0].url"}, "user.id +"},
	{"bad json expression", wf("{type: app_event, event: E}", "  - {id: h, type: http, url: 'http://x', json: {a: {b: '{{ nope.x }}'}}}\n"), []string{"steps[0].json"}, "a.b:"},
	{"unclosed header", wf("{type: app_event, event: E}", "  - {id: h, type: http, url: 'http://x', headers: {X-A: '{{ user.id'}}\n"), []string{"steps[0].headers.X-A"}, "unclosed"},
	{"bad emit payload", wf("{type: app_event, event: E}", "  - {id: e, type: emit, event: E, payload: '{{ nope }}'}\n"), []string{"steps[0].payload"}, "nope"},
	{"bad function input", wf("{type: app_event, event: E}", "  - {id: f, type: function, function: fx, input: ['{{ nope }}']}\n"), []string{"steps[0].input"}, "[0]"},
	// other kinds
	{"event without name", "kind: AppEvent\n", []string{"name"}, "is required"},
	{"event name too long", "kind: AppEvent\nname: " + strings.Repeat("n", 201) + "\n", []string{"name"}, "200"},
	{"event bad schema", "kind: AppEvent\nname: e\nschema: {type: 5}\n", []string{"schema"}, ""},
	{"integration bad auth", "kind: Integration\nid: x\nauth: {type: oauth9}\n", []string{"auth.type"}, `"oauth9"`},
	{"integration bad id", "kind: Integration\nid: X Y\nauth: {type: none}\n", []string{"id"}, "must match"},
}

func TestProblems(t *testing.T) {
	for _, c := range problemCases {
		t.Run(c.name, func(t *testing.T) {
			pe := parseErr(t, c.doc, "acme")
			if len(pe.Docs) != 1 || pe.Docs[0].Index != 0 {
				t.Fatalf("docs = %+v", pe.Docs)
			}
			p := pe.Docs[0].Problems
			if got := fields(p); !reflect.DeepEqual(got, c.fields) {
				t.Errorf("fields = %q, want %q (%v)", got, c.fields, p)
			}
			if len(p) > 0 && !strings.Contains(p[0].Message, c.msg) {
				t.Errorf("message %q does not contain %q", p[0].Message, c.msg)
			}
		})
	}
}

// TestParseReportsEveryProblem applies all invalid documents, interleaved
// with valid ones, in ONE Parse call: every invalid document is reported,
// under its own index, with all of its problems.
func TestParseReportsEveryProblem(t *testing.T) {
	var docs []string
	want := map[int]problemCase{}
	valid := []string{
		"kind: AppEvent\nname: E\n",
		"kind: Integration\nid: ok\nauth: {type: none}\n",
		wf("{type: app_event, event: E}", okStep),
	}
	for i, c := range problemCases {
		docs = append(docs, valid[i%len(valid)])
		want[len(docs)] = c
		docs = append(docs, c.doc)
	}
	pe := parseErr(t, strings.Join(docs, "---\n"), "acme")
	if len(pe.Docs) != len(problemCases) {
		t.Fatalf("got %d document errors, want %d:\n%v", len(pe.Docs), len(problemCases), pe)
	}
	for _, d := range pe.Docs {
		c, ok := want[d.Index]
		if !ok {
			t.Errorf("document %d reported but valid: %+v", d.Index, d)
			continue
		}
		if got := fields(d.Problems); !reflect.DeepEqual(got, c.fields) {
			t.Errorf("document %d (%s): fields = %q, want %q", d.Index, c.name, got, c.fields)
		}
		delete(want, d.Index)
	}
	for i, c := range want {
		t.Errorf("document %d (%s) not reported", i, c.name)
	}
	// The message names each document by index, kind and name.
	if !strings.Contains(pe.Error(), "(Workflow Bad_ID): id: must match") || !strings.Contains(pe.Error(), "document 1 ( ): kind: is required") {
		t.Errorf("Error() = %q", pe.Error())
	}
}

func TestOneDocumentAllProblems(t *testing.T) {
	doc := `kind: Workflow
id: Bad
integration: "?"
trigger: {type: app_event}
steps:
  - {id: a, type: response}
  - {id: a, type: http, json: {}, body: x, auth: magic, retry: {attempts: 99}}
  - {id: f, type: function, function: "", timeout: 1h, if: "}}{{"}
`
	pe := parseErr(t, doc, "acme")
	if len(pe.Docs) != 1 {
		t.Fatalf("docs = %+v", pe.Docs)
	}
	d := pe.Docs[0]
	if d.Kind != workflow.KindWorkflow || d.Name != "Bad" {
		t.Errorf("kind/name = %q/%q", d.Kind, d.Name)
	}
	want := []string{
		"id", "integration", "trigger.event",
		"steps[0].type",
		"steps[1].id", "steps[1].retry.attempts", "steps[1].url", "steps[1]", "steps[1].auth",
		"steps[2].if", "steps[2].timeout", "steps[2].function",
	}
	if got := fields(d.Problems); !reflect.DeepEqual(got, want) {
		t.Errorf("fields =\n%q\nwant\n%q", got, want)
	}
	// ParseError and Problems render field: message pairs.
	if s := d.Problems.Error(); !strings.Contains(s, "trigger.event: is required for an app_event trigger; ") {
		t.Errorf("Problems.Error() = %q", s)
	}
}

func TestDocErrorJSON(t *testing.T) {
	pe := parseErr(t, "kind: AppEvent\nname: ok\n---\nkind: AppEvent\n", "acme")
	b, err := json.Marshal(pe.Docs)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"index":1,"kind":"AppEvent","problems":[{"field":"name","message":"is required"}]}]`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant %s", b, want)
	}
}

func TestCompileKind(t *testing.T) {
	w := &workflow.Workflow{Kind: "Other", Project: "p", ID: "w",
		Trigger: workflow.Trigger{Type: workflow.TriggerAppEvent, Event: "E"},
		Steps:   []*workflow.Step{{ID: "s", Type: workflow.StepEmit, Event: "E"}}}
	err := w.Compile()
	var p workflow.Problems
	if !errors.As(err, &p) || !reflect.DeepEqual(fields(p), []string{"kind"}) {
		t.Errorf("Compile = %v", err)
	}
	w.Kind = ""
	if err := w.Compile(); err != nil {
		t.Errorf("Compile with empty kind = %v", err)
	}
}

func TestDecode(t *testing.T) {
	obj, err := workflow.Decode(workflow.KindWorkflow, []byte(`{"project":"p","id":"w","trigger":{"type":"request"},"steps":[{"id":"r","type":"response"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := obj.(*workflow.Workflow); !w.HasResponseStep() {
		t.Error("HasResponseStep = false")
	}
	if _, err := workflow.Decode("", []byte(`{}`)); err == nil {
		t.Error("Decode without kind succeeded")
	}
	if _, err := workflow.Decode(workflow.KindAppEvent, []byte(`{"project":"p","name":"e","extra":1}`)); err == nil || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Errorf("Decode with unknown field = %v", err)
	}
}

func TestDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{`"10s"`, 10 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`1.5`, 1500 * time.Millisecond, false},
		{`0`, 0, false},
		{`"soon"`, 0, true},
		{`true`, 0, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			var d workflow.Duration
			err := json.Unmarshal([]byte(c.in), &d)
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if !c.err && time.Duration(d) != c.want {
				t.Errorf("got %v, want %v", time.Duration(d), c.want)
			}
		})
	}
	b, _ := json.Marshal(workflow.Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Errorf("MarshalJSON = %s", b)
	}
}

func TestValidID(t *testing.T) {
	cases := map[string]bool{
		"a": true, "acme": true, "a-b_c9": true, "0x": true, strings.Repeat("a", 63): true,
		"": false, "-a": false, "_a": false, "A": false, "a.b": false, "a b": false, strings.Repeat("a", 64): false, "é": false,
	}
	for in, want := range cases {
		if got := workflow.ValidID(in); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestWorkflowDefaults(t *testing.T) {
	f, tr := false, true
	cases := []struct {
		name        string
		w           workflow.Workflow
		timeout     time.Duration
		allowed     []string
		denied      []string
		hasResponse bool
		enabled     bool
	}{
		{"defaults", workflow.Workflow{Trigger: workflow.Trigger{Type: "request"}, Steps: []*workflow.Step{{Type: "http"}}},
			workflow.DefaultRequestTimeout, []string{"POST"}, []string{"GET", "PUT", "post"}, false, true},
		{"explicit", workflow.Workflow{EnabledByDefault: &f, Trigger: workflow.Trigger{Type: "request", Methods: []string{"GET", "PUT"}, Timeout: workflow.Duration(3 * time.Second)},
			Steps: []*workflow.Step{{Type: "http"}, {Type: "response"}}},
			3 * time.Second, []string{"GET", "get", "PUT"}, []string{"POST", "DELETE"}, true, false},
		{"enabled true", workflow.Workflow{EnabledByDefault: &tr}, workflow.DefaultRequestTimeout, []string{"POST"}, nil, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.w.RequestTimeout(); got != c.timeout {
				t.Errorf("RequestTimeout = %v, want %v", got, c.timeout)
			}
			for _, m := range c.allowed {
				if !c.w.AllowsMethod(m) {
					t.Errorf("AllowsMethod(%s) = false", m)
				}
			}
			for _, m := range c.denied {
				if c.w.AllowsMethod(m) {
					t.Errorf("AllowsMethod(%s) = true", m)
				}
			}
			if got := c.w.HasResponseStep(); got != c.hasResponse {
				t.Errorf("HasResponseStep = %v", got)
			}
			if got := c.w.IsEnabledByDefault(); got != c.enabled {
				t.Errorf("IsEnabledByDefault = %v", got)
			}
		})
	}
}

func TestHTTPMethodDefaults(t *testing.T) {
	cases := []struct {
		step, want string
	}{
		{"{id: h, type: http, url: 'http://x'}", "GET"},
		{"{id: h, type: http, url: 'http://x', json: {a: 1}}", "POST"},
		{"{id: h, type: http, url: 'http://x', body: raw}", "POST"},
		{"{id: h, type: http, url: 'http://x', method: delete}", "DELETE"},
		{"{id: h, type: http, url: 'http://x', method: HEAD}", "HEAD"},
	}
	for _, c := range cases {
		t.Run(c.step, func(t *testing.T) {
			objs := parseOK(t, wf("{type: app_event, event: E}", "  - "+c.step+"\n"), "acme")
			if got := objs[0].(*workflow.Workflow).Steps[0].HTTPMethod(); got != c.want {
				t.Errorf("HTTPMethod = %q, want %q", got, c.want)
			}
		})
	}
}

func TestResponseStatusDefault(t *testing.T) {
	objs := parseOK(t, wf("{type: request}", "  - {id: r, type: response}\n  - {id: r2, type: emit, event: E}\n"), "acme")
	st, err := objs[0].(*workflow.Workflow).Steps[0].StatusTemplate().Eval(nil)
	if err != nil || st != 200 {
		t.Errorf("default status = %#v, %v", st, err)
	}
	objs = parseOK(t, wf("{type: request}", "  - {id: r, type: response, status: '{{ steps.x.status }}'}\n"), "acme")
	st, err = objs[0].(*workflow.Workflow).Steps[0].StatusTemplate().Eval(map[string]any{"steps": map[string]any{"x": map[string]any{"status": 404.0}}})
	if err != nil || st != 404.0 {
		t.Errorf("templated status = %#v, %v", st, err)
	}
}

func schemaEvent(t *testing.T) *workflow.AppEvent {
	t.Helper()
	return parseOK(t, validYAML, "acme")[0].(*workflow.AppEvent)
}

func TestAppEventSchemaAccepts(t *testing.T) {
	ev := schemaEvent(t)
	cases := []struct {
		name    string
		payload string
		want    Problems
	}{
		{"valid", `{"email":"a@b.c","count":2}`, nil},
		{"valid extra fields", `{"email":"a@b.c","other":[1]}`, nil},
		{"invalid JSON", `{"email":`, Problems{{Field: "payload", Message: "is not valid JSON"}}},
		{"trailing garbage", `{"email":"a"} x`, Problems{{Field: "payload", Message: "is not valid JSON"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ev.ValidatePayload([]byte(c.payload)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("ValidatePayload = %#v, want %#v", got, c.want)
			}
		})
	}
	t.Run("no schema accepts anything", func(t *testing.T) {
		objs := parseOK(t, "kind: AppEvent\nname: free\n", "acme")
		for _, pl := range []string{``, `1`, `{"a":`, `null`} {
			if p := objs[0].(*workflow.AppEvent).ValidatePayload([]byte(pl)); p != nil {
				t.Errorf("ValidatePayload(%q) = %v", pl, p)
			}
		}
	})
}

type Problems = workflow.Problems

func TestAppEventSchemaViolations(t *testing.T) {
	ev := schemaEvent(t)
	cases := []struct {
		name    string
		payload string
		want    map[string]string // field -> message fragment
	}{
		{"missing required", `{"count":2}`, map[string]string{"payload": "email"}},
		{"wrong type and minimum", `{"email":5,"count":0}`, map[string]string{"payload.email": "string", "payload.count": "1"}},
		{"not an object", `[1]`, map[string]string{"payload": "object"}},
		{"empty payload is null", ``, map[string]string{"payload": "null"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ev.ValidatePayload([]byte(c.payload))
			if len(p) != len(c.want) {
				t.Fatalf("problems = %v, want %d", p, len(c.want))
			}
			for _, x := range p {
				frag, ok := c.want[x.Field]
				if !ok {
					t.Errorf("unexpected problem %+v", x)
					continue
				}
				if !strings.Contains(x.Message, frag) {
					t.Errorf("problem %+v does not mention %q", x, frag)
				}
			}
		})
	}
	direct := &workflow.AppEvent{Project: "p", Name: "n", Schema: map[string]any{"type": "string", "maxLength": 3}}
	if err := direct.Compile(); err != nil {
		t.Fatal(err)
	}
	if p := direct.ValidatePayload([]byte(`"abcd"`)); len(p) != 1 || p[0].Field != "payload" {
		t.Errorf("problems = %v", p)
	}
}

func TestAppEventCompileDirect(t *testing.T) {
	ev := &workflow.AppEvent{Project: "p", Name: "n", Schema: map[string]any{"type": "string", "maxLength": 3}}
	if err := ev.Compile(); err != nil {
		t.Fatal(err)
	}
	if p := ev.ValidatePayload([]byte(`"abc"`)); p != nil {
		t.Errorf("problems = %v", p)
	}
	bad := &workflow.AppEvent{Project: "P", Name: " ", Schema: map[string]any{"$ref": "mem://nowhere.json"}}
	err := bad.Compile()
	var p workflow.Problems
	if !errors.As(err, &p) {
		t.Fatalf("Compile = %v", err)
	}
	if got := fields(p); !reflect.DeepEqual(got, []string{"project", "name", "schema"}) {
		t.Errorf("fields = %v", got)
	}
}

func ExampleParse() {
	objs, err := workflow.Parse([]byte("kind: AppEvent\nname: Contact Created\n"), "acme")
	fmt.Println(len(objs), err, objs[0].DocKind(), objs[0].DocName())
	// Output: 1 <nil> AppEvent Contact Created
}

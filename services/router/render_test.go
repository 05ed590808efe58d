package router

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// compileStep builds one compiled step the way applying a workflow does.
func compileStep(t *testing.T, doc string) *workflow.Step {
	t.Helper()
	objs, err := workflow.Parse([]byte(`
kind: Workflow
project: p
id: w
trigger: {type: request}
steps:
`+doc), "p")
	if err != nil {
		t.Fatal(err)
	}
	return objs[0].(*workflow.Workflow).Steps[0]
}

func TestRenderResponse(t *testing.T) {
	env := map[string]any{
		"trigger": map[string]any{"request": map[string]any{"body": map[string]any{"n": 3.0, "s": "x", "code": "201"}}},
		"user":    map[string]any{"id": "u1"}, "credential": map[string]any{}, "steps": map[string]any{}, "run": map[string]any{},
	}
	for _, tc := range []struct {
		name, step  string
		status      int
		body, ctype string
		err         string
	}{
		{"default status, json", `  - {id: r, type: response, json: {n: "{{ trigger.request.body.n }}", u: "{{ user.id }}"}}`,
			http.StatusOK, `{"n":3,"u":"u1"}`, "application/json", ""},
		{"templated status from a string", `  - {id: r, type: response, status: "{{ trigger.request.body.code }}", body: "hi {{ user.id }}"}`,
			http.StatusCreated, "hi u1", "text/plain; charset=utf-8", ""},
		{"explicit content type kept", `  - {id: r, type: response, status: 202, headers: {content-type: text/csv}, body: "a,b"}`,
			http.StatusAccepted, "a,b", "text/csv", ""},
		{"status not a number", `  - {id: r, type: response, status: "{{ trigger.request.body.s }}"}`, 0, "", "", "not a number"},
		{"status out of range", `  - {id: r, type: response, status: "{{ trigger.request.body.n * 1000 }}"}`, 0, "", "", "not an HTTP status"},
		{"1xx status from a template", `  - {id: r, type: response, status: "{{ 101 }}"}`, 0, "", "", "200-599"},
		{"expression fails at run time", `  - {id: r, type: response, json: {x: "{{ trigger.request.body.s.a.b }}"}}`, 0, "", "", "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := renderResponse(env, compileStep(t, tc.step))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Status != tc.status || string(rep.Body) != tc.body || rep.Headers["Content-Type"] != tc.ctype {
				t.Fatalf("got %d %q %q, want %d %q %q", rep.Status, rep.Body, rep.Headers["Content-Type"], tc.status, tc.body, tc.ctype)
			}
		})
	}
}

func TestResponseBody(t *testing.T) {
	if v := responseBody("application/json; charset=utf-8", []byte(`{"a":1}`)); v.(map[string]any)["a"] != 1.0 {
		t.Fatalf("json body: %#v", v)
	}
	if v := responseBody("application/json", []byte(`not json`)); v != "not json" {
		t.Fatalf("broken json kept as text: %#v", v)
	}
	if v := responseBody("text/plain", nil); v != nil {
		t.Fatalf("empty body: %#v", v)
	}
}

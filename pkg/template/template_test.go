package template_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// env is what a run evaluates templates over, decoded from JSON as the
// executor does (numbers are float64).
func env(t *testing.T) map[string]any {
	t.Helper()
	var e map[string]any
	err := json.Unmarshal([]byte(`{
		"trigger": {"name": "Contact Created", "payload": {
			"count": 3, "big": 12345678901234567890, "ratio": 0.5, "ok": true,
			"email": "a@b.c", "nothing": null,
			"tags": ["x", "y"], "obj": {"k": "v", "n": 1}, "empty": "", "zero": 0}},
		"user": {"id": "u1", "metadata": {"tz": "Europe/Paris"}},
		"credential": {"id": "c1"},
		"steps": {"create": {"status": 201, "body": {"id": "abc"}}},
		"run": {"id": "run_1"}
	}`), &e)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func compile(t *testing.T, v any) *template.Template {
	t.Helper()
	tp, err := template.Compile(v)
	if err != nil {
		t.Fatalf("Compile(%#v): %v", v, err)
	}
	return tp
}

func TestStaticValuesUntouched(t *testing.T) {
	cases := []struct {
		name string
		in   any
	}{
		{"string", "hello"},
		{"string with single braces", "a { b } c }}"},
		{"number", 42.5},
		{"int", 7},
		{"bool", true},
		{"nil", nil},
		{"map", map[string]any{"a": "b", "n": 1.0, "nested": map[string]any{"l": []any{"x", 2.0}}}},
		{"list", []any{"a", 1.0, false, nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp := compile(t, c.in)
			if !tp.Static() {
				t.Errorf("Static() = false for %#v", c.in)
			}
			got, err := tp.Eval(env(t))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.in) {
				t.Errorf("Eval = %#v, want %#v", got, c.in)
			}
		})
	}
}

func TestNilTemplateEvalsToNil(t *testing.T) {
	var tp *template.Template
	v, err := tp.Eval(nil)
	if v != nil || err != nil {
		t.Fatalf("nil template Eval = %v, %v", v, err)
	}
}

func TestSingleExpressionKeepsType(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want any
	}{
		{"number", "{{ trigger.payload.count }}", 3.0},
		{"number no spaces", "{{trigger.payload.count}}", 3.0},
		{"arithmetic", "{{ trigger.payload.count * 2 }}", 6.0},
		{"int literal", "{{ 1 + 2 }}", 3},
		{"bool", "{{ trigger.payload.ok }}", true},
		{"comparison", "{{ trigger.payload.count > 2 }}", true},
		{"map", "{{ trigger.payload.obj }}", map[string]any{"k": "v", "n": 1.0}},
		{"list", "{{ trigger.payload.tags }}", []any{"x", "y"}},
		{"null", "{{ trigger.payload.nothing }}", nil},
		{"string", "{{ user.id }}", "u1"},
		{"steps", "{{ steps.create.body.id }}", "abc"},
		{"run", "{{ run.id }}", "run_1"},
		{"credential", "{{ credential.id }}", "c1"},
		{"missing key is nil", "{{ trigger.payload.absent }}", nil},
		{"missing top-level field is nil", "{{ trigger.nope }}", nil},
		{"missing key in nil-safe chain", "{{ trigger.payload.absent?.deeper }}", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp := compile(t, c.src)
			if tp.Static() {
				t.Error("Static() = true for an expression")
			}
			got, err := tp.Eval(env(t))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Eval = %#v (%T), want %#v (%T)", got, got, c.want, c.want)
			}
		})
	}
}

func TestInterpolation(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want string
	}{
		{"string", "Hello {{ user.id }}!", "Hello u1!"},
		{"two expressions", "{{ user.id }}/{{ credential.id }}", "u1/c1"},
		{"adjacent", "{{ user.id }}{{ credential.id }}", "u1c1"},
		{"surrounding space makes a string", " {{ trigger.payload.count }}", " 3"},
		{"integral float without decimals", "n={{ trigger.payload.count }}", "n=3"},
		{"fraction", "r={{ trigger.payload.ratio }}", "r=0.5"},
		{"large number without exponent", "big={{ trigger.payload.big }}", "big=12345678901234567000"},
		{"int", "i={{ 40 + 2 }}", "i=42"},
		{"bool", "ok={{ trigger.payload.ok }}", "ok=true"},
		{"nil as empty", "[{{ trigger.payload.nothing }}]", "[]"},
		{"missing as empty", "[{{ trigger.payload.absent }}]", "[]"},
		{"map as JSON", "obj={{ trigger.payload.obj }}", `obj={"k":"v","n":1}`},
		{"list as JSON", "tags={{ trigger.payload.tags }}", `tags=["x","y"]`},
		{"event name with space", "event: {{ trigger.name }}", "event: Contact Created"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp := compile(t, c.src)
			got, err := tp.Eval(env(t))
			if err != nil {
				t.Fatal(err)
			}
			s, ok := got.(string)
			if !ok {
				t.Fatalf("Eval = %#v (%T), want a string", got, got)
			}
			if s != c.want {
				t.Errorf("Eval = %q, want %q", s, c.want)
			}
			es, err := tp.EvalString(env(t))
			if err != nil || es != c.want {
				t.Errorf("EvalString = %q, %v; want %q", es, err, c.want)
			}
		})
	}
}

func TestEvalStringFormatsTypedValues(t *testing.T) {
	cases := []struct {
		src, want string
	}{
		{"{{ trigger.payload.count }}", "3"},
		{"{{ trigger.payload.obj }}", `{"k":"v","n":1}`},
		{"{{ trigger.payload.nothing }}", ""},
		{"{{ trigger.payload.ok }}", "true"},
		{"plain", "plain"},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			got, err := compile(t, c.src).EvalString(env(t))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("EvalString = %q, want %q", got, c.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, ""},
		{"string", "s", "s"},
		{"true", true, "true"},
		{"false", false, "false"},
		{"int", 12, "12"},
		{"int64", int64(-9000000000), "-9000000000"},
		{"float integral", 1e6, "1000000"},
		{"float huge", 1e21, "1000000000000000000000"},
		{"float tiny", 0.000001, "0.000001"},
		{"float fraction", 2.25, "2.25"},
		{"json.Number", json.Number("1e3"), "1e3"},
		{"map", map[string]any{"b": 1, "a": "x"}, `{"a":"x","b":1}`},
		{"list", []any{1, "a", nil}, `[1,"a",null]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := template.Format(c.in); got != c.want {
				t.Errorf("Format(%#v) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestNestedTemplates(t *testing.T) {
	in := map[string]any{
		"static": "keep",
		"properties": map[string]any{
			"email": "{{ trigger.payload.email }}",
			"count": "{{ trigger.payload.count }}",
			"label": "n={{ trigger.payload.count }}",
			"deep":  map[string]any{"ok": "{{ trigger.payload.ok }}", "lit": 5.0},
		},
		"list": []any{"{{ user.id }}", "lit", []any{"{{ trigger.payload.count + 1 }}"}, map[string]any{"x": "{{ credential.id }}"}},
	}
	tp := compile(t, in)
	if tp.Static() {
		t.Fatal("Static() = true for a tree with expressions")
	}
	got, err := tp.Eval(env(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"static": "keep",
		"properties": map[string]any{
			"email": "a@b.c",
			"count": 3.0,
			"label": "n=3",
			"deep":  map[string]any{"ok": true, "lit": 5.0},
		},
		"list": []any{"u1", "lit", []any{4.0}, map[string]any{"x": "c1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Eval =\n%#v\nwant\n%#v", got, want)
	}
	// Evaluating must not alter the template: a second run over another
	// env gets its own values.
	e2 := env(t)
	e2["user"] = map[string]any{"id": "u2"}
	got2, err := tp.Eval(e2)
	if err != nil {
		t.Fatal(err)
	}
	if l := got2.(map[string]any)["list"].([]any)[0]; l != "u2" {
		t.Errorf("second Eval list[0] = %v, want u2", l)
	}
	if l := got.(map[string]any)["list"].([]any)[0]; l != "u1" {
		t.Errorf("first result changed after second Eval: list[0] = %v", l)
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name string
		in   any
		// every fragment must appear in the error
		want []string
	}{
		{"unknown variable", map[string]any{"a": map[string]any{"b": "{{ foo.bar }}"}}, []string{"a.b:", "foo"}},
		{"unclosed", map[string]any{"url": "https://x/{{ user.id"}, []string{"url:", "unclosed {{"}},
		{"syntax error", map[string]any{"json": map[string]any{"n": "{{ trigger.payload.count + }}"}}, []string{"json.n:", "trigger.payload.count +"}},
		{"in list", map[string]any{"l": []any{"ok", "{{ nope }}"}}, []string{"l[1]:", "nope"}},
		{"empty expression", map[string]any{"e": "x {{ }}"}, []string{"e:", "empty expression"}},
		{"second of two", map[string]any{"s": "{{ user.id }} and {{ bogus.x }}"}, []string{"s:", "bogus"}},
		{"top-level unknown", "{{ secret }}", []string{"secret"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp, err := template.Compile(c.in)
			if err == nil {
				t.Fatalf("Compile succeeded (%v), want error", tp)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCompileExprAndBool(t *testing.T) {
	cases := []struct {
		src  string
		want bool
	}{
		{"true", true},
		{"false", false},
		{"nil", false},
		{"0", false},
		{"1", true},
		{"-1", true},
		{"0.0", false},
		{"0.5", true},
		{`""`, false},
		{`"x"`, true},
		{"[]", false},
		{"[0]", true},
		{"{}", false},
		{`{"a": 1}`, true},
		{"trigger.payload.zero", false},
		{"trigger.payload.count", true},
		{"trigger.payload.empty", false},
		{"trigger.payload.email", true},
		{"trigger.payload.nothing", false},
		{"trigger.payload.absent", false},
		{"trigger.payload.tags", true},
		{"trigger.payload.obj", true},
		{"trigger.payload.count > 2 && user.id == 'u1'", true},
		{"trigger.payload.count > 5", false},
		{"{{ trigger.payload.ok }}", true},
		{"  {{ trigger.payload.ok == false }}  ", false},
		{"steps.create.status == 201", true},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			e, err := template.CompileExpr(c.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Bool(env(t))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("Bool(%s) = %v, want %v", c.src, got, c.want)
			}
		})
	}
}

func TestCompileExprString(t *testing.T) {
	e, err := template.CompileExpr("  {{  user.id == 'u1' }} ")
	if err != nil {
		t.Fatal(err)
	}
	if e.String() != "user.id == 'u1'" {
		t.Errorf("String() = %q", e.String())
	}
}

func TestCompileExprErrors(t *testing.T) {
	for _, src := range []string{"", "   ", "{{ }}", "foo.bar", "user.id ==", "1 +* 2"} {
		t.Run(src, func(t *testing.T) {
			if _, err := template.CompileExpr(src); err == nil {
				t.Errorf("CompileExpr(%q) succeeded, want error", src)
			}
		})
	}
}

func TestEvalRuntimeError(t *testing.T) {
	e, err := template.CompileExpr("trigger.payload.count / 0 > 1 && trigger.payload.obj.k.x.y == 1")
	if err != nil {
		t.Fatal(err)
	}
	// Field access on a string fails at run time, and the error names the
	// expression.
	_, err = e.Eval(env(t))
	if err == nil {
		t.Fatal("Eval succeeded, want error")
	}
	if !strings.Contains(err.Error(), "trigger.payload.obj.k.x.y") {
		t.Errorf("error %q does not name the expression", err)
	}
	if _, err := e.Bool(env(t)); err == nil {
		t.Error("Bool succeeded, want error")
	}
	if _, err := compile(t, map[string]any{"x": "a {{ trigger.payload.obj.k.x.y }}"}).Eval(env(t)); err == nil {
		t.Error("Template.Eval succeeded, want error")
	}
	if _, err := compile(t, []any{"{{ trigger.payload.obj.k.x.y }}"}).EvalString(env(t)); err == nil {
		t.Error("Template.EvalString succeeded, want error")
	}
}

func TestTruthy(t *testing.T) {
	cases := []struct {
		in   any
		want bool
	}{
		{nil, false}, {false, false}, {true, true},
		{"", false}, {"0", true},
		{0, false}, {3, true}, {int64(0), false}, {int64(-2), true},
		{0.0, false}, {0.1, true},
		{[]any{}, false}, {[]any{nil}, true},
		{map[string]any{}, false}, {map[string]any{"a": nil}, true},
		{struct{}{}, true},
	}
	for _, c := range cases {
		if got := template.Truthy(c.in); got != c.want {
			t.Errorf("Truthy(%#v) = %v, want %v", c.in, got, c.want)
		}
	}
}

package workflow_test

import (
	"strings"
	"testing"
)

// TestDefect5ApplyRejectsUnboundedExpressions: an expression that exceeds
// an evaluation limit on every run is an apply-time problem on its field,
// not a run that fails (or, before the limits, exhausts memory).
func TestDefect5ApplyRejectsUnboundedExpressions(t *testing.T) {
	for _, c := range []struct{ name, step, field string }{
		{"repeat", `  - {id: s, type: emit, event: E, payload: {x: '{{ repeat("a", 1e9) }}'}}` + "\n", "steps[0].payload"},
		{"range in map", `  - {id: s, type: emit, event: E, payload: {x: '{{ map(1..100000000, #) }}'}}` + "\n", "steps[0].payload"},
		{"range in if", `  - {id: s, type: emit, event: E, if: 'len(1..1e8) > 0'}` + "\n", "steps[0].if"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pe := parseErr(t, wf("{type: app_event, event: E}", c.step), "acme")
			p := pe.Docs[0].Problems
			if len(p) != 1 || !strings.HasPrefix(p[0].Field, c.field) || !strings.Contains(p[0].Message, "limit") {
				t.Fatalf("problems = %+v, want one on %s naming the limit", p, c.field)
			}
		})
	}
}

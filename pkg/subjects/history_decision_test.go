package subjects_test

import (
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

func TestHistoryDecisionProject(t *testing.T) {
	for _, tc := range []struct {
		name, subject, project string
		ok                     bool
	}{
		{"built by HistoryDecisionQuery", subjects.HistoryDecisionQuery("acme"), "acme", true},
		{"no project", "sb.api.history..decision", "", false},
		{"two tokens for a project", "sb.api.history.a.b.decision", "", false},
		{"a run-state query", subjects.HistoryRunQuery("acme", "run_x"), "", false},
		{"another prefix", "sb.history.acme.decision", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := subjects.HistoryDecisionProject(tc.subject)
			if p != tc.project || ok != tc.ok {
				t.Fatalf("HistoryDecisionProject(%q) = %q, %v; want %q, %v", tc.subject, p, ok, tc.project, tc.ok)
			}
		})
	}
}

package subjects

import "strings"

// HistoryDecisionQuery is the request subject on which the run-history read
// model answers with the merged decision record of an event of project p,
// for roles that hold no read model of their own (the scheduler's run
// counts). The event id is the request's data, not a token: event ids are
// free-form and need not be subject tokens.
func HistoryDecisionQuery(project string) string { return "sb.api.history." + project + ".decision" }

// HistoryDecisionQueryAll is the wildcard the history role serves.
const HistoryDecisionQueryAll = "sb.api.history.*.decision"

// HistoryDecisionProject returns the project token of a HistoryDecisionQuery
// subject; ok is false for any other subject.
func HistoryDecisionProject(subject string) (project string, ok bool) {
	rest, found := strings.CutPrefix(subject, "sb.api.history.")
	if !found {
		return "", false
	}
	project, found = strings.CutSuffix(rest, ".decision")
	if !found || project == "" || strings.Contains(project, ".") {
		return "", false
	}
	return project, true
}

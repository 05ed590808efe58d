// Package subjects is the one place where Switchboard's NATS subjects, stream
// names and KV bucket names are defined. Every other package builds subjects
// through it, and the README documents the same table.
//
// Subject tokens built from user data (project ids, workflow ids) are
// restricted at apply time to [a-z0-9_-]; free-form names such as event names
// (which may contain spaces or dots) are carried in the envelope and never
// become subject tokens. Token escapes such a value when one is needed anyway.
package subjects

import (
	"encoding/base64"
	"strings"
)

// Streams.
const (
	StreamTriggers  = "TRIGGERS"
	StreamRuns      = "RUNS"
	StreamRunEvents = "RUN_EVENTS"
	StreamRunState  = "RUN_STATE"
	StreamDead      = "DEAD"
)

// KV buckets.
const (
	BucketCatalog = "sb_catalog"
	// BucketDirectory holds connected users, credentials and their index
	// keys (pkg/directory); BucketSecrets their sealed secrets.
	BucketDirectory = "sb_directory"
	BucketSecrets   = "sb_secrets"
	// BucketDedupe holds long-lived producer dedupe claims (pkg/trigger),
	// each with its own TTL.
	BucketDedupe = "sb_dedupe"
	// BucketSchedules holds the scheduler's state: the last fired nominal
	// time per (project, workflow, zone), shared by every replica.
	BucketSchedules = "sb_schedules"
)

// Object store buckets.
const (
	// BucketBlobs holds values too large to keep inline in a record
	// (pkg/blob); it ages out with RUN_EVENTS, whose records reference it.
	BucketBlobs = "sb_blobs"
)

// Wildcards bound to the streams.
const (
	TriggersAll  = "sb.trigger.>"
	RunsAll      = "sb.run.>"
	RunEventsAll = "sb.history.>"
	RunStateAll  = "sb.state.>"
	DeadAll      = "sb.dead.>"
	// RunsAtAll holds delayed runs in the RUNS stream: one JetStream
	// schedule message (@at) per run, which the server fires onto the run's
	// subject. A prefix apart from sb.run so no executor consumes the
	// schedule itself.
	RunsAtAll = "sb.runat.>"
)

// Kind tokens used in trigger subjects.
const (
	KindAppEvent = "app_event"
	KindRequest  = "request"
)

// Trigger is the subject a trigger event of project p and kind k is published
// on: sb.trigger.<project>.<kind>.<key>. The key only spreads load and helps
// filtering; the router reads everything it needs from the envelope. An
// event stored with its dedupe key in the subject (trigger.Dedupe.InSubject:
// the webhook receiver's) has one token more, so a filter on one key's
// subject also takes its ".>".
func Trigger(project, kind, key string) string {
	return "sb.trigger." + project + "." + kind + "." + Token(key)
}

// TriggersOfProject is the wildcard of every trigger subject of project p.
func TriggersOfProject(project string) string { return "sb.trigger." + project + ".>" }

// TriggerProject returns the project token of a trigger subject.
func TriggerProject(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) < 5 || parts[0] != "sb" || parts[1] != "trigger" {
		return "", false
	}
	return parts[2], true
}

// Run is the subject a run of workflow w is published on in the RUNS stream.
func Run(project, workflow string) string { return "sb.run." + project + "." + workflow }

// RunAt is the subject of the schedule message that publishes run runID
// later (spread schedule runs); runID is a run id, a plain token.
func RunAt(project, runID string) string { return "sb.runat." + project + "." + runID }

// RunsOfProject is the wildcard of every run subject of project p.
func RunsOfProject(project string) string { return "sb.run." + project + ".>" }

// RunParts splits a run subject (Run) into its project and workflow; ok is
// false for anything else a publisher may have put under sb.run.<p>.>.
func RunParts(subject string) (project, workflow string, ok bool) {
	rest, found := strings.CutPrefix(subject, "sb.run.")
	if !found {
		return "", "", false
	}
	project, workflow, found = strings.Cut(rest, ".")
	if !found || project == "" || workflow == "" || strings.Contains(workflow, ".") {
		return "", "", false
	}
	return project, workflow, true
}

// RunHistory is the subject of project p's run snapshots in RUN_EVENTS, the
// history log the read model follows. It is one subject per project, not
// per run: the server keeps an index entry per subject in memory.
func RunHistory(project string) string { return "sb.history." + project + ".run" }

// Decisions is the subject of project p's decision records in RUN_EVENTS.
func Decisions(project string) string { return "sb.history." + project + ".decision" }

// RunState is the subject of a run's state in RUN_STATE. The last (only)
// message on it is the run's current state, which is what a redelivered
// run resumes from.
func RunState(project, runID string) string { return "sb.state." + project + ".run." + runID }

// HistoryRunQuery is the request subject on which the run-history read
// model answers whether run runID of project p finished (for the executor,
// once a finished run's state has left RUN_STATE).
func HistoryRunQuery(project, runID string) string {
	return "sb.api.history." + project + ".run." + runID
}

// HistoryRunQueryAll is the wildcard the read model serves.
const HistoryRunQueryAll = "sb.api.history.*.run.*"

// DeadRun is the subject of a run that exhausted its retries.
func DeadRun(project, workflow string) string { return "sb.dead." + project + ".run." + workflow }

// DeadTrigger is the subject of a trigger message the router could not decode.
func DeadTrigger(project string) string { return "sb.dead." + Token(project) + ".trigger" }

// DeadOfProject is the wildcard of every dead letter of project p, runs and
// triggers: what the dead-letter API lists for one project.
func DeadOfProject(project string) string { return "sb.dead." + Token(project) + ".>" }

// DeadParts splits a dead-letter subject into its project and kind ("run"
// or "trigger") and, for a run, its workflow; ok is false for anything else.
func DeadParts(subject string) (project, kind, workflow string, ok bool) {
	rest, found := strings.CutPrefix(subject, "sb.dead.")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	switch {
	case len(parts) == 2 && parts[1] == "trigger" && parts[0] != "":
		return parts[0], "trigger", "", true
	case len(parts) == 3 && parts[1] == "run" && parts[0] != "" && parts[2] != "":
		return parts[0], "run", parts[2], true
	}
	return "", "", "", false
}

// Function is the subject a function step sends its request to.
func Function(project, name string) string { return "sb.fn." + project + "." + name }

// ReplyPrefix is the wildcard inbox prefix of one ingress instance; a
// synchronous caller's reply subject is ReplyPrefix(instance)+"."+requestID.
func ReplyPrefix(instance string) string { return "_INBOX.sb.ingress." + instance }

// Token makes s safe as a single subject token. Values that already are plain
// tokens are kept as they are, so subjects stay readable; anything else is
// base64url-encoded with a "=" prefix (valid in subjects and KV keys), which cannot collide with a plain token.
func Token(s string) string {
	if s != "" && isPlainToken(s) {
		return s
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

func isPlainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

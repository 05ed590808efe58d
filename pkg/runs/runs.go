// Package runs defines the records Switchboard writes to the RUN_EVENTS
// stream — run snapshots and decision records — and the deterministic run id.
//
// Every run event is a full snapshot of the run, not a delta: the last message
// on a run's subject is its current state. That makes resuming a redelivered
// run one direct get, and keeps every read model a plain upsert.
package runs

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strings"
	"time"
)

// Status of a run.
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

// Terminal reports whether no further transition follows.
func (s Status) Terminal() bool { return s == StatusSucceeded || s == StatusFailed }

// Step statuses.
const (
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped"
)

// Step is the recorded outcome of one step.
type Step struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Status     string    `json:"status"`
	Input      any       `json:"input,omitempty"`
	Output     any       `json:"output,omitempty"`
	Error      string    `json:"error,omitempty"`
	Attempts   int       `json:"attempts"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Run is a snapshot of one run.
type Run struct {
	ID         string          `json:"id"`
	Project    string          `json:"project"`
	Workflow   string          `json:"workflow"`
	User       string          `json:"user"`
	Credential string          `json:"credential,omitempty"`
	EventID    string          `json:"eventId"`
	Status     Status          `json:"status"`
	Error      string          `json:"error,omitempty"`
	Steps      []Step          `json:"steps"`
	Trigger    json.RawMessage `json:"trigger,omitempty"`
	ReplayOf   string          `json:"replayOf,omitempty"`
	// Pending is the step being retried: its last attempt failed and the
	// next one is due at RetryAt.
	Pending *PendingStep `json:"pending,omitempty"`
	// Seq grows by one with every snapshot of the run; readers keep the highest.
	Seq        int       `json:"seq"`
	Deliveries int       `json:"deliveries,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// PendingStep is a step between two attempts.
type PendingStep struct {
	Step      string    `json:"step"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error"`
	StartedAt time.Time `json:"startedAt"`
	RetryAt   time.Time `json:"retryAt"`
}

// StepByID returns the recorded step with id, if any.
func (r *Run) StepByID(id string) (*Step, bool) {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i], true
		}
	}
	return nil, false
}

// Outcomes of a decision candidate.
const (
	OutcomeRan     = "ran"
	OutcomeSkipped = "skipped"
)

// Reasons a candidate was skipped (decision records).
const (
	ReasonNotEnabled        = "not_enabled"
	ReasonNoCredential      = "no_credential"
	ReasonCredentialInvalid = "credential_invalid"
	ReasonUnknownUser       = "unknown_user"
	ReasonCredentialUnknown = "credential_not_found"
	ReasonValidationFailed  = "validation_failed"
	// ReasonWorkflowNotFound: a request or replay names no such workflow.
	ReasonWorkflowNotFound = "workflow_not_found"
	// ReasonCredentialAmbiguous: a request trigger's user has several usable
	// credentials and the caller did not choose one.
	ReasonCredentialAmbiguous = "credential_ambiguous"
	// ReasonHopLimit: the trigger was emitted too many hops deep.
	ReasonHopLimit = "hop_limit"
)

// Candidate is one (workflow, user, credential) the router considered.
type Candidate struct {
	Workflow   string `json:"workflow"`
	User       string `json:"user,omitempty"`
	Credential string `json:"credential,omitempty"`
	Outcome    string `json:"outcome"`
	RunID      string `json:"runId,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	// Zone is the time zone a schedule run follows and ZoneReason why
	// (pkg/schedule ResolveZone: zone_fixed, zone_from_metadata, or the
	// fallback's zone_missing / zone_not_string / zone_invalid).
	Zone       string `json:"zone,omitempty"`
	ZoneReason string `json:"zoneReason,omitempty"`
	// At is when a delayed run starts (a schedule's spread and jitter);
	// zero means at once.
	At time.Time `json:"at,omitzero"`
	// After is the run this one waits for (a schedule's overlap
	// buffer_one): the executor starts it once that run is no longer in
	// flight.
	After string `json:"after,omitempty"`
}

// Decision is the record of what the router did with one trigger event.
//
// It refers to the trigger (TriggerSeq, its position in TRIGGERS) instead of
// carrying it, and is split into pages of at most a page size of
// candidates, so a fan-out to many users never makes a record too big to
// publish. Every page carries the summary of the whole decision.
type Decision struct {
	EventID string `json:"eventId"`
	Project string `json:"project"`
	Kind    string `json:"kind"`
	Name    string `json:"name,omitempty"`
	User    string `json:"user,omitempty"`
	// TriggerSeq is the trigger's sequence in the TRIGGERS stream.
	TriggerSeq uint64 `json:"triggerSeq,omitempty"`
	// Trigger is the trigger itself; records written before decisions were
	// paged carry it, and a read model may fill it in from TriggerSeq.
	Trigger json.RawMessage `json:"trigger,omitempty"`
	Summary Summary         `json:"summary"`
	// Page is this record's index among Summary.Pages (from 0).
	Page       int         `json:"page,omitempty"`
	Candidates []Candidate `json:"candidates"`
	// Error is set when the event could not be routed at all.
	Error      string    `json:"error,omitempty"`
	ReceivedAt time.Time `json:"receivedAt"`
	DecidedAt  time.Time `json:"decidedAt"`
}

// Summary counts a decision's candidates.
type Summary struct {
	Candidates int `json:"candidates"`
	Ran        int `json:"ran"`
	// Skipped counts skipped candidates by reason.
	Skipped map[string]int `json:"skipped,omitempty"`
	Pages   int            `json:"pages"`
}

// DefaultDecisionPage is the page size of decision records when the caller
// has no budget of its own.
const DefaultDecisionPage = 500

// Paged splits cands into the pages of d (d's other fields are copied into
// every page); a decision without candidates is one page.
func (d *Decision) Paged(cands []Candidate, pageSize int) []*Decision {
	if pageSize <= 0 {
		pageSize = DefaultDecisionPage
	}
	sum := Summary{Candidates: len(cands), Pages: max(1, (len(cands)+pageSize-1)/pageSize)}
	for _, c := range cands {
		if c.Outcome == OutcomeRan {
			sum.Ran++
			continue
		}
		if sum.Skipped == nil {
			sum.Skipped = map[string]int{}
		}
		sum.Skipped[c.Reason]++
	}
	pages := make([]*Decision, sum.Pages)
	for i := range pages {
		p := *d
		p.Summary, p.Page = sum, i
		p.Candidates = cands[i*pageSize : min(len(cands), (i+1)*pageSize)]
		pages[i] = &p
	}
	return pages
}

// Header names on RUN_EVENTS messages.
const (
	HeaderRecord   = "Sb-Record"
	RecordRun      = "run"
	RecordDecision = "decision"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// ID is the deterministic run id of (trigger event, workflow, user,
// credential): republishing the same decision yields the same id, which
// JetStream's Nats-Msg-Id dedupe then absorbs.
func ID(eventID, workflow, user, credential string) string {
	h := sha256.New()
	for _, s := range []string{eventID, workflow, user, credential} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "run_" + idEncoding.EncodeToString(h.Sum(nil)[:15])
}

// RequestRunID is the id of the one run a request trigger starts. A request
// runs at most once, so its id leaves the credential out: ingress knows it
// before the router has chosen the credential, and can answer with it
// whatever happens next (a timeout, a repeat with the same Idempotency-Key).
func RequestRunID(eventID, workflow, user string) string { return ID(eventID, workflow, user, "") }

// ValidID reports whether s has the shape of a run id (safe as a subject token).
func ValidID(s string) bool {
	if !strings.HasPrefix(s, "run_") || len(s) != 28 {
		return false
	}
	for _, c := range s[4:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'v') {
			return false
		}
	}
	return true
}

// Reply is what the executor publishes to a synchronous caller's inbox when
// the run reaches its response step (or fails to render it).
type Reply struct {
	RunID string `json:"runId"`
	// Decided marks the router's answer as soon as the trigger is decided:
	// the run started (RunID), or, with Error set, nothing runs and Status
	// says why (403, 404, 409). A caller that waits for the response gets
	// this first and the response later.
	Decided bool `json:"decided,omitempty"`
	// RunIDs are the runs an app event started (a decided reply to
	// ?wait=routed).
	RunIDs  []string          `json:"runIds,omitempty"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the response body; JSON-encoded as base64.
	Body []byte `json:"body,omitempty"`
	// Error is set when the response could not be produced, e.g.
	// "response_template_failed"; Message then explains it.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// StateAnswer is the run-history read model's answer to the executor's
// question "what is the state of this run?" (subjects.HistoryRunQuery).
type StateAnswer struct {
	// Run is the run's last state; nil when the read model has none.
	Run *Run `json:"run,omitempty"`
	// Error is set when the read model could not answer.
	Error string `json:"error,omitempty"`
}

// Package decide is the router's one place for deciding which workflows a
// trigger event starts, for which connected user and credential, and — for
// every candidate that does not run — why.
//
// There is one Decider per trigger kind, all listed in New; the router is
// the only caller, so a trigger is decided once, on one view of the config
// and the directory, and the decision record it writes is the answer. A kind
// without a decider is refused by Check with "not implemented".
package decide

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// ErrUnroutable marks an envelope that can never be routed, whatever the
// config says (no name, no user, a kind with no decider …). The router
// dead-letters such a message instead of retrying it.
var ErrUnroutable = errors.New("unroutable trigger")

// DefaultMaxHops is how deep an emit chain may go by default: a trigger
// emitted by a run of a trigger emitted by a run … stops after this many.
const DefaultMaxHops = 8

// Config is the part of the project configuration deciders read.
type Config interface {
	Workflow(project, id string) (*workflow.Workflow, bool)
	WorkflowsForEvent(project, name string) []*workflow.Workflow
	// AppEvent is the declaration of App Event name: its payload schema.
	AppEvent(project, name string) (*workflow.AppEvent, bool)
}

// Directory is the part of the connected-user directory deciders read.
// Lookups may go to storage; an error other than a not-found one means the
// trigger must be decided again later, never that a candidate is skipped.
type Directory interface {
	// User returns the connected user, or ok false if there is none.
	User(ctx context.Context, project, user string) (u *directory.User, ok bool, err error)
	// Credentials lists the user's credentials, ordered by id.
	Credentials(ctx context.Context, project, user string) ([]*directory.Credential, error)
}

// Decider decides the triggers of one kind.
type Decider interface {
	// Check reports, wrapped in ErrUnroutable, what makes ev impossible to
	// route (a missing field the kind needs); nil if it can be decided.
	Check(ev *sbv1.TriggerEvent) error
	// Decide lists every candidate (workflow × user × credential) with its
	// outcome. It returns an error only when it could not look something
	// up; the caller then decides the trigger again later.
	Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error)
}

// Options configure the deciders.
type Options struct {
	Config    Config
	Directory Directory
	// MaxHops stops emit chains (default DefaultMaxHops).
	MaxHops uint32
	// Enrollment is the directory's fan-out index; without it SCHEDULE
	// triggers have no decider.
	Enrollment Enrollment
	// Runs answers the schedule overlap check; without it every tick runs.
	Runs RunStates
	// Integrations and Accounts route INTEGRATION triggers (webhooks);
	// without both they are not routed.
	Integrations Integrations
	Accounts     Accounts
}

// Deciders holds the decider of every kind the router routes.
type Deciders struct {
	byKind  map[sbv1.Kind]Decider
	maxHops uint32
}

// New returns the deciders: the one list of trigger kinds the router knows.
func New(opts Options) (*Deciders, error) {
	if opts.Config == nil || opts.Directory == nil {
		return nil, errors.New("decide: Config and Directory are required")
	}
	if opts.MaxHops == 0 {
		opts.MaxHops = DefaultMaxHops
	}
	m := &matcher{cfg: opts.Config, dir: opts.Directory}
	d := &Deciders{
		maxHops: opts.MaxHops,
		byKind: map[sbv1.Kind]Decider{
			sbv1.Kind_APP_EVENT: appEvent{m},
			sbv1.Kind_REQUEST:   request{m},
		},
	}
	if opts.Enrollment != nil {
		d.byKind[sbv1.Kind_SCHEDULE] = scheduleTick{m: m, idx: opts.Enrollment, runs: opts.Runs, zones: &schedule.ZoneCache{}}
	}
	if opts.Integrations != nil && opts.Accounts != nil {
		d.byKind[sbv1.Kind_INTEGRATION] = integrationKind{m: m, cfg: opts.Integrations, accs: opts.Accounts}
		// An API Resource's webhooks are routed exactly like an integration's.
		d.byKind[sbv1.Kind_API_RESOURCE] = integrationKind{m: m, cfg: opts.Integrations, accs: opts.Accounts}
	}
	if opts.Integrations != nil {
		// Lifecycle triggers list the project's workflows as the
		// integration decider does.
		d.byKind[sbv1.Kind_INTEGRATION_ENABLED] = lifecycleKind{m: m, wfs: opts.Integrations, kind: sbv1.Kind_INTEGRATION_ENABLED}
		d.byKind[sbv1.Kind_LIFECYCLE] = lifecycleKind{m: m, wfs: opts.Integrations, kind: sbv1.Kind_LIFECYCLE}
	}
	return d, nil
}

// Check finds the kind's decider and lets it check ev.
func (d *Deciders) Check(ev *sbv1.TriggerEvent) error {
	if ev.Kind == sbv1.Kind_KIND_UNSPECIFIED {
		return fmt.Errorf("%w: kind is required", ErrUnroutable)
	}
	dc, ok := d.byKind[ev.Kind]
	if !ok {
		return fmt.Errorf("%w: not implemented: routing of %s triggers", ErrUnroutable, ev.Kind)
	}
	return dc.Check(ev)
}

// Decide decides ev with its kind's decider. A trigger deeper than the hop
// limit runs nothing: every candidate that would have run is recorded as
// skipped with ReasonHopLimit, so the chain's end is visible in the record.
func (d *Deciders) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	if err := d.Check(ev); err != nil {
		return nil, err
	}
	cands, err := d.byKind[ev.Kind].Decide(ctx, ev)
	if err != nil {
		return nil, err
	}
	d.hopLimit(ev, cands)
	if cands == nil {
		cands = []runs.Candidate{}
	}
	return cands, nil
}

// Emit takes one page of a decision's candidates while the decision is
// still being made; the page is the callee's to keep.
type Emit func(ctx context.Context, page []runs.Candidate) error

// Streamer is a Decider whose decision can be too large to hold at once (a
// schedule tick fanned out to a large zone): it hands its candidates to
// emit page by page as it finds them, so the router publishes a page's runs
// while the next page is read, and neither holds the whole fan-out.
type Streamer interface {
	DecideStream(ctx context.Context, ev *sbv1.TriggerEvent, emit Emit) error
}

// DecideStream decides ev, handing its candidates to emit in pages (one
// page for a kind that does not stream); the hop limit applies as in
// Decide. A decision with no candidate emits one empty page.
func (d *Deciders) DecideStream(ctx context.Context, ev *sbv1.TriggerEvent, emit Emit) error {
	if err := d.Check(ev); err != nil {
		return err
	}
	st, ok := d.byKind[ev.Kind].(Streamer)
	if !ok {
		cands, err := d.Decide(ctx, ev)
		if err != nil {
			return err
		}
		return emit(ctx, cands)
	}
	emitted := false
	err := st.DecideStream(ctx, ev, func(ctx context.Context, page []runs.Candidate) error {
		emitted = true
		d.hopLimit(ev, page)
		return emit(ctx, page)
	})
	if err == nil && !emitted {
		err = emit(ctx, []runs.Candidate{})
	}
	return err
}

// hopLimit turns the candidates that would run into ReasonHopLimit skips
// when ev is deeper than the hop limit.
func (d *Deciders) hopLimit(ev *sbv1.TriggerEvent, cands []runs.Candidate) {
	if ev.Hops <= d.maxHops {
		return
	}
	for i := range cands {
		if cands[i].Outcome == runs.OutcomeRan {
			cands[i].Outcome, cands[i].RunID, cands[i].Reason = runs.OutcomeSkipped, "", runs.ReasonHopLimit
			cands[i].Message = fmt.Sprintf("the trigger is %d hops deep (limit %d): an emit chain stops here", ev.Hops, d.maxHops)
		}
	}
}

// Answer is what a request trigger's caller gets when its decision runs
// nothing.
type Answer struct {
	Status  int
	Code    string
	Message string
}

// RequestAnswer turns a request trigger's candidates into its caller's
// answer; ok is false when a run starts (the run answers then).
func RequestAnswer(workflowID, user string, cands []runs.Candidate) (a Answer, ok bool) {
	reasons := make([]string, 0, len(cands))
	for _, c := range cands {
		switch c.Reason {
		case "":
			if c.Outcome == runs.OutcomeRan {
				return Answer{}, false
			}
		case runs.ReasonWorkflowNotFound:
			return Answer{http.StatusNotFound, runs.ReasonWorkflowNotFound, c.Message}, true
		case runs.ReasonCredentialAmbiguous:
			return Answer{http.StatusConflict, runs.ReasonCredentialAmbiguous, c.Message}, true
		}
		reasons = append(reasons, c.Reason+": "+c.Message)
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "no workflow matches")
	}
	return Answer{http.StatusForbidden, "workflow_not_enabled",
		fmt.Sprintf("workflow %s is not enabled for user %s (%s)", workflowID, user, strings.Join(reasons, "; "))}, true
}

// matcher is what the kinds share: turning workflows into candidates for
// one user.
type matcher struct {
	cfg Config
	dir Directory
}

// forUser lists the candidates of wfs for ev's user. A workflow with an
// integration runs once per VALID, enabled credential of the user for it
// (or only ev.Credential when set); one without an integration runs once for
// the user unless disabled for them.
func (m *matcher) forUser(ctx context.Context, ev *sbv1.TriggerEvent, wfs []*workflow.Workflow) ([]runs.Candidate, error) {
	if len(wfs) == 0 {
		return nil, nil
	}
	user, ok, err := m.dir.User(ctx, ev.Project, ev.User)
	if err != nil {
		return nil, fmt.Errorf("decide: user %s: %w", ev.User, err)
	}
	var creds []*directory.Credential
	if ok {
		for _, w := range wfs {
			if w.Integration != "" {
				if creds, err = m.dir.Credentials(ctx, ev.Project, ev.User); err != nil {
					return nil, fmt.Errorf("decide: credentials of %s: %w", ev.User, err)
				}
				break
			}
		}
	}
	out := make([]runs.Candidate, 0, len(wfs))
	for _, w := range wfs {
		base := runs.Candidate{Workflow: w.ID, User: ev.User}
		switch {
		case !ok:
			base.Outcome, base.Reason, base.Message = runs.OutcomeSkipped, runs.ReasonUnknownUser, "the user is not a connected user of this project"
			out = append(out, base)
		case w.Integration == "":
			if !user.Enabled(w) {
				base.Outcome, base.Reason, base.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow is not enabled for this user"
			} else {
				base.Outcome, base.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, ev.User, "")
			}
			out = append(out, base)
		default:
			out = append(out, credentialCandidates(ev, w, base, creds)...)
		}
	}
	return out, nil
}

func credentialCandidates(ev *sbv1.TriggerEvent, w *workflow.Workflow, base runs.Candidate, all []*directory.Credential) []runs.Candidate {
	var creds []*directory.Credential
	for _, cr := range all {
		if cr.Integration == w.Integration && (ev.Credential == "" || cr.ID == ev.Credential) {
			creds = append(creds, cr)
		}
	}
	if len(creds) == 0 {
		if ev.Credential != "" {
			base.Credential = ev.Credential
			base.Outcome, base.Reason = runs.OutcomeSkipped, runs.ReasonCredentialUnknown
			base.Message = fmt.Sprintf("the user has no %s credential %q", w.Integration, ev.Credential)
			return []runs.Candidate{base}
		}
		base.Outcome, base.Reason = runs.OutcomeSkipped, runs.ReasonNoCredential
		base.Message = fmt.Sprintf("the user has not connected %s", w.Integration)
		return []runs.Candidate{base}
	}
	sort.Slice(creds, func(i, j int) bool { return creds[i].ID < creds[j].ID })
	out := make([]runs.Candidate, 0, len(creds))
	for _, cr := range creds {
		c := base
		c.Credential = cr.ID
		switch {
		case cr.Status != directory.CredentialValid:
			c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonCredentialInvalid, "the credential's status is "+cr.Status
		case !cr.Enabled(w):
			c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow is not enabled for this credential"
		default:
			c.Outcome, c.RunID = runs.OutcomeRan, runs.ID(ev.Id, w.ID, ev.User, cr.ID)
		}
		out = append(out, c)
	}
	return out
}

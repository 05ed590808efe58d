package decide

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Enrollment is the directory's index of who could run a workflow, by
// integration, time zone and shard (pkg/directory).
type Enrollment interface {
	Enrollment(ctx context.Context, p, integration, zone string, shard int, after string, limit int) (directory.Page, error)
	// EnrollmentAll is a zone's whole enrollment in one read when it has at
	// most limit entries (ok false otherwise).
	EnrollmentAll(ctx context.Context, p, integration, zone string, limit int) (directory.Page, bool, error)
	Zones(ctx context.Context, p, integration string) ([]string, error)
}

// RunStates tells which of a set of runs are in flight (their last state
// is a checkpoint, not a final one), for the overlap policy; one call
// answers a whole page of candidates.
type RunStates interface {
	Running(ctx context.Context, project string, runIDs []string) (map[string]bool, error)
}

// Reasons of schedule candidates.
const (
	// ReasonOverlap: the user's run of an earlier tick is still running
	// and the overlap policy is skip.
	ReasonOverlap = "overlap_running"
	// ReasonOtherZone: a one-user tick named a zone the user is not in.
	ReasonOtherZone = "other_zone"
)

// enrollmentPage is how many index entries one read returns.
const enrollmentPage = 500

// smallZone is the most entries a zone may have to be read in one read
// by every shard of a tick (each keeping its own users) instead of walked
// shard by shard: walking the 64 shards' sub-shards costs hundreds of
// reads even for an empty zone.
const smallZone = directory.MaxPage

// overlapLookback is how many earlier ticks' runs the overlap check looks
// at: a run may outlast several intervals, and the tick right before may
// itself have been skipped while an older run still ran.
const overlapLookback = 3

// scheduleTick decides SCHEDULE triggers: one tick shard of one workflow in
// one zone becomes one run per enrolled (user, credential) of the zone in
// the directory shards the tick shard covers (s % shards == shard).
type scheduleTick struct {
	m     *matcher
	idx   Enrollment
	runs  RunStates
	zones *schedule.ZoneCache // every tick names its zone
}

func (scheduleTick) Check(ev *sbv1.TriggerEvent) error {
	t := ev.GetSchedule()
	switch {
	case t == nil:
		return fmt.Errorf("%w: schedule trigger without its tick", ErrUnroutable)
	case t.GetWorkflow() == "" && ev.Workflow == "":
		return fmt.Errorf("%w: schedule tick without workflow", ErrUnroutable)
	case t.GetNominalTime() == nil:
		return fmt.Errorf("%w: schedule tick without nominal time", ErrUnroutable)
	case t.GetShards() > directory.Shards || (t.GetShards() > 0 && t.GetShard() >= t.GetShards()):
		return fmt.Errorf("%w: schedule tick shard %d of %d", ErrUnroutable, t.GetShard(), t.GetShards())
	}
	return nil
}

// tickCtx is what every candidate of one tick shares.
type tickCtx struct {
	ev      *sbv1.TriggerEvent
	w       *workflow.Workflow
	sched   *schedule.Schedule
	zone    string         // the tick's zone ("" : users without a valid zone)
	loc     *time.Location // where the tick's times are computed
	nominal time.Time
	base    string // what run ids derive from: the tick id
	prev    []string
}

func (k scheduleTick) Decide(ctx context.Context, ev *sbv1.TriggerEvent) ([]runs.Candidate, error) {
	var out []runs.Candidate
	err := k.DecideStream(ctx, ev, func(_ context.Context, page []runs.Candidate) error {
		out = append(out, page...)
		return nil
	})
	return out, err
}

// DecideStream emits the tick's candidates a page at a time: an index page
// of a large zone's walk as soon as it is read and checked, so the router
// publishes its runs while the next page is read (a 125,000-user shard is
// never held whole); a small zone's entries as one page.
func (k scheduleTick) DecideStream(ctx context.Context, ev *sbv1.TriggerEvent, emit Emit) error {
	tick := ev.GetSchedule()
	wid := ev.Workflow
	if wid == "" {
		wid = tick.GetWorkflow()
	}
	w, ok := k.m.cfg.Workflow(ev.Project, wid)
	if !ok || w.Trigger.Type != workflow.TriggerSchedule || w.Trigger.Schedule() == nil {
		c := notFound(ev, workflow.TriggerSchedule)
		c.Workflow = wid
		return emit(ctx, []runs.Candidate{c})
	}
	t := &tickCtx{ev: ev, w: w, sched: w.Trigger.Schedule(), zone: tick.GetZone(), nominal: tick.GetNominalTime().AsTime(), base: ev.Name}
	if t.base == "" {
		t.base = ev.Id
	}
	if l, _ := t.sched.Zone(); l != nil {
		t.loc = l
	} else if t.zone == "" {
		t.loc, _, _ = t.sched.ResolveZone(nil)
	} else if l, err := k.zones.Load(t.zone); err == nil {
		t.loc = l
	} else {
		t.loc, _, _ = t.sched.ResolveZone(nil)
	}
	if t.sched.Overlap() != schedule.OverlapAllow && k.runs != nil {
		// The earlier ticks of this zone whose runs may still be going.
		at := t.nominal
		for range overlapLookback {
			p, ok := t.sched.Latest(at.Add(-time.Second), schedule.MaxInterval, t.loc)
			if !ok {
				break
			}
			t.prev = append(t.prev, schedule.TickID(ev.Project, w.ID, t.zone, p))
			at = p
		}
	}
	if ev.User != "" {
		cands, err := k.oneUser(ctx, t)
		if err != nil {
			return err
		}
		return emit(ctx, cands)
	}
	zones := []string{t.zone}
	if !t.sched.PerUser() {
		// A fixed-zone tick runs everyone, whatever zone the index files
		// them under.
		var err error
		if zones, err = k.idx.Zones(ctx, ev.Project, w.Integration); err != nil {
			return fmt.Errorf("decide: zones of %s: %w", w.Integration, err)
		}
	}
	shards := int(tick.GetShards())
	if shards == 0 {
		shards = 1
	}
	for _, z := range zones {
		all, small, err := k.idx.EnrollmentAll(ctx, ev.Project, w.Integration, z, smallZone)
		if err != nil {
			return fmt.Errorf("decide: enrollment of %s/%s zone %q: %w", ev.Project, w.Integration, z, err)
		}
		if small {
			var page []runs.Candidate
			for _, e := range all.Entries {
				if directory.ShardOf(e.User)%shards != int(tick.GetShard()) {
					continue // another shard's event runs this user
				}
				c, err := k.candidate(ctx, t, e, z)
				if err != nil {
					return err
				}
				page = append(page, c)
			}
			if err := k.overlap(ctx, t, page); err != nil {
				return err
			}
			if len(page) > 0 {
				if err := emit(ctx, page); err != nil {
					return err
				}
			}
			continue
		}
		for s := int(tick.GetShard()); s < directory.Shards; s += shards {
			after := ""
			for {
				page, err := k.idx.Enrollment(ctx, ev.Project, w.Integration, z, s, after, enrollmentPage)
				if err != nil {
					return fmt.Errorf("decide: enrollment of %s/%s zone %q shard %d: %w", ev.Project, w.Integration, z, s, err)
				}
				cands := make([]runs.Candidate, 0, len(page.Entries))
				for _, e := range page.Entries {
					c, err := k.candidate(ctx, t, e, z)
					if err != nil {
						return err
					}
					cands = append(cands, c)
				}
				if err := k.overlap(ctx, t, cands); err != nil {
					return err
				}
				if len(cands) > 0 {
					if err := emit(ctx, cands); err != nil {
						return err
					}
				}
				if page.Next == "" {
					break
				}
				after = page.Next
			}
		}
	}
	return nil
}

// oneUser decides a tick limited to one user (a manual run): the user's
// entries come from their record instead of the index.
func (k scheduleTick) oneUser(ctx context.Context, t *tickCtx) ([]runs.Candidate, error) {
	cands, err := k.m.forUser(ctx, t.ev, []*workflow.Workflow{t.w})
	if err != nil {
		return nil, err
	}
	for i := range cands {
		c := &cands[i]
		if c.Outcome != runs.OutcomeRan {
			continue
		}
		e := directory.Entry{User: c.User, Credential: c.Credential, Status: directory.CredentialValid}
		nc, err := k.candidate(ctx, t, e, "")
		if err != nil {
			return nil, err
		}
		*c = nc
	}
	if err := k.overlap(ctx, t, cands); err != nil {
		return nil, err
	}
	return cands, nil
}

// candidate is the outcome of one index entry: enablement, the user's zone
// (and, for users without a valid one, why the fallback applies), and the
// spread start time; overlap applies the overlap policy to a page of them.
func (k scheduleTick) candidate(ctx context.Context, t *tickCtx, e directory.Entry, indexZone string) (runs.Candidate, error) {
	c := runs.Candidate{Workflow: t.w.ID, User: e.User}
	if e.Credential != "" && e.Credential != "=" {
		c.Credential = e.Credential
	}
	switch {
	case t.ev.User == "" && e.Status != directory.CredentialValid:
		c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonCredentialInvalid, "the credential's status is "+e.Status
		return c, nil
	case t.ev.User == "" && !e.Enabled(t.w):
		c.Outcome, c.Reason, c.Message = runs.OutcomeSkipped, runs.ReasonNotEnabled, "the workflow is not enabled for this user"
		return c, nil
	}
	switch {
	case !t.sched.PerUser():
		_, c.Zone, c.ZoneReason = t.sched.ResolveZone(nil)
	case indexZone != "" && t.ev.User == "":
		// The index files a user under their metadata zone only when it is
		// a valid one: no record read is needed.
		c.Zone, c.ZoneReason = indexZone, schedule.ZoneFromMetadata
	default:
		u, ok, err := k.m.dir.User(ctx, t.ev.Project, e.User)
		if err != nil {
			return c, fmt.Errorf("decide: user %s: %w", e.User, err)
		}
		var md map[string]any
		if ok {
			md = u.Metadata
		}
		_, c.Zone, c.ZoneReason = t.sched.ResolveZone(md)
	}
	c.Outcome, c.RunID = runs.OutcomeRan, runs.ID(t.base, t.w.ID, e.User, c.Credential)
	if off := t.sched.Offset(t.nominal, e.User+"\x00"+c.Credential); off > 0 {
		c.At = t.nominal.Add(off).UTC()
	}
	return c, nil
}

// overlap applies the overlap policy to the candidates that would run: a
// candidate whose run of one of the earlier ticks (t.prev, newest first)
// is in flight is skipped — or, with buffer_one and the previous tick's run
// in flight, waits for it. The runs of the earlier ticks are computed, not
// looked up, and the whole page is checked in one RunStates call.
func (k scheduleTick) overlap(ctx context.Context, t *tickCtx, cands []runs.Candidate) error {
	if len(t.prev) == 0 {
		return nil
	}
	prevIDs := make([][]string, len(cands))
	var ids []string
	for i, c := range cands {
		if c.Outcome != runs.OutcomeRan {
			continue
		}
		for _, prev := range t.prev {
			id := runs.ID(prev, t.w.ID, c.User, c.Credential)
			if id != c.RunID {
				prevIDs[i] = append(prevIDs[i], id)
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	running, err := k.runs.Running(ctx, t.ev.Project, ids)
	if err != nil {
		return fmt.Errorf("decide: overlap check: %w", err)
	}
	for i := range cands {
		c := &cands[i]
		for j, id := range prevIDs[i] {
			if !running[id] {
				continue
			}
			if t.sched.Overlap() == schedule.OverlapBufferOne && j == 0 {
				// The previous tick's run is the one in flight, so no tick
				// waits yet: this one waits for it (the executor holds it
				// back). When the run in flight is older, the ticks in
				// between either wait already or were dropped: at most one
				// waits.
				c.After = id
				break
			}
			c.Outcome, c.Reason, c.RunID, c.At = runs.OutcomeSkipped, ReasonOverlap, "", time.Time{}
			c.Message = fmt.Sprintf("run %s of an earlier tick is still running (overlap: %s)", id, t.sched.Overlap())
			break
		}
	}
	return nil
}

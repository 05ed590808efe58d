package scheduler

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Register mounts the schedule API.
func (s *Service) Register(e *echo.Echo) {
	if s.opts.Access == nil {
		return
	}
	e.GET("/v1/projects/:p/workflows/:w/schedule", s.getSchedule)
	e.POST("/v1/projects/:p/workflows/:w/schedule/trigger", s.triggerSchedule)
	e.POST("/v1/projects/:p/workflows/:w/schedule/backfill", s.backfillSchedule)
}

// ZoneSchedule is one zone of GET …/schedule.
type ZoneSchedule struct {
	Zone string `json:"zone"`
	// Location is the zone the ticks are computed in (the fallback zone for
	// users without a valid zone).
	Location string      `json:"location"`
	Next     []time.Time `json:"next"`
	Last     *time.Time  `json:"last,omitempty"`
	Recent   []FiredView `json:"recent,omitempty"`
}

// FiredView is a fired tick with the runs it started, when the history
// read model is in this process.
type FiredView struct {
	Fired
	Runs    *int           `json:"runs,omitempty"`
	Skipped map[string]int `json:"skipped,omitempty"`
}

// ScheduleView is GET …/workflows/{w}/schedule.
type ScheduleView struct {
	Workflow string         `json:"workflow"`
	Schedule string         `json:"schedule"`
	PerUser  bool           `json:"perUser"`
	Zones    []ZoneSchedule `json:"zones"`
}

func (s *Service) scheduleWorkflow(c *echo.Context) (*workflow.Workflow, *schedule.Schedule, error) {
	pr, err := s.opts.Access.ExistingProject(c.Request(), c.Param("p"))
	if err != nil {
		return nil, nil, err
	}
	if err := access.ServerSide(pr); err != nil {
		return nil, nil, err
	}
	w, ok := s.opts.Catalog.Workflow(pr.Project, c.Param("w"))
	if !ok {
		return nil, nil, apierr.NotFound("workflow_not_found", "workflow %q does not exist", c.Param("w"))
	}
	sched := w.Trigger.Schedule()
	if w.Trigger.Type != workflow.TriggerSchedule || sched == nil {
		return nil, nil, apierr.BadRequest("not_a_schedule", "workflow %q has a %s trigger, not a schedule", w.ID, w.Trigger.Type).WithField("w")
	}
	return w, sched, nil
}

func (s *Service) getSchedule(c *echo.Context) error {
	w, sched, err := s.scheduleWorkflow(c)
	if err != nil {
		return err
	}
	n := 5
	if v := c.QueryParam("next"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100 {
			return apierr.BadRequest("invalid_field", "next must be a number from 1 to 100").WithField("next")
		}
	}
	view, err := s.View(c.Request().Context(), w, sched, n)
	if err != nil {
		s.log.Warn("schedule view", "workflow", w.ID, "err", err)
		return apierr.Unavailable(err)
	}
	return c.JSON(http.StatusOK, view)
}

// View is the schedule of w: for each zone it ticks in, the next n ticks
// and the last fired ones.
func (s *Service) View(ctx context.Context, w *workflow.Workflow, sched *schedule.Schedule, n int) (*ScheduleView, error) {
	zones, err := s.zonesFor(ctx, w, sched, true)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	out := &ScheduleView{Workflow: w.ID, Schedule: sched.String(), PerUser: sched.PerUser(), Zones: []ZoneSchedule{}}
	for _, z := range zones {
		loc, err := s.zoneLocation(sched, z)
		if err != nil {
			continue
		}
		zs := ZoneSchedule{Zone: z, Location: loc.String()}
		t := now
		for range n {
			if t = sched.Next(t, loc); t.IsZero() {
				break
			}
			zs.Next = append(zs.Next, t.UTC())
		}
		st, err := s.cachedState(ctx, jobKey{w.Project, w.ID, z})
		if err != nil {
			return nil, err
		}
		if !st.Last.IsZero() {
			last := st.Last
			zs.Last = &last
		}
		for i := len(st.Recent) - 1; i >= 0; i-- {
			zs.Recent = append(zs.Recent, s.firedView(w.Project, st.Recent[i]))
		}
		out.Zones = append(out.Zones, zs)
	}
	return out, nil
}

// firedView adds the run counts of a fired tick's decisions.
func (s *Service) firedView(project string, f Fired) FiredView {
	v := FiredView{Fired: f}
	if s.opts.Decisions == nil {
		return v
	}
	ran := 0
	for _, id := range f.Events {
		d, err := s.opts.Decisions(project, id)
		if err != nil || d == nil {
			return v // not decided yet (or not known here): no count
		}
		ran += d.Summary.Ran
		for r, k := range d.Summary.Skipped {
			if v.Skipped == nil {
				v.Skipped = map[string]int{}
			}
			v.Skipped[r] += k
		}
	}
	v.Runs = &ran
	return v
}

// TriggerRequest is the body of POST …/schedule/trigger.
type TriggerRequest struct {
	// User limits the tick to one connected user; empty runs everyone.
	User string `json:"user,omitempty"`
}

// TriggerResult answers POST …/schedule/trigger.
type TriggerResult struct {
	Nominal time.Time           `json:"nominal"`
	Events  map[string][]string `json:"events"` // by zone
}

func (s *Service) triggerSchedule(c *echo.Context) error {
	w, sched, err := s.scheduleWorkflow(c)
	if err != nil {
		return err
	}
	var req TriggerRequest
	if c.Request().ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(nil, c.Request().Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return apierr.BadRequest("invalid_body", "the body must be {\"user\": \"…\"} or empty: %v", err)
		}
	}
	if req.User != "" {
		if err := access.ID("user", req.User); err != nil {
			return err
		}
	}
	res, err := s.TriggerNow(c.Request().Context(), w, sched, req.User)
	if err != nil {
		return apierr.Unavailable(err)
	}
	return c.JSON(http.StatusAccepted, res)
}

// TriggerNow runs a tick of w now, in every zone it ticks in, for one user
// or all. It is not a scheduled tick: its nominal time is now, its events
// are new (a second call runs again), and it leaves the state alone.
func (s *Service) TriggerNow(ctx context.Context, w *workflow.Workflow, sched *schedule.Schedule, user string) (*TriggerResult, error) {
	zones, err := s.zonesFor(ctx, w, sched, true)
	if err != nil {
		return nil, err
	}
	nominal := s.opts.Now().UTC().Truncate(time.Second)
	res := &TriggerResult{Nominal: nominal, Events: map[string][]string{}}
	sort.Strings(zones)
	if user != "" {
		// One user runs once: the router resolves their zone from their
		// record, whatever zone the tick names.
		zones = append(zones[:0:0], "")
		if !sched.PerUser() {
			_, name := sched.Zone()
			zones[0] = name
		}
	}
	run := trigger.NewID()
	for _, z := range zones {
		// A manual tick's name is its own, so its runs never collide with
		// the scheduled tick of the same second.
		tickID := schedule.TickID(w.Project, w.ID, z, nominal) + "#manual-" + run
		shards := s.shardsFor(w, sched, z)
		if user != "" {
			shards = 1 // one user is in one directory shard; the router looks them up
		}
		ids, err := s.publishTick(ctx, w, z, nominal, tickID, user, shards)
		if err != nil {
			return nil, err
		}
		res.Events[z] = ids
	}
	return res, nil
}

// BackfillRequest is the body of POST …/schedule/backfill: the ticks in
// (from, to] of every zone in use (or for one user), at most limit of them
// per call (default and maximum MaxBackfillTicks).
type BackfillRequest struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	User  string    `json:"user,omitempty"`
	Limit int       `json:"limit,omitempty"`
}

// BackfillResult answers a backfill call. Next is where the following call
// starts (its from) when Done is false.
type BackfillResult struct {
	Ticks  int       `json:"ticks"`
	Events int       `json:"events"`
	Next   time.Time `json:"next,omitzero"`
	Done   bool      `json:"done"`
}

// MaxBackfillTicks bounds one backfill call, so a call's work (and its
// answer's wait) stays small; a client pages with Next.
const MaxBackfillTicks = 200

func (s *Service) backfillSchedule(c *echo.Context) error {
	w, sched, err := s.scheduleWorkflow(c)
	if err != nil {
		return err
	}
	var req BackfillRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, c.Request().Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apierr.BadRequest("invalid_body", "the body must be {\"from\", \"to\", \"user\"?, \"limit\"?} with RFC 3339 times: %v", err)
	}
	switch {
	case req.From.IsZero():
		return apierr.BadRequest("invalid_field", "from is required").WithField("from")
	case !req.To.After(req.From):
		return apierr.BadRequest("invalid_field", "to must be after from").WithField("to")
	case req.To.After(s.opts.Now()):
		return apierr.BadRequest("invalid_field", "to must not be in the future: the scheduler fires those ticks").WithField("to")
	case req.Limit < 0 || req.Limit > MaxBackfillTicks:
		return apierr.BadRequest("invalid_field", "limit must be from 1 to %d", MaxBackfillTicks).WithField("limit")
	}
	if err := access.ID("user", req.User); err != nil {
		return err
	}
	res, err := s.Backfill(c.Request().Context(), w, sched, req)
	if err != nil {
		return apierr.Unavailable(err)
	}
	return c.JSON(http.StatusAccepted, res)
}

// Backfill fires the ticks of (from, to] in every zone in use, oldest
// first, at most limit of them. Each keeps its nominal time and its tick
// id, so a tick that ran already yields the same run ids and does not run
// again (its events are older than the dedupe window, so the executor looks
// each run up): a backfill fills gaps, and repeating it is harmless. The
// state is left alone.
func (s *Service) Backfill(ctx context.Context, w *workflow.Workflow, sched *schedule.Schedule, req BackfillRequest) (*BackfillResult, error) {
	limit := req.Limit
	if limit == 0 {
		limit = MaxBackfillTicks
	}
	zones, err := s.zonesFor(ctx, w, sched, true)
	if err != nil {
		return nil, err
	}
	if req.User != "" {
		zones = []string{""}
		if !sched.PerUser() {
			_, zones[0] = sched.Zone()
		}
	}
	// The ticks of every zone in nominal order, so a page ends at one
	// instant for all zones and Next resumes there.
	type zt struct {
		zone string
		t    time.Time
	}
	var all []zt
	for _, z := range zones {
		loc, err := s.zoneLocation(sched, z)
		if err != nil {
			continue
		}
		n := 0
		for t := range sched.Between(req.From, req.To, loc) {
			if n++; n > limit+1 {
				break
			}
			all = append(all, zt{z, t})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	res := &BackfillResult{Done: true}
	seen := map[int64]bool{}
	for i, x := range all {
		if !seen[x.t.Unix()] && len(seen) == limit {
			res.Done, res.Next = false, all[i-1].t.UTC()
			break
		}
		seen[x.t.Unix()] = true
		shards := s.opts.Shards
		if req.User != "" {
			shards = 1
		}
		ids, err := s.publishTick(ctx, w, x.zone, x.t, schedule.TickID(w.Project, w.ID, x.zone, x.t), req.User, shards)
		if err != nil {
			return res, err
		}
		res.Events += len(ids)
	}
	res.Ticks = len(seen)
	return res, nil
}

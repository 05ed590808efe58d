// Package scheduler is the scheduler role: it turns schedule triggers into
// SCHEDULE trigger events on TRIGGERS, one tick per (workflow, time zone in
// use) and shard, never one per user. The router fans each tick out to that
// zone's enrolled users (services/router/decide).
//
// Any number of replicas run the same jobs with no leader: a tick's events
// have ids derived from its tick id (pkg/schedule TickID, the shard), so
// JetStream's duplicate window keeps one; the last fired nominal time per
// (workflow, zone) is kept in the sb_schedules bucket, which catches up what
// was missed while no replica ran and stops a replica whose clock went back
// from firing a tick again.
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // every replica computes ticks from the same zone rules, whatever the host has

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Name is the role's name.
const Name = "scheduler"

// Defaults.
const (
	// DefaultShards is how many events one tick is split into; each covers
	// the directory shards s with s % shards == shard, so that many routers
	// share a large fan-out while a small one stays a few messages.
	DefaultShards = 8
	// DefaultZoneRefresh is how often the zones in use are read again, so a
	// user moving to a new zone gets a job within it.
	DefaultZoneRefresh = 5 * time.Second
	// DefaultReconcile is how often jobs are compared with the catalog (an
	// in-memory read; zones are read at ZoneRefresh).
	DefaultReconcile = time.Second
	// recentTicks is how many fired ticks the state keeps for the API.
	recentTicks = 10
)

// Catalog is the part of the catalog the scheduler reads.
type Catalog interface {
	Projects() []string
	Workflows(p string) []*workflow.Workflow
	Workflow(p, id string) (*workflow.Workflow, bool)
	Revision() uint64
}

// Zones lists the time zones in use by the enrollment of an integration
// (pkg/directory Zones); "" stands for users without a valid zone.
type Zones interface {
	Zones(ctx context.Context, p, integration string) ([]string, error)
}

// Enrollment is what the scheduler reads of a zone's size, when Directory
// has it (pkg/directory does): a zone of at most limit entries answers ok.
// A tick of a small zone is one event instead of Shards: its router reads
// the whole zone in one read anyway, and a thousand workflows ticking in
// ten small zones each are ten thousand publishes a tick, not eighty.
type Enrollment interface {
	EnrollmentAll(ctx context.Context, p, integration, zone string, limit int) (directory.Page, bool, error)
}

// smallZone is the most entries a zone ticks in one event with: the
// router's own limit for reading a zone in one read.
const smallZone = directory.MaxPage

// Decisions reads a merged decision record (the history read model), for
// the run counts of the schedule API; optional.
type Decisions func(project, eventID string) (*runs.Decision, error)

// Options configure the scheduler.
type Options struct {
	JS        jetstream.JetStream
	Catalog   Catalog
	Directory Zones
	Triggers  *trigger.Publisher
	// Access authenticates the schedule API; nil serves no routes.
	Access    *access.Checker
	Decisions Decisions
	Logger    *slog.Logger
	// Shards splits each tick (default DefaultShards, at most
	// directory.Shards).
	Shards      int
	ZoneRefresh time.Duration
	Reconcile   time.Duration
	// Now is the clock (default time.Now, or Clock's); tests move it.
	Now func() time.Time
	// Clock drives gocron's timers (default the real clock); a test gives
	// a fake one to run thousands of ticks quickly. Now follows it unless
	// set.
	Clock clockwork.Clock
}

// Service is the scheduler role.
type Service struct {
	opts Options
	log  *slog.Logger
	kv   jetstream.KeyValue
	cron gocron.Scheduler

	mu    sync.Mutex
	jobs  map[jobKey]*job
	zones map[zoneKey]zoneCache
	locs  schedule.ZoneCache

	// Ticks armed ahead of their nominal time (see armAhead).
	clock   clockwork.Clock
	dueMu   sync.Mutex
	due     map[int64]*dueTicks // by nominal time, Unix nanoseconds
	dueDone bool

	stop context.CancelFunc
	done chan struct{}

	// The pipeline of ticks on time (see fireQueue).
	fires       chan firing
	writes      chan stateWrite
	pubs        sync.WaitGroup
	writerDone  chan struct{}
	queueMu     sync.RWMutex
	queueClosed bool
	statePrefix string // the subject prefix of the state bucket's keys
}

// jobKey is one gocron job: a workflow's ticks in one zone.
type jobKey struct{ project, workflow, zone string }

type zoneKey struct{ project, integration string }

type zoneCache struct {
	zones []string
	small map[string]bool // zones with at most smallZone entries
	at    time.Time
}

// job is one (workflow, zone) schedule.
type job struct {
	key jobKey
	fp  string // the workflow's schedule as JSON: a change replaces the job
	// w is the newest document with this schedule (its steps may change
	// without replacing the job); the task reads it while reconcile swaps.
	w     atomic.Pointer[workflow.Workflow]
	sched *schedule.Schedule
	loc   *time.Location
	id    uuid.UUID // gocron's job id

	// The state last read or stored (see jobState): a tick needs no read
	// of the bucket before it fires while this is fresh.
	stMu sync.Mutex
	// fireMu makes a job's ticks checked and published one at a time.
	fireMu sync.Mutex
	st     State
	stRev  uint64
	stAt   time.Time
	// armed is the latest tick handed to the due timers (under stMu).
	armed time.Time
	// dirty: st holds fired ticks not stored yet (deferState); storedAt is
	// when the bucket last held everything st does.
	dirty    bool
	storedAt time.Time
}

// New returns the scheduler role.
func New(opts Options) (*Service, error) {
	if opts.JS == nil || opts.Catalog == nil || opts.Directory == nil || opts.Triggers == nil {
		return nil, errors.New("scheduler: JS, Catalog, Directory and Triggers are required")
	}
	if opts.Shards <= 0 {
		opts.Shards = DefaultShards
	}
	opts.Shards = min(opts.Shards, 64)
	if opts.ZoneRefresh <= 0 {
		opts.ZoneRefresh = DefaultZoneRefresh
	}
	if opts.Reconcile <= 0 {
		opts.Reconcile = DefaultReconcile
	}
	if opts.Now == nil {
		opts.Now = time.Now
		if opts.Clock != nil {
			opts.Now = opts.Clock.Now
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	clock := opts.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Service{opts: opts, log: opts.Logger.With("role", Name), jobs: map[jobKey]*job{}, zones: map[zoneKey]zoneCache{},
		clock: clock, due: map[int64]*dueTicks{}}, nil
}

// Name is the role's name.
func (s *Service) Name() string { return Name }

// Start opens the state bucket, starts gocron and creates the jobs the
// catalog asks for (catching up missed ticks first), then follows changes.
func (s *Service) Start(ctx context.Context) error {
	kv, err := s.opts.JS.KeyValue(ctx, subjects.BucketSchedules)
	if err != nil {
		return fmt.Errorf("scheduler: bucket %s: %w", subjects.BucketSchedules, err)
	}
	s.kv = kv
	s.statePrefix = "$KV." + subjects.BucketSchedules + "."
	s.startPipeline()
	// UTC: gocron skips a next run whose wall clock equals the previous
	// one's, which in local time would drop an hourly schedule's second
	// 01:30 on a fall-back night (docs/schedules.md, "gocron fit").
	schedOpts := []gocron.SchedulerOption{gocron.WithLocation(time.UTC)}
	if s.opts.Clock != nil {
		schedOpts = append(schedOpts, gocron.WithClock(s.opts.Clock))
	}
	cron, err := gocron.NewScheduler(schedOpts...)
	if err != nil {
		return fmt.Errorf("scheduler: gocron: %w", err)
	}
	s.cron = cron
	cron.Start()
	if err := s.reconcile(ctx, true); err != nil {
		s.log.Warn("first reconcile incomplete; retrying in the loop", "err", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go s.loop(lctx)
	return nil
}

// Stop stops following the catalog and shuts gocron down, waiting for
// running ticks.
func (s *Service) Stop(ctx context.Context) error {
	if s.stop != nil {
		s.stop()
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	}
	var err error
	if s.cron != nil {
		err = s.cron.ShutdownWithContext(ctx)
	}
	s.stopDue()
	s.stopPipeline()
	return err
}

// loop reconciles the jobs with the catalog every Reconcile, and with the
// zones in use every ZoneRefresh.
func (s *Service) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.Reconcile)
	defer t.Stop()
	lastZones := time.Now()
	lastRev := s.opts.Catalog.Revision()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.flushStates(false)
		refresh := time.Since(lastZones) >= s.opts.ZoneRefresh
		if rev := s.opts.Catalog.Revision(); !refresh && rev == lastRev {
			continue
		} else {
			lastRev = rev
		}
		if refresh {
			lastZones = time.Now()
		}
		if err := s.reconcile(ctx, refresh); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile", "err", err)
		}
	}
}

// reconcile makes the jobs match the catalog: one per schedule workflow and
// zone in use; a changed schedule replaces its jobs, a deleted workflow or
// an unused zone removes them. Jobs that stay are kept as they are (only
// their document swapped), so a reconcile of ten thousand unchanged jobs
// allocates next to nothing.
func (s *Service) reconcile(ctx context.Context, refreshZones bool) error {
	type wanted struct {
		w     *workflow.Workflow
		sched *schedule.Schedule
		fp    string
	}
	want := map[jobKey]wanted{}
	var errs []error
	for _, p := range s.opts.Catalog.Projects() {
		for _, w := range s.opts.Catalog.Workflows(p) {
			sched := w.Trigger.Schedule()
			if w.Trigger.Type != workflow.TriggerSchedule || sched == nil {
				continue
			}
			fp, _ := json.Marshal(w.Trigger.Spec)
			zones, err := s.zonesFor(ctx, w, sched, refreshZones)
			if err != nil {
				errs = append(errs, err)
				// Keep this workflow's jobs as they are until zones can be read.
				s.mu.Lock()
				for k, j := range s.jobs {
					if k.project == p && k.workflow == w.ID {
						want[k] = wanted{j.w.Load(), j.sched, j.fp}
					}
				}
				s.mu.Unlock()
				continue
			}
			for _, z := range zones {
				want[jobKey{p, w.ID, z}] = wanted{w, sched, string(fp)}
			}
		}
	}
	s.mu.Lock()
	var add []*job
	var flushes []stateWrite
	for k, j := range s.jobs {
		if n, ok := want[k]; !ok || n.fp != j.fp {
			// Its ticks kept in the cache are stored, not lost with it.
			if w, ok := j.flushWrite(true); ok {
				flushes = append(flushes, w)
			}
			if err := s.cron.RemoveJob(j.id); err != nil && !errors.Is(err, gocron.ErrJobNotFound) {
				errs = append(errs, err)
			}
			delete(s.jobs, k)
			s.log.Info("schedule job removed", "project", k.project, "workflow", k.workflow, "zone", k.zone)
		}
	}
	for k, n := range want {
		if cur, ok := s.jobs[k]; ok {
			cur.w.Store(n.w) // same schedule, maybe a newer document (steps)
			continue
		}
		loc, err := s.zoneLocation(n.sched, k.zone)
		if err != nil {
			continue // a marker of a zone this build's tzdata lacks
		}
		j := &job{key: k, fp: n.fp, sched: n.sched, loc: loc}
		j.w.Store(n.w)
		add = append(add, j)
	}
	s.mu.Unlock()
	for _, w := range flushes {
		s.writes <- w
	}
	for _, j := range add {
		if err := s.addJob(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// zonesFor is the zones a workflow ticks in: its fixed zone, or the zones
// in use by its integration's enrollment (cached for ZoneRefresh).
func (s *Service) zonesFor(ctx context.Context, w *workflow.Workflow, sched *schedule.Schedule, refresh bool) ([]string, error) {
	if !sched.PerUser() {
		_, name := sched.Zone()
		return []string{name}, nil
	}
	k := zoneKey{w.Project, w.Integration}
	s.mu.Lock()
	c, ok := s.zones[k]
	s.mu.Unlock()
	if ok && (!refresh || time.Since(c.at) < s.opts.ZoneRefresh/2) {
		return c.zones, nil
	}
	zones, err := s.opts.Directory.Zones(ctx, w.Project, w.Integration)
	if err != nil {
		return nil, fmt.Errorf("scheduler: zones of %s/%s: %w", w.Project, w.Integration, err)
	}
	small := map[string]bool{}
	if en, ok := s.opts.Directory.(Enrollment); ok {
		for _, z := range zones {
			// A zone whose size cannot be read now ticks in Shards events.
			_, ok, err := en.EnrollmentAll(ctx, w.Project, w.Integration, z, smallZone)
			small[z] = ok && err == nil
		}
	}
	s.mu.Lock()
	s.zones[k] = zoneCache{zones: zones, small: small, at: time.Now()}
	s.mu.Unlock()
	return zones, nil
}

// shardsFor is how many events a tick of w in zone is split into: one for
// a small zone of a per-user schedule (as of the last zone refresh), else
// Shards. Replicas that disagree (a zone crossing the limit between their
// refreshes) publish events of different ids for the same tick; its runs
// still start once, their ids and Nats-Msg-Ids being the tick's.
func (s *Service) shardsFor(w *workflow.Workflow, sched *schedule.Schedule, zone string) int {
	if !sched.PerUser() {
		return s.opts.Shards // a fixed-zone tick runs every zone's users
	}
	s.mu.Lock()
	small := s.zones[zoneKey{w.Project, w.Integration}].small[zone]
	s.mu.Unlock()
	if small {
		return 1
	}
	return s.opts.Shards
}

// zoneLocation is where a zone's ticks are computed: the fixed zone, the
// user zone, or for "" (users without a valid zone) the fallback zone.
func (s *Service) zoneLocation(sched *schedule.Schedule, zone string) (*time.Location, error) {
	if loc, _ := sched.Zone(); loc != nil {
		return loc, nil
	}
	if zone == "" {
		loc, _, _ := sched.ResolveZone(nil)
		return loc, nil
	}
	return s.locs.Load(zone)
}

// addJob catches the job up (missed ticks per the catch-up policy, from the
// stored state) and then adds its gocron job.
func (s *Service) addJob(ctx context.Context, j *job) error {
	if err := s.catchUp(ctx, j); err != nil {
		return err
	}
	gj, err := s.cron.NewJob(
		gocron.CronJob(j.sched.String(), true),
		gocron.NewTask(func(ctx context.Context) { s.tick(ctx, j) }),
		gocron.WithCronImplementation(cronAdapter{j.sched, j.loc}),
		gocron.WithName(j.key.project+"/"+j.key.workflow+"@"+j.key.zone),
	)
	if err != nil {
		return fmt.Errorf("scheduler: job %s/%s@%s: %w", j.key.project, j.key.workflow, j.key.zone, err)
	}
	j.id = gj.ID()
	s.mu.Lock()
	s.jobs[j.key] = j
	s.mu.Unlock()
	// gocron runs the job armAhead before each tick (cronAdapter), so the
	// ticks of the first armAhead have no run: they are armed here.
	now := s.opts.Now()
	for t := range j.sched.Between(now, now.Add(armAhead), j.loc) {
		s.arm(j, t)
	}
	s.log.Info("schedule job added", "project", j.key.project, "workflow", j.key.workflow, "zone", j.key.zone,
		"schedule", j.sched.String(), "next", j.sched.Next(s.opts.Now(), j.loc).UTC())
	return nil
}

// cronAdapter drives gocron with pkg/schedule's ticks (DST rule, epoch
// alignment), each armAhead early (see armAhead). Compile checked the spec,
// so IsValid has nothing to say; Next returns UTC (see Start).
type cronAdapter struct {
	s   *schedule.Schedule
	loc *time.Location
}

func (a cronAdapter) IsValid(string, *time.Location, time.Time) error { return nil }
func (a cronAdapter) Next(last time.Time) time.Time {
	return a.s.Next(last.Add(armAhead), a.loc).Add(-armAhead).UTC()
}

// tick is a gocron task, run armAhead before a tick: it names the tick by
// its nominal time (the timer may fire a little late) and arms it, so it is
// published at its nominal time (or at once, when the timer fired later
// than that). Ticks between the last fired or armed one and this one — a
// timer that fired more than an interval late, a replica whose timers
// stalled while no other replica fired — follow the catch-up policy when
// they are past, as after downtime, so a lagging process loses no tick
// under catchup: once or all; those still ahead are armed.
func (s *Service) tick(ctx context.Context, j *job) {
	now := s.opts.Now()
	nominal, ok := j.sched.Latest(now.Add(armAhead), schedule.MaxInterval, j.loc)
	if !ok {
		return
	}
	// Ticks armed earlier whose timers have not fired though they are due
	// (the clock jumped, the timers lag) go first and in order: a later
	// tick published before them would make them look fired already.
	for _, t := range s.takeDue(j, now.Add(-dueGrace)) {
		if _, err := s.fire(ctx, j, t, false); err != nil {
			s.log.Error("tick not published", "project", j.key.project, "workflow", j.key.workflow, "zone", j.key.zone,
				"nominal", t.UTC(), "err", err)
		}
	}
	if st, _, err := s.jobState(ctx, j); err == nil {
		from := st.Last
		j.stMu.Lock()
		if j.armed.After(from) {
			from = j.armed
		}
		j.stMu.Unlock()
		if !from.IsZero() {
			before := nominal.Add(-time.Nanosecond)
			pastTo, aheadFrom := before, from
			if now.Before(before) {
				pastTo = now
			}
			if now.After(from) {
				aheadFrom = now
			}
			for _, t := range j.sched.Missed(from, pastTo, j.loc) {
				if _, err := s.fire(ctx, j, t, true); err != nil {
					s.log.Error("late tick not published", "project", j.key.project, "workflow", j.key.workflow, "zone", j.key.zone,
						"nominal", t.UTC(), "err", err)
				}
			}
			for t := range j.sched.Between(aheadFrom, before, j.loc) {
				s.arm(j, t)
			}
		}
	}
	if nominal.After(now) {
		s.arm(j, nominal)
		return
	}
	// The publishers take it from here (see fireQueue).
	s.enqueue(j, nominal)
}

// armAhead is how long before its nominal time a tick's gocron job runs.
// gocron handles its jobs' runs one at a time in its scheduler goroutine
// (fetching the job, rescheduling it): ten thousand jobs due at one second
// took it 1–2 s to start, so ticks published from the task itself were
// that late. Run early, the task only arms the tick; one timer per nominal
// instant then queues all of that instant's ticks to the publishers at
// once.
const armAhead = 3 * time.Second

// dueGrace is how overdue an armed tick must be before the job's next run
// fires it itself (takeDue): with an interval that divides armAhead (every
// 1 s, 3 s) that run starts at the very instant another tick's timer fires,
// and those ticks belong to their timer and the publishers.
const dueGrace = 250 * time.Millisecond

// dueTicks are the jobs whose tick is at one nominal instant.
type dueTicks struct {
	jobs  []*job
	timer clockwork.Timer
}

// arm queues job j's tick nominal for its nominal time; a tick armed twice
// (a late task, a replaced job) is checked against the state when it fires,
// as every tick is.
func (s *Service) arm(j *job, nominal time.Time) {
	j.stMu.Lock()
	if nominal.After(j.armed) {
		j.armed = nominal
	}
	j.stMu.Unlock()
	key := nominal.UnixNano()
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	if s.dueDone {
		return
	}
	if d, ok := s.due[key]; ok {
		d.jobs = append(d.jobs, j)
		return
	}
	d := &dueTicks{jobs: []*job{j}}
	d.timer = s.clock.AfterFunc(nominal.Sub(s.opts.Now()), func() { s.fireDue(key, nominal) })
	s.due[key] = d
}

// takeDue removes job j from the ticks armed at or before upTo and returns
// their nominal times, oldest first.
func (s *Service) takeDue(j *job, upTo time.Time) []time.Time {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	var out []time.Time
	for key, d := range s.due {
		if key > upTo.UnixNano() {
			continue
		}
		if i := slices.Index(d.jobs, j); i >= 0 {
			d.jobs = slices.Delete(d.jobs, i, i+1)
			out = append(out, time.Unix(0, key).UTC())
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// fireDue queues the ticks armed for nominal to the publishers.
func (s *Service) fireDue(key int64, nominal time.Time) {
	s.dueMu.Lock()
	d := s.due[key]
	delete(s.due, key)
	s.dueMu.Unlock()
	if d == nil {
		return
	}
	for _, j := range d.jobs {
		s.mu.Lock()
		current := s.jobs[j.key] == j
		s.mu.Unlock()
		if !current {
			continue // removed or replaced since: its workflow changed
		}
		if !s.enqueue(j, nominal) {
			return
		}
	}
}

// stopDue drops the armed ticks: none is due yet, and a tick that comes
// due while no replica runs is caught up per its policy when one starts.
func (s *Service) stopDue() {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	s.dueDone = true
	for key, d := range s.due {
		d.timer.Stop()
		delete(s.due, key)
	}
}

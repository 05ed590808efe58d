package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/testlog"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/scheduler"
)

const (
	project = "p"
	waitFor = 20 * time.Second
)

// zones is a settable Zones: the zones in use per integration.
type zones struct {
	mu sync.Mutex
	m  map[string][]string
}

func (z *zones) Zones(_ context.Context, _, integration string) ([]string, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return slices.Clone(z.m[integration]), nil
}

func (z *zones) set(integration string, list ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.m == nil {
		z.m = map[string][]string{}
	}
	z.m[integration] = list
}

// sizedZones is zones whose sizes the scheduler can read (as
// pkg/directory's EnrollmentAll answers them): the zones in large hold more
// entries than one read takes, every other zone one entry.
type sizedZones struct {
	*zones
	large map[string]bool
}

func (z sizedZones) EnrollmentAll(_ context.Context, _, _, zone string, _ int) (directory.Page, bool, error) {
	if z.large[zone] {
		return directory.Page{}, false, nil
	}
	return directory.Page{Entries: []directory.Entry{{User: "u", Status: directory.CredentialValid}}}, true, nil
}

type env struct {
	t     *testing.T
	srv   *brokertest.Server
	cat   *catalog.Catalog
	zones *zones
	pub   *trigger.Publisher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, srv: brokertest.Start(t), zones: &zones{}}
	e.cat = brokertest.Catalog(t, e.srv.JS)
	ctx := e.ctx()
	if _, rev, err := e.cat.UpdateProject(ctx, project, func(*catalog.Project) error { return nil }); err != nil {
		t.Fatal(err)
	} else if err := e.cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.pub, err = trigger.New(ctx, trigger.Options{JS: e.srv.JS}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) apply(docs string) {
	e.t.Helper()
	objs, err := workflow.Parse([]byte(docs), project)
	if err != nil {
		e.t.Fatal(err)
	}
	rev, err := e.cat.Apply(e.ctx(), objs)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.cat.WaitRevision(e.ctx(), rev); err != nil {
		e.t.Fatal(err)
	}
}

// start starts a scheduler replica; now may shift its clock. stop stops it
// early (the cleanup stops it otherwise).
func (e *env) start(now func() time.Time) (svc *scheduler.Service, stop func()) {
	e.t.Helper()
	svc, err := scheduler.New(scheduler.Options{
		JS: e.srv.JS, Catalog: e.cat, Directory: e.zones, Triggers: e.pub, Logger: testlog.New(e.t),
		Shards: 2, ZoneRefresh: 300 * time.Millisecond, Reconcile: 100 * time.Millisecond, Now: now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := svc.Start(e.ctx()); err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := svc.Stop(ctx); err != nil {
				e.t.Errorf("stop: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return svc, stop
}

// tick is one stored SCHEDULE event.
type tick struct {
	id, zone string
	nominal  time.Time
	stored   time.Time // when TRIGGERS stored it
	shard    uint32
	shards   uint32
}

// ticks is every SCHEDULE event on TRIGGERS, oldest first.
func (e *env) ticks() []tick {
	e.t.Helper()
	ctx := e.ctx()
	s, err := e.srv.JS.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []tick
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subjects.TriggersOfProject(project)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			e.t.Fatal(err)
		}
		seq = m.Sequence + 1
		ev, err := envelope.Decode(m.Data, m.Header.Get(envelope.HeaderContentType))
		if err != nil {
			e.t.Fatal(err)
		}
		if ev.Kind != sbv1.Kind_SCHEDULE {
			continue
		}
		if got := m.Header.Get("Nats-Msg-Id"); got != ev.Id {
			e.t.Errorf("Nats-Msg-Id %q, event id %q", got, ev.Id)
		}
		st := ev.GetSchedule()
		if !ev.GetReceivedAt().AsTime().Equal(st.NominalTime.AsTime()) {
			// The executor then treats a tick published again late as old.
			e.t.Errorf("tick %s received at %s, want its nominal time", ev.Id, ev.GetReceivedAt().AsTime())
		}
		out = append(out, tick{id: ev.Id, zone: st.Zone, nominal: st.NominalTime.AsTime(), stored: m.Time, shard: st.Shard, shards: st.Shards})
	}
}

// byNominal counts the events of each (zone, nominal time).
func byNominal(ts []tick) map[string]int {
	out := map[string]int{}
	for _, t := range ts {
		out[t.zone+"@"+t.nominal.Format(time.RFC3339)]++
	}
	return out
}

func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// utcSchedule is workflow w on a schedule in UTC: fields are the
// trigger's after its type and zone, e.g. "every: 1s, catchup: all".
func utcSchedule(fields string) string {
	return "kind: Workflow\nid: w\ntrigger: {type: schedule, timezone: UTC, " + fields + "}\n" +
		"steps: [{id: a, type: http, url: \"https://example.com\"}]\n"
}

const everySecond = `kind: Workflow
id: w
trigger: {type: schedule, every: 1s, timezoneFrom: user.metadata.timezone}
steps: [{id: a, type: http, url: "https://example.com"}]
`

// Two replicas run the same jobs with no leader: every (zone, nominal
// time) is on TRIGGERS exactly once per shard, and every nominal time is a
// whole second (the epoch-aligned ticks of every: 1s), in each zone in use.
// One replica stopping midway loses no tick: the seconds are contiguous.
func TestTwoReplicasNoDuplicateTicks(t *testing.T) {
	e := newEnv(t)
	e.zones.set("", "Europe/Berlin", "America/New_York")
	e.apply(everySecond)
	_, stopA := e.start(nil)
	e.start(nil)
	eventually(t, "3 ticks in each zone", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 6, fmt.Sprint(n)
	})
	stopA()
	eventually(t, "3 more ticks in each zone", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 12, fmt.Sprint(n)
	})
	for _, zone := range []string{"Europe/Berlin", "America/New_York"} {
		var secs []int64
		for _, tk := range e.ticks() {
			if tk.zone == zone && !slices.Contains(secs, tk.nominal.Unix()) {
				secs = append(secs, tk.nominal.Unix())
			}
		}
		slices.Sort(secs)
		for i := 1; i < len(secs); i++ {
			if secs[i] != secs[i-1]+1 {
				t.Errorf("%s: ticks %v miss %d", zone, secs, secs[i-1]+1)
			}
		}
	}
	seen := map[string]bool{}
	for _, tk := range e.ticks() {
		if seen[tk.id] {
			t.Errorf("event %s twice", tk.id)
		}
		seen[tk.id] = true
		if tk.nominal.Nanosecond() != 0 {
			t.Errorf("nominal %s is not a whole second", tk.nominal)
		}
	}
	for k, n := range byNominal(e.ticks()) {
		// The newest tick may still be between its two shards.
		if n != 2 && n != 1 {
			t.Errorf("%s: %d events, want 2 (one per shard)", k, n)
		}
	}
}

// A user moving to a zone nobody used before adds a job within the zone
// refresh; a zone no longer in use loses its job.
func TestZoneJobsFollowTheDirectory(t *testing.T) {
	e := newEnv(t)
	e.zones.set("", "Europe/Berlin")
	e.apply(everySecond)
	e.start(nil)
	eventually(t, "a Berlin tick", func() (bool, string) {
		return len(e.ticks()) > 0, "none"
	})
	e.zones.set("", "Europe/Berlin", "Asia/Tokyo")
	eventually(t, "a Tokyo tick", func() (bool, string) {
		for _, tk := range e.ticks() {
			if tk.zone == "Asia/Tokyo" {
				return true, ""
			}
		}
		return false, fmt.Sprint(byNominal(e.ticks()))
	})
	e.zones.set("", "Asia/Tokyo")
	eventually(t, "Berlin to stop ticking", func() (bool, string) {
		var last time.Time
		for _, tk := range e.ticks() {
			if tk.zone == "Europe/Berlin" && tk.nominal.After(last) {
				last = tk.nominal
			}
		}
		if time.Since(last) < 2500*time.Millisecond {
			return false, "last Berlin tick " + last.String()
		}
		return true, ""
	})
	// A changed schedule replaces the jobs: every 2s ticks on even seconds.
	e.apply(`kind: Workflow
id: w
trigger: {type: schedule, every: 2s, timezoneFrom: user.metadata.timezone}
steps: [{id: a, type: http, url: "https://example.com"}]
`)
	changed := time.Now().Add(time.Second)
	eventually(t, "even-second ticks", func() (bool, string) {
		n := 0
		for _, tk := range e.ticks() {
			if tk.nominal.After(changed) {
				if tk.nominal.Unix()%2 != 0 {
					return false, "odd tick " + tk.nominal.String()
				}
				n++
			}
		}
		return n >= 2, fmt.Sprintf("%d", n)
	})
	// A deleted workflow loses its jobs: no tick after the delete is seen
	// by the scheduler (one reconcile, 100 ms here).
	rev, err := e.cat.DeleteWorkflow(e.ctx(), project, "w")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cat.WaitRevision(e.ctx(), rev); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	before := len(e.ticks())
	for time.Since(deleted) < 3*time.Second {
		for _, tk := range e.ticks()[before:] {
			if tk.nominal.After(deleted.Add(time.Second)) {
				t.Fatalf("tick %s after the workflow was deleted", tk.nominal)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart after missed ticks with catchup: once fires the latest missed
// tick, with its nominal time, before the regular ticks; catchup: skip
// fires none.
func TestCatchUpOnStart(t *testing.T) {
	for _, tc := range []struct {
		policy string
		want   int // catch-up ticks
	}{{"once", 1}, {"skip", 0}} {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t)
			e.apply(utcSchedule("every: 1s, catchup: " + tc.policy + ", catchupWindow: 1h"))
			// The state of a scheduler that last fired 30 s ago.
			last := time.Now().UTC().Truncate(time.Second).Add(-30 * time.Second)
			e.putState("w", "UTC", scheduler.State{Last: last})
			started := time.Now()
			e.start(nil)
			st := e.state("w", "UTC")
			var catchups []scheduler.Fired
			for _, f := range st.Recent {
				if f.Catchup {
					catchups = append(catchups, f)
				}
			}
			if len(catchups) != tc.want {
				t.Fatalf("catch-up ticks %+v, want %d", catchups, tc.want)
			}
			if tc.want == 1 {
				// The missed tick is the latest at or before the start.
				nominal := catchups[0].Nominal
				if nominal.After(started) || started.Sub(nominal) > 1100*time.Millisecond || !nominal.After(last) {
					t.Errorf("catch-up nominal %s, started %s", nominal, started)
				}
				if n := byNominal(e.ticks())["UTC@"+nominal.Format(time.RFC3339)]; n != 2 {
					t.Errorf("catch-up tick has %d events, want 2", n)
				}
			}
			// Only catch-up ticks fired at or before the start: the 29
			// others in between were not replayed.
			before := 0
			for _, tk := range e.ticks() {
				if !tk.nominal.After(started) {
					before++
				}
			}
			if before != 2*tc.want {
				t.Errorf("%d events at or before the start, want %d", before, 2*tc.want)
			}
		})
	}
}

// A job's state is stored at most every stateEvery while its ticks come
// faster, the ticks in between kept in its cache: the schedule view shows
// them at once, and Stop stores them, so the bucket's last tick is the
// newest on TRIGGERS after a clean stop.
func TestDeferredStateStoredOnStop(t *testing.T) {
	e := newEnv(t)
	e.apply(utcSchedule("every: 2s"))
	svc, stop := e.start(nil)
	eventually(t, "4 ticks", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 4, fmt.Sprint(n)
	})
	w, _ := e.cat.Workflow(project, "w")
	v, err := svc.View(e.ctx(), w, w.Trigger.Schedule(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Zones) != 1 || len(v.Zones[0].Recent) < 4 {
		t.Fatalf("view %+v: want the 4 fired ticks, cached or stored", v.Zones)
	}
	stop()
	var newest time.Time
	for _, tk := range e.ticks() {
		if tk.nominal.After(newest) {
			newest = tk.nominal
		}
	}
	if st := e.state("w", "UTC"); !st.Last.Equal(newest) {
		t.Errorf("stored last tick %s after stop, want the newest on TRIGGERS %s", st.Last, newest)
	}
}

// A replica whose clock is behind the stored last tick publishes nothing
// (the clock went backwards, or it lags another replica by more than the
// dedupe window).
func TestClockBackwardsNoRepeat(t *testing.T) {
	e := newEnv(t)
	e.apply(utcSchedule("every: 1s, catchup: all"))
	_, stop := e.start(nil)
	eventually(t, "3 ticks", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 3, fmt.Sprint(n)
	})
	stop()
	before := len(e.ticks())
	last := e.state("w", "UTC").Last
	// 20 s behind: every tick it sees is at or before the stored one.
	e.start(func() time.Time { return time.Now().Add(-20 * time.Second) })
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, tk := range e.ticks()[before:] {
			if !tk.nominal.After(last) {
				t.Fatalf("tick %s published again (last %s)", tk.nominal, last)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(e.ticks()); got != before {
		t.Errorf("%d new events from a replica 20 s behind", got-before)
	}
}

func stateKey(w, zone string) string { return project + "." + w + "." + subjects.Token(zone) }

func (e *env) kv() jetstream.KeyValue {
	e.t.Helper()
	kv, err := e.srv.JS.KeyValue(e.ctx(), subjects.BucketSchedules)
	if err != nil {
		e.t.Fatal(err)
	}
	return kv
}

func (e *env) putState(w, zone string, st scheduler.State) {
	e.t.Helper()
	b, _ := json.Marshal(st)
	if _, err := e.kv().Put(e.ctx(), stateKey(w, zone), b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) state(w, zone string) scheduler.State {
	e.t.Helper()
	en, err := e.kv().Get(e.ctx(), stateKey(w, zone))
	if err != nil {
		e.t.Fatal(err)
	}
	var st scheduler.State
	if err := json.Unmarshal(en.Value(), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// gocron runs a job armAhead before its tick; the tick itself is published
// at its nominal time, never before, and the ticks of the first armAhead
// after the job starts (which have no gocron run) are not skipped.
func TestTicksPublishedAtTheirNominalTime(t *testing.T) {
	e := newEnv(t)
	e.apply(utcSchedule("every: 1s, catchup: skip"))
	e.start(nil)
	// Start adds the job before it returns, so the first tick is the next
	// whole second at the latest.
	started := time.Now()
	eventually(t, "6 ticks", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 6, fmt.Sprint(n)
	})
	var secs []int64
	for _, tk := range e.ticks() {
		if tk.stored.Before(tk.nominal) {
			t.Errorf("tick %s stored at %s, before its nominal time", tk.nominal.Format(time.RFC3339), tk.stored.Format(time.RFC3339Nano))
		}
		if !slices.Contains(secs, tk.nominal.Unix()) {
			secs = append(secs, tk.nominal.Unix())
		}
	}
	slices.Sort(secs)
	// A later first tick means those before the job's first gocron run
	// (armAhead after it starts) were lost.
	if first := time.Unix(secs[0], 0); first.After(started.Add(time.Second)) {
		t.Errorf("first tick %s, more than 1 s after Start returned at %s: the armed ticks were skipped", first.UTC(), started.UTC())
	}
	for i := 1; i < len(secs); i++ {
		if secs[i] != secs[i-1]+1 {
			t.Errorf("ticks %v miss %d", secs, secs[i-1]+1)
		}
	}
}

// A replica whose timer fires late by several intervals (a stalled
// process, a clock jump forward) fires the ticks in between by the
// catch-up policy: with catchup: all no second is lost.
func TestLateTimerCatchesUp(t *testing.T) {
	e := newEnv(t)
	e.apply(utcSchedule("every: 1s, catchup: all"))
	var offset atomic.Int64
	e.start(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	eventually(t, "2 ticks", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 2, fmt.Sprint(n)
	})
	// The clock jumps 4 s ahead: the next timer names a tick 4 s on.
	offset.Store(int64(4 * time.Second))
	jumped := time.Now()
	eventually(t, "ticks past the jump", func() (bool, string) {
		for _, tk := range e.ticks() {
			if tk.nominal.After(jumped.Add(5 * time.Second)) {
				return true, ""
			}
		}
		return false, fmt.Sprint(byNominal(e.ticks()))
	})
	var secs []int64
	for _, tk := range e.ticks() {
		if !slices.Contains(secs, tk.nominal.Unix()) {
			secs = append(secs, tk.nominal.Unix())
		}
	}
	slices.Sort(secs)
	for i := 1; i < len(secs); i++ {
		if secs[i] != secs[i-1]+1 {
			t.Errorf("ticks %v miss %d", secs, secs[i-1]+1)
		}
	}
}

// simulatedTicks is how many ticks TestSimulatedTicksTwoReplicas drives
// through a fake clock; SB_SCHED_TICKS raises it (the figure is
// 10,000: SB_SCHED_TICKS=10000).
func simulatedTicks(t *testing.T) int {
	if v := os.Getenv("SB_SCHED_TICKS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("SB_SCHED_TICKS=%q", v)
		}
		return n
	}
	return 1000
}

// Two replicas on one fake clock, one stopped halfway: every simulated
// tick is on TRIGGERS exactly once — no duplicate, no missed tick.
func TestSimulatedTicksTwoReplicas(t *testing.T) {
	n := simulatedTicks(t)
	e := newEnv(t)
	e.apply(utcSchedule("every: 1s, catchup: all"))
	start := time.Date(2026, 1, 1, 0, 0, 0, 500e6, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	replica := func() func() {
		svc, err := scheduler.New(scheduler.Options{
			JS: e.srv.JS, Catalog: e.cat, Directory: e.zones, Triggers: e.pub, Logger: testlog.New(t),
			Shards: 1, Clock: clock,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(e.ctx()); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		stop := func() {
			once.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := svc.Stop(ctx); err != nil {
					t.Errorf("stop: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
	stopA := replica()
	replica()
	for i := 1; i <= n; i++ {
		if i == n/2 {
			stopA()
		}
		clock.Advance(time.Second)
		want := start.Truncate(time.Second).Add(time.Duration(i) * time.Second)
		// Tick i is on TRIGGERS (one event a tick: Shards 1) before the
		// clock moves on. Not the stored state: it is stored every
		// stateEvery of real time, not every tick.
		deadline := time.Now().Add(waitFor)
		for {
			if e.tickCount() >= i {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tick %d (%s) not fired", i, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ts := e.ticks()
	seen := map[int64]int{}
	for _, tk := range ts {
		seen[tk.nominal.Unix()]++
	}
	first := start.Truncate(time.Second).Unix() + 1
	for s := first; s < first+int64(n); s++ {
		if seen[s] != 1 {
			t.Errorf("tick %s on TRIGGERS %d times", time.Unix(s, 0).UTC(), seen[s])
		}
	}
	if len(ts) != n {
		t.Errorf("%d events for %d ticks", len(ts), n)
	}
}

// tickCount is how many events TRIGGERS holds for the test's project.
func (e *env) tickCount() int {
	e.t.Helper()
	s, err := e.srv.JS.Stream(e.ctx(), subjects.StreamTriggers)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx(), jetstream.WithSubjectFilter(subjects.TriggersOfProject(project)))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// A tick of a small zone is one event, a large zone's one event per shard:
// the scheduler reads each zone's size when it reads the zones in use.
func TestSmallZoneTicksInOneEvent(t *testing.T) {
	e := newEnv(t)
	e.zones.set("", "Europe/Berlin", "Asia/Tokyo")
	e.apply(everySecond)
	svc, err := scheduler.New(scheduler.Options{
		JS: e.srv.JS, Catalog: e.cat, Directory: sizedZones{e.zones, map[string]bool{"Asia/Tokyo": true}}, Triggers: e.pub,
		Logger: testlog.New(t), Shards: 4, ZoneRefresh: 300 * time.Millisecond, Reconcile: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(e.ctx()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	eventually(t, "3 ticks in each zone", func() (bool, string) {
		n := byNominal(e.ticks())
		return len(n) >= 6, fmt.Sprint(n)
	})
	want := map[string]uint32{"Europe/Berlin": 1, "Asia/Tokyo": 4}
	for _, tk := range e.ticks() {
		if tk.shards != want[tk.zone] {
			t.Errorf("%s tick %s: shard %d of %d, want %d shards", tk.zone, tk.nominal.Format(time.TimeOnly), tk.shard, tk.shards, want[tk.zone])
		}
	}
	for k, n := range byNominal(e.ticks()) {
		if zone := k[:strings.IndexByte(k, '@')]; n > int(want[zone]) {
			t.Errorf("%s: %d events, want at most %d", k, n, want[zone])
		}
	}
}

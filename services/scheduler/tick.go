package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// State is what the sb_schedules bucket keeps per (project, workflow, zone).
type State struct {
	// Last is the last fired nominal time; no tick at or before it is
	// published again (a replica whose clock went back, a second replica).
	Last time.Time `json:"last,omitzero"`
	// Since is when a scheduler first ran the job: catch-up for a job that
	// never fired starts there, so a tick missed before the first one
	// fired is still caught up.
	Since time.Time `json:"since,omitzero"`
	// Recent are the last fired ticks, newest last.
	Recent []Fired `json:"recent,omitempty"`
}

// Fired is one fired tick.
type Fired struct {
	Nominal time.Time `json:"nominal"`
	// Events are the tick's event ids, one per shard.
	Events []string `json:"events"`
	// Catchup marks a tick fired on start for the time no scheduler ran.
	Catchup bool      `json:"catchup,omitempty"`
	At      time.Time `json:"at"`
}

// stateKey is the bucket key of a job: <project>.<workflow>.<zone token>.
func stateKey(k jobKey) string {
	return k.project + "." + k.workflow + "." + subjects.Token(k.zone)
}

func (s *Service) readState(ctx context.Context, k jobKey) (State, uint64, error) {
	e, err := s.kv.Get(ctx, stateKey(k))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{}, 0, nil
	}
	if err != nil {
		return State{}, 0, fmt.Errorf("scheduler: state of %s: %w", stateKey(k), err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// A state this build cannot read is replaced, not fatal: at worst a
		// tick inside the dedupe window is published again and absorbed.
		s.log.Warn("unreadable schedule state replaced", "key", stateKey(k), "err", err)
		return State{}, e.Revision(), nil
	}
	return st, e.Revision(), nil
}

// updateState applies fn to the stored state with compare-and-set, so two
// replicas never move Last backwards.
func (s *Service) updateState(ctx context.Context, k jobKey, fn func(*State) bool) error {
	_, _, err := s.updateStateFrom(ctx, k, nil, 0, fn)
	return err
}

// updateStateFrom is updateState starting from a state already read (at
// revision rev; nil: read it first): a compare-and-set that lost against
// another replica reads the state again and applies fn to that. It returns
// the state stored (or found, when fn declined) and its revision.
func (s *Service) updateStateFrom(ctx context.Context, k jobKey, known *State, rev uint64, fn func(*State) bool) (State, uint64, error) {
	for range 20 {
		var st State
		if known != nil {
			// A copy: fn appends to Recent, which a cached state shares.
			st = *known
			st.Recent = slices.Clone(known.Recent)
			known = nil
		} else {
			var err error
			if st, rev, err = s.readState(ctx, k); err != nil {
				return State{}, 0, err
			}
		}
		if !fn(&st) {
			return st, rev, nil
		}
		b, err := json.Marshal(st)
		if err != nil {
			return State{}, 0, err
		}
		var next uint64
		if rev == 0 {
			next, err = s.kv.Create(ctx, stateKey(k), b)
		} else {
			next, err = s.kv.Update(ctx, stateKey(k), b, rev)
		}
		if err == nil {
			return st, next, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return State{}, 0, fmt.Errorf("scheduler: store state of %s: %w", stateKey(k), err)
		}
	}
	return State{}, 0, fmt.Errorf("scheduler: state of %s: too many concurrent updates", stateKey(k))
}

// stateFresh is how long a job trusts the state it last read or stored
// instead of reading it again before a tick. Another replica's newer state
// is seen at the latest by the compare-and-set after the publish, and a
// tick published again meanwhile is one that replica fired less than
// stateFresh ago: well inside the duplicate window (2 minutes by default),
// so JetStream keeps one.
const stateFresh = 30 * time.Second

// jobState is the job's last fired state: the cached one while fresh,
// otherwise read from the bucket (and cached).
func (s *Service) jobState(ctx context.Context, j *job) (State, uint64, error) {
	j.stMu.Lock()
	if j.stAt.IsZero() || time.Since(j.stAt) >= stateFresh {
		j.stMu.Unlock()
		st, rev, err := s.readState(ctx, j.key)
		if err != nil {
			return State{}, 0, err
		}
		j.remember(st, rev)
		j.stMu.Lock()
	}
	defer j.stMu.Unlock()
	return j.st, j.stRev, nil
}

// remember caches the state the job read or stored at rev; an older one
// than cached (a slower concurrent run of the job) is ignored. Ticks kept
// in the cache and not stored yet (deferState) that are newer than st stay
// cached, on st's revision.
func (j *job) remember(st State, rev uint64) {
	j.stMu.Lock()
	defer j.stMu.Unlock()
	if rev < j.stRev {
		return
	}
	if j.dirty && j.st.Last.After(st.Last) {
		j.stRev, j.stAt = rev, time.Now()
		return
	}
	j.st, j.stRev, j.stAt, j.dirty, j.storedAt = st, rev, time.Now(), false, time.Now()
}

// stateEvery is how often at most a job's state is stored while its ticks
// come faster: a tick within stateEvery of the last stored state is kept
// in the job's cache (deferState) and stored with a later one or by the
// flush (flushStates). At ten thousand jobs every 5 s a compare-and-set a
// tick was the scheduler's largest cost after the publish. What the bucket
// may lack after a crash — up to stateEvery of fired ticks — is within the
// duplicate window (2 minutes by default): a replica catching up publishes
// them again under the same ids and JetStream keeps one; the executor looks
// such old ticks' runs up before running them.
const stateEvery = 15 * time.Second

// deferState keeps fired tick nominal (checked against revision rev) in
// the job's cache instead of storing it now, when the state was stored less
// than stateEvery ago and nothing changed the cache since the check.
func (j *job) deferState(nominal time.Time, ids []string, rev uint64, at time.Time) bool {
	j.stMu.Lock()
	defer j.stMu.Unlock()
	if j.stRev != rev || j.storedAt.IsZero() || time.Since(j.storedAt) >= stateEvery {
		return false
	}
	st := j.st
	st.Recent = slices.Clone(j.st.Recent)
	if advance(nominal, ids, false, at)(&st) {
		j.st, j.stAt, j.dirty = st, time.Now(), true
	}
	return true
}

// flushWrite is the write of the job's cached state when it holds ticks
// not stored and was stored stateEvery ago or more (any time, with all).
func (j *job) flushWrite(all bool) (stateWrite, bool) {
	j.stMu.Lock()
	defer j.stMu.Unlock()
	if !j.dirty || len(j.st.Recent) == 0 || (!all && time.Since(j.storedAt) < stateEvery) {
		return stateWrite{}, false
	}
	// Not flushed again before this write is answered (or, failed, before
	// stateEvery has passed again).
	j.storedAt = time.Now()
	newest := j.st.Recent[len(j.st.Recent)-1]
	st := j.st
	st.Recent = slices.Clone(j.st.Recent)
	return stateWrite{j: j, nominal: newest.Nominal, ids: newest.Events, st: st, rev: j.stRev, at: newest.At, flush: true}, true
}

// flushStates queues the writes of the jobs' deferred ticks (all of them
// with all: on stop).
func (s *Service) flushStates(all bool) {
	s.mu.Lock()
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	for _, j := range jobs {
		if w, ok := j.flushWrite(all); ok {
			s.writes <- w
		}
	}
}

// cachedState is the state the job of k holds, when this replica runs it
// (with ticks not stored yet), else the stored one.
func (s *Service) cachedState(ctx context.Context, k jobKey) (State, error) {
	s.mu.Lock()
	j := s.jobs[k]
	s.mu.Unlock()
	if j != nil {
		j.stMu.Lock()
		st, known := j.st, !j.stAt.IsZero()
		j.stMu.Unlock()
		if known {
			return st, nil
		}
	}
	st, _, err := s.readState(ctx, k)
	return st, err
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// catchUp fires the ticks missed since the stored state, per the catch-up
// policy, before the job's timer takes over; a job seen for the first time
// records when it started.
func (s *Service) catchUp(ctx context.Context, j *job) error {
	st, _, err := s.readState(ctx, j.key)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	from := st.Last
	if from.IsZero() {
		from = st.Since
	}
	if from.IsZero() {
		return s.updateState(ctx, j.key, func(st *State) bool {
			if !st.Since.IsZero() || !st.Last.IsZero() {
				return false
			}
			st.Since = now.UTC().Truncate(time.Second)
			return true
		})
	}
	for _, t := range j.sched.Missed(from, now, j.loc) {
		if _, err := s.fire(ctx, j, t, true); err != nil {
			return err
		}
	}
	return nil
}

// fire publishes tick nominal of job j, one event per shard, unless the
// stored state says it (or a later tick) was fired already; then it moves
// the state forward. It returns the event ids (nil when skipped).
func (s *Service) fire(ctx context.Context, j *job, nominal time.Time, catchup bool) ([]string, error) {
	ids, st, rev, err := s.publishIfDue(ctx, j, nominal)
	if err != nil || ids == nil {
		return nil, err
	}
	st, rev, err = s.updateStateFrom(ctx, j.key, &st, rev, advance(nominal, ids, catchup, s.opts.Now().UTC()))
	if err == nil {
		j.remember(st, rev)
	}
	s.log.Debug("tick fired", "key", stateKey(j.key), "nominal", nominal.UTC(), "catchup", catchup)
	return ids, err
}

// publishIfDue publishes tick nominal of job j unless the job's state
// says it (or a later tick) was fired already, and returns its event ids
// (nil when skipped) and the state it was checked against. A job's ticks
// are checked and published one at a time, so a later tick's state can
// never make an earlier one look fired before it is published.
func (s *Service) publishIfDue(ctx context.Context, j *job, nominal time.Time) ([]string, State, uint64, error) {
	j.fireMu.Lock()
	defer j.fireMu.Unlock()
	st, rev, err := s.jobState(ctx, j)
	if err != nil {
		return nil, State{}, 0, err
	}
	if !nominal.After(st.Last) {
		s.log.Debug("tick already fired", "key", stateKey(j.key), "nominal", nominal.UTC(), "last", st.Last)
		return nil, State{}, 0, nil
	}
	w := j.w.Load()
	tickID := schedule.TickID(j.key.project, j.key.workflow, j.key.zone, nominal)
	ids, err := s.publishTick(ctx, w, j.key.zone, nominal, tickID, "", s.shardsFor(w, j.sched, j.key.zone))
	if err != nil {
		return nil, State{}, 0, err
	}
	return ids, st, rev, nil
}

// advance moves a state to fired tick nominal (ids its events), unless it
// is there already.
func advance(nominal time.Time, ids []string, catchup bool, at time.Time) func(*State) bool {
	return func(st *State) bool {
		if !nominal.After(st.Last) {
			return false
		}
		st.Last = nominal.UTC()
		st.Recent = append(st.Recent, Fired{Nominal: nominal.UTC(), Events: ids, Catchup: catchup, At: at})
		if n := len(st.Recent); n > recentTicks {
			st.Recent = st.Recent[n-recentTicks:]
		}
		return true
	}
}

// Ticks on time go through a pipeline instead of each gocron task
// publishing and storing its own: ten thousand jobs ticking at the same
// second are otherwise ten thousand goroutines each waiting for two round
// trips, whose stacks the garbage collector scans over and over (most of
// the scheduler's CPU at 1,000 workflows × 10 zones). The due timers
// (armAhead) queue the ticks (fireQueue); publishers publish queued ticks,
// publishers at a time; one state writer stores the fired ticks' states in
// batches of asynchronous compare-and-set publishes, all in flight
// together. A tick is stored as fired only after its events are, as before.
//
// A publish waits for its ack, about 20 ms while ten thousand ticks are
// being stored and routed on this 2-core machine: 128 publishers stored
// ≈ 6,400 ticks a second, so the last of ten thousand due at one second
// was 1.3 s late (p99); 1,024 publishers: 0.86–0.89 s (docs/benchmarks.md).
const (
	fireQueue     = 1 << 16
	publishers    = 1024
	maxStateBatch = 4096
	// pipelineTimeout bounds one tick's publish and one batch of state writes.
	pipelineTimeout = 30 * time.Second
)

// firing is a tick a job's task queued.
type firing struct {
	j       *job
	nominal time.Time
}

// stateWrite is a published tick whose state is to be stored: st at rev is
// the state it was checked against.
type stateWrite struct {
	j       *job
	nominal time.Time
	ids     []string
	st      State
	rev     uint64
	at      time.Time
	// flush: st holds the ticks already (the cache's deferred ones, the
	// newest being nominal); it is stored as it is.
	flush bool
}

// startPipeline starts the publishers and the state writer.
func (s *Service) startPipeline() {
	s.fires = make(chan firing, fireQueue)
	s.writes = make(chan stateWrite, fireQueue)
	s.writerDone = make(chan struct{})
	for range publishers {
		s.pubs.Add(1)
		go s.publisher()
	}
	go s.stateWriter()
}

// stopPipeline publishes and stores what is queued, then stops.
func (s *Service) stopPipeline() {
	if s.fires == nil {
		return
	}
	s.queueMu.Lock()
	s.queueClosed = true
	close(s.fires)
	s.queueMu.Unlock()
	s.pubs.Wait()
	s.flushStates(true)
	close(s.writes)
	<-s.writerDone
}

// enqueue queues tick nominal of j; false once the pipeline stopped.
func (s *Service) enqueue(j *job, nominal time.Time) bool {
	s.queueMu.RLock()
	defer s.queueMu.RUnlock()
	if s.queueClosed {
		return false
	}
	s.fires <- firing{j: j, nominal: nominal}
	return true
}

func (s *Service) publisher() {
	defer s.pubs.Done()
	for f := range s.fires {
		ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
		ids, st, rev, err := s.publishIfDue(ctx, f.j, f.nominal)
		cancel()
		if err != nil {
			s.log.Error("tick not published", "project", f.j.key.project, "workflow", f.j.key.workflow, "zone", f.j.key.zone,
				"nominal", f.nominal.UTC(), "err", err)
			continue
		}
		if ids != nil {
			at := s.opts.Now().UTC()
			if f.j.deferState(f.nominal, ids, rev, at) {
				continue
			}
			s.writes <- stateWrite{j: f.j, nominal: f.nominal, ids: ids, st: st, rev: rev, at: at}
		}
	}
}

func (s *Service) stateWriter() {
	defer close(s.writerDone)
	for w := range s.writes {
		batch := []stateWrite{w}
	more:
		for len(batch) < maxStateBatch {
			select {
			case w, ok := <-s.writes:
				if !ok {
					break more
				}
				batch = append(batch, w)
			default:
				break more
			}
		}
		s.writeStates(batch)
	}
}

// writeStates stores the states of a batch of fired ticks: one
// compare-and-set publish each against the revision the tick was checked
// at, all in flight together. One that lost (another replica, or an
// earlier tick of the same job in the batch) reads the state and tries
// again, as updateState does.
func (s *Service) writeStates(batch []stateWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, len(batch))
	next := make([]State, len(batch))
	var retry []stateWrite
	for i, w := range batch {
		st := w.st
		st.Recent = slices.Clone(w.st.Recent)
		if !w.flush && !advance(w.nominal, w.ids, false, w.at)(&st) {
			continue
		}
		b, err := json.Marshal(st)
		if err != nil {
			s.log.Error("schedule state not stored", "key", stateKey(w.j.key), "err", err)
			continue
		}
		m := nats.NewMsg(s.statePrefix + stateKey(w.j.key))
		m.Data = b
		f, err := s.opts.JS.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(w.rev))
		if err != nil {
			retry = append(retry, w)
			continue
		}
		futures[i], next[i] = f, st
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			batch[i].j.remember(next[i], ack.Sequence)
		case err := <-f.Err():
			if !isWrongSequence(err) {
				s.log.Warn("schedule state: write failed; trying again", "key", stateKey(batch[i].j.key), "err", err)
			}
			retry = append(retry, batch[i])
		case <-ctx.Done():
			s.log.Error("schedule states not stored", "err", ctx.Err(), "ticks", len(batch))
			return
		}
	}
	for _, w := range retry {
		st, rev, err := s.updateStateFrom(ctx, w.j.key, nil, 0, advance(w.nominal, w.ids, false, w.at))
		if err != nil {
			s.log.Error("schedule state not stored", "key", stateKey(w.j.key), "nominal", w.nominal.UTC(), "err", err)
			continue
		}
		w.j.remember(st, rev)
	}
}

// publishTick publishes one SCHEDULE event per shard. Their ids derive from
// the tick id and the shard, so every replica publishing the same tick
// publishes the same Nats-Msg-Ids and JetStream keeps one of each. Name is
// the tick id: the router derives run ids from it, so a user's run of a
// tick has one id whatever the shard count. user limits the tick to one
// user (a manual run); the router then looks only them up.
func (s *Service) publishTick(ctx context.Context, w *workflow.Workflow, zone string, nominal time.Time, tickID, user string, shards int) ([]string, error) {
	ids := make([]string, shards)
	errs := make([]error, shards)
	// The shards are published concurrently: each waits for its ack, and a
	// tick's lateness should not grow with its shard count.
	var wg sync.WaitGroup
	for shard := range shards {
		ev := &sbv1.TriggerEvent{
			Id:          trigger.DerivedID(nominal, tickID, strconv.Itoa(shard), strconv.Itoa(shards)),
			Project:     w.Project,
			Kind:        sbv1.Kind_SCHEDULE,
			Name:        tickID,
			Workflow:    w.ID,
			Integration: w.Integration,
			User:        user,
			Detail: &sbv1.TriggerEvent_Schedule{Schedule: &sbv1.ScheduleTick{
				Workflow: w.ID, Zone: zone, NominalTime: timestamppb.New(nominal),
				Shard: uint32(shard), Shards: uint32(shards),
			}},
			OccurredAt: timestamppb.New(nominal),
			// Received at the nominal time: a tick published again later (a
			// replica that fired it but crashed before storing the state,
			// catch-up, backfill) is older than the dedupe window to the
			// executor, which then looks each run up before running it,
			// instead of taking the fast path of a fresh trigger.
			ReceivedAt: timestamppb.New(nominal),
		}
		ids[shard] = ev.Id
		wg.Go(func() {
			if _, err := s.opts.Triggers.Publish(ctx, ev, trigger.WithCatalogRevision(s.opts.Catalog.Revision())); err != nil {
				errs[shard] = fmt.Errorf("scheduler: publish tick %s shard %d: %w", tickID, shard, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ids, nil
}

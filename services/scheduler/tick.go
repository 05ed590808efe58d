package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

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
	for range 20 {
		st, rev, err := s.readState(ctx, k)
		if err != nil {
			return err
		}
		if !fn(&st) {
			return nil
		}
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, stateKey(k), b)
		} else {
			_, err = s.kv.Update(ctx, stateKey(k), b, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return fmt.Errorf("scheduler: store state of %s: %w", stateKey(k), err)
		}
	}
	return fmt.Errorf("scheduler: state of %s: too many concurrent updates", stateKey(k))
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
	st, _, err := s.readState(ctx, j.key)
	if err != nil {
		return nil, err
	}
	if !nominal.After(st.Last) {
		s.log.Debug("tick already fired", "key", stateKey(j.key), "nominal", nominal.UTC(), "last", st.Last)
		return nil, nil
	}
	tickID := schedule.TickID(j.key.project, j.key.workflow, j.key.zone, nominal)
	ids, err := s.publishTick(ctx, j.w.Load(), j.key.zone, nominal, tickID, "", s.opts.Shards)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC()
	err = s.updateState(ctx, j.key, func(st *State) bool {
		if !nominal.After(st.Last) {
			return false
		}
		st.Last = nominal.UTC()
		st.Recent = append(st.Recent, Fired{Nominal: nominal.UTC(), Events: ids, Catchup: catchup, At: now})
		if n := len(st.Recent); n > recentTicks {
			st.Recent = st.Recent[n-recentTicks:]
		}
		return true
	})
	s.log.Debug("tick fired", "key", stateKey(j.key), "nominal", nominal.UTC(), "catchup", catchup)
	return ids, err
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

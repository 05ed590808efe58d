package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/reqbody"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/template"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// execution is one delivery of one run.
type execution struct {
	s    *Service
	msg  jetstream.Msg
	log  *slog.Logger
	ev   *sbv1.TriggerEvent
	wf   *workflow.Workflow
	run  *runs.Run
	user *directory.User
	cred *directory.Credential
	env  map[string]any
	pubs publishes
	// reply is the response step's answer, sent once it is checkpointed.
	reply *runs.Reply
	// replied is set once the synchronous caller got its answer.
	replied bool
	// running is the delayed "running" snapshot, if not yet flushed.
	running *lazyPublish
	// checkpointed is set once RUN_STATE holds a state of this run, which
	// its final state must then supersede.
	checkpointed bool
}

// runRef names one run: which run of a trigger a message stands for.
type runRef struct {
	id, workflow, user, credential string
}

// execute handles one run message (a consume.Handler): nil acks it once
// the run reached its final state (or had already); a step waiting for its
// next attempt hands the message back with that delay; infrastructure
// trouble is retried, and the run resumes after its last checkpoint.
func (s *Service) execute(ctx context.Context, m jetstream.Msg) error {
	h := m.Headers()
	ref := runRef{id: h.Get(HeaderRunID), workflow: h.Get(HeaderWorkflow), user: h.Get(HeaderUser), credential: h.Get(HeaderCredential)}
	if !runs.ValidID(ref.id) {
		// A run message we cannot even read will never get better.
		return consume.Permanent(fmt.Errorf("bad run id %q", ref.id))
	}
	ev, err := envelope.Decode(m.Data(), h.Get(envelope.HeaderContentType))
	if err != nil {
		return consume.Permanent(err)
	}
	if err := checkRunSubject(m.Subject(), ev.Project, ref.workflow); err != nil {
		return consume.Permanent(err)
	}
	if wait, err := s.buffered(ctx, m, ev.Project, h.Get(HeaderAfterRun)); err != nil || wait > 0 {
		if err != nil {
			return err
		}
		return consume.Retry(errBuffered, wait)
	}
	return s.run(ctx, m, ref, ev)
}

// errBuffered hands back a buffered schedule run whose predecessor is
// still in flight.
var errBuffered = errors.New("waiting for the previous run of the schedule (overlap buffer_one)")

// maxBufferedDeliveries bounds how often a buffered run is handed back
// while its predecessor runs (1 s doubling to 30 s: about 3 minutes); then
// it runs anyway, so it keeps the deliveries its own step retries need.
const maxBufferedDeliveries = 10

// buffered says how long to hand back a run that waits for run after
// (HeaderAfterRun), or 0 to run it now. The wait is a delayed redelivery,
// so no executor slot is held meanwhile.
func (s *Service) buffered(ctx context.Context, m jetstream.Msg, project, after string) (time.Duration, error) {
	if after == "" || !runs.ValidID(after) {
		return 0, nil
	}
	md, err := m.Metadata()
	if err != nil || md.NumDelivered > maxBufferedDeliveries {
		if err == nil {
			s.log.Warn("buffered run starts while its predecessor may still run", "after", after, "deliveries", md.NumDelivered)
		}
		return 0, nil
	}
	running, err := s.states.Running(ctx, project, []string{after})
	if err != nil || !running[after] {
		return 0, err
	}
	return min(time.Second<<(md.NumDelivered-1), 30*time.Second), nil
}

// checkRunSubject refuses a run message whose subject disagrees with what
// it says it runs. Publish permissions are granted per subject, and the
// executor consuming sb.run.<project>.> is that project's: a run whose
// envelope names another project (or whose header another workflow) would
// run that workflow with that project's users and credentials. The
// subject is what the server vouches for, so it wins, and the message is
// dead-lettered rather than "corrected": the router never publishes one.
func checkRunSubject(subject, project, workflow string) error {
	sp, sw, ok := subjects.RunParts(subject)
	if !ok {
		return fmt.Errorf("subject %q is not sb.run.<project>.<workflow>", wire.Prefix(subject, 256))
	}
	if project != sp {
		return fmt.Errorf("envelope project %q does not match subject project %q", wire.Prefix(project, 256), sp)
	}
	if workflow != sw {
		return fmt.Errorf("workflow %q of header %s does not match subject workflow %q", wire.Prefix(workflow, 256), HeaderWorkflow, sw)
	}
	return nil
}

// run executes run ref of trigger ev; m is the message that holds it
// durably until the run is done — a RUNS message, or the trigger itself
// for a run the router executes in place — and the error says how to
// settle m.
func (s *Service) run(ctx context.Context, m jetstream.Msg, ref runRef, ev *sbv1.TriggerEvent) (err error) {
	ctx, span := s.startRun(ctx, m, ref, ev)
	var x *execution
	defer func() { endRun(span, x, err) }()
	x, err = s.prepare(m, ref, ev)
	if err != nil {
		return err
	}
	if x == nil { // already finished by an earlier delivery
		return nil
	}
	if p := x.run.Pending; p != nil {
		if wait := time.Until(p.RetryAt); wait > 0 {
			// Redelivered before its retry is due (a crash, or a redelivery
			// that skipped the delay): wait out the rest, outside a slot.
			return consume.Retry(errNotDue, wait)
		}
	}
	err = x.runSteps(ctx)
	_ = x.settleRunning()
	var later retryLater
	if errors.As(err, &later) {
		return consume.Retry(later, later.after)
	}
	if err != nil && wire.Permanent(err) {
		// A record of this run that can never be stored: retrying would
		// run its steps again for nothing.
		x.log.Error("run cannot be recorded; dead-lettering its message", "err", err)
		return consume.Permanent(err)
	}
	if err != nil {
		x.log.Warn("run abandoned for redelivery", "err", err)
		return err
	}
	return nil
}

// errNotDue is a run redelivered before its pending step's retry is due.
var errNotDue = errors.New("the step's next attempt is not due yet")

// prepare loads the run's last checkpoint. It returns nil, nil when the run
// already reached a final state.
func (s *Service) prepare(m jetstream.Msg, ref runRef, ev *sbv1.TriggerEvent) (*execution, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	runID := ref.id
	x := &execution{
		s:    s,
		msg:  m,
		ev:   ev,
		log:  s.log.With("run", runID, "event", ev.Id, "workflow", ref.workflow),
		pubs: publishes{js: s.opts.JS},
	}
	x.run = &runs.Run{
		ID: runID, Project: ev.Project, Workflow: ref.workflow, User: ref.user,
		Credential: ref.credential, EventID: ev.Id, Status: runs.StatusQueued,
		ReplayOf: ev.ReplayOf, CreatedAt: ev.GetReceivedAt().AsTime(), Steps: []runs.Step{},
	}
	// A first delivery of a run just triggered is a run that never started:
	// it needs no lookup. Any other may stand for a run that already
	// finished — a redelivery; a delivery after a server crash, where
	// consumer state is lost and redeliveries come back as first ones; a
	// run published again outside the dedupe window, whose trigger is old —
	// and running it again would repeat its side effects.
	var prev *runs.Run
	if s.suspect(md, ev) {
		if prev, err = s.lastSnapshot(context.Background(), x.run.Project, runID); err != nil {
			return nil, err
		}
		x.checkpointed = prev != nil
	}
	deliveries := int(md.NumDelivered)
	if prev != nil {
		if prev.ID != runID || prev.Project != x.run.Project || prev.Workflow != x.run.Workflow {
			// The state is looked up by the run's own subject; one that
			// names another run (or project) would make this delivery run
			// that one.
			return nil, consume.Permanent(fmt.Errorf("stored state of run %s names run %s of %s/%s", runID, prev.ID, prev.Project, prev.Workflow))
		}
		if prev.Status.Terminal() {
			return nil, nil
		}
		x.run = prev
		// The snapshot counts deliveries that got as far as a checkpoint,
		// across crashes; NumDelivered counts those since the last one.
		deliveries = max(deliveries, prev.Deliveries+1)
		x.log.Info("resuming run", "steps_done", len(prev.Steps), "delivery", deliveries)
	}
	x.run.Deliveries = deliveries
	return x, nil
}

// suspect reports whether a delivery may stand for a run that already ran:
// a redelivery; a message stored before this router started or its
// connection last came back (the server may have crashed, losing consumer
// state, so a redelivery arrives as a first delivery); or a run whose
// trigger is older than half the dedupe window (published again after the
// window, its first copy may have run). Everything else is a run that was
// just triggered and has never started.
func (s *Service) suspect(md *jetstream.MsgMetadata, ev *sbv1.TriggerEvent) bool {
	return md.NumDelivered > 1 || md.Timestamp.Before(s.connectedSince()) ||
		time.Since(ev.GetReceivedAt().AsTime()) > s.opts.DuplicateWindow/2
}

// noteDelivery watches for a consumer whose state went back: the server
// numbers deliveries in order, so a delivery numbered at or below one this
// router already had means the consumer's state was restored from an
// earlier point (a server restarted without this router's connection
// dropping, in a cluster). Messages stored before then are suspect as after
// a reconnect.
//
// It sees every delivery once, in the order the server sent them
// (consume.Options.OnReceive), before its handler can ask suspect.
func (s *Service) noteDelivery(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	v, _ := s.delivered.LoadOrStore(md.Consumer, new(atomic.Uint64))
	last := v.(*atomic.Uint64)
	for {
		seen := last.Load()
		if md.Sequence.Consumer > seen {
			if last.CompareAndSwap(seen, md.Sequence.Consumer) {
				return
			}
			continue
		}
		s.log.Warn("consumer state went back; checking runs stored before now for a finished state",
			"consumer", md.Consumer, "delivery", md.Sequence.Consumer, "seen", seen)
		s.since.Store(time.Now().UnixNano())
		last.Store(md.Sequence.Consumer)
		return
	}
}

// lastSnapshot returns the run's last stored state, or nil if it has none.
// RUN_STATE holds the checkpoints of runs in flight; a finished run is found
// in the run-history read model (a finished run that had a checkpoint also
// leaves its final state in RUN_STATE for a while, superseding it).
func (s *Service) lastSnapshot(ctx context.Context, project, runID string) (*runs.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := s.state.GetLastMsgForSubject(ctx, subjects.RunState(project, runID))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return s.historyState(ctx, project, runID)
	case err != nil:
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	var r runs.Run
	if err := json.Unmarshal(raw.Data, &r); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	return &r, nil
}

// historyState asks the run-history read model for a run's state: nil if
// it never saw the run or only as queued, the run if it is further along.
func (s *Service) historyState(ctx context.Context, project, runID string) (*runs.Run, error) {
	m, err := s.opts.NC.RequestWithContext(ctx, subjects.HistoryRunQuery(project, runID), nil)
	if errors.Is(err, nats.ErrNoResponders) {
		// Without a history role nothing can tell; a deployment without
		// one accepts that a run redelivered after it finished may run
		// again. Every shape Switchboard ships runs one.
		s.log.Warn("no run-history role answers; running the run as not finished", "run", runID)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ask run history about %s: %w", runID, err)
	}
	var ans runs.StateAnswer
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		return nil, fmt.Errorf("decode run history answer: %w", err)
	}
	if ans.Error != "" {
		return nil, fmt.Errorf("run history about %s: %s", runID, ans.Error)
	}
	if ans.Run == nil || ans.Run.Status == runs.StatusQueued {
		return nil, nil
	}
	return ans.Run, nil
}

// snapshot publishes the run's current state: to RUN_STATE, where a
// redelivery resumes from it (a finished run's with a TTL), and to the
// history log. Publishes are asynchronous; flush waits for all of them.
func (x *execution) snapshot(ctx context.Context) error {
	// A later snapshot supersedes a pending "running" one; settling it first
	// keeps the history log in Seq order.
	if err := x.settleRunning(); err != nil {
		return err
	}
	m, err := x.snapshotMsg()
	if err != nil {
		return err
	}
	if len(m.Data) > x.s.budgets.Record {
		// Every value fits the inline budget, but many steps of them may
		// not fit one record: move all of them to the object store.
		x.run.Seq--
		if err := x.spillAll(ctx); err != nil {
			return err
		}
		if m, err = x.snapshotMsg(); err != nil {
			return err
		}
		if len(m.Data) > x.s.budgets.Record {
			return consume.Permanent(wire.TooLarge("run state", len(m.Data), x.s.budgets.Record))
		}
	}
	if err := x.pubs.add(m); err != nil {
		return err
	}
	// RUN_STATE holds what a redelivery resumes from: a checkpoint of a run
	// in flight. A finished run's state is in the history log; it goes to
	// RUN_STATE too only to supersede a checkpoint there, and then with a
	// TTL, so the server's per-subject index holds runs in flight and not
	// every run ever.
	terminal := x.run.Status.Terminal()
	if terminal && !x.checkpointed {
		return nil
	}
	state := nats.NewMsg(subjects.RunState(x.run.Project, x.run.ID))
	state.Data = m.Data
	var opts []jetstream.PublishOpt
	if terminal {
		opts = append(opts, jetstream.WithMsgTTL(x.s.opts.RunStateTTL))
	}
	x.checkpointed = true
	return x.pubs.add(state, opts...)
}

// snapshotMsg encodes the run's current state as the next snapshot on the
// history log.
func (x *execution) snapshotMsg() (*nats.Msg, error) {
	x.run.Seq++
	b, err := json.Marshal(x.run)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	m := nats.NewMsg(subjects.RunHistory(x.run.Project))
	m.Header.Set(runs.HeaderRecord, runs.RecordRun)
	m.Data = b
	return m, nil
}

// announceRunning publishes the "running" snapshot only if the run is still
// going after RunningDelay. Most runs finish sooner, and for them the
// snapshot would be one more publish and read-model write per run that
// nobody sees. The snapshot is encoded now, on this goroutine, so the timer
// touches no run state; if it fires after a later snapshot, its lower Seq
// makes readers ignore it. It goes to the history log only: it carries no
// step a redelivery could resume after, and a late one must not overwrite
// a checkpoint in RUN_STATE.
func (x *execution) announceRunning() error {
	m, err := x.snapshotMsg()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	x.running = &lazyPublish{done: done}
	lp := x.running
	lp.timer = time.AfterFunc(x.s.opts.RunningDelay, func() {
		defer close(done)
		lp.future, lp.err = x.s.opts.JS.PublishMsgAsync(m)
	})
	return nil
}

type lazyPublish struct {
	timer  *time.Timer
	done   chan struct{}
	future jetstream.PubAckFuture
	err    error
}

func (x *execution) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := x.settleRunning(); err != nil {
		return err
	}
	return x.pubs.wait(ctx)
}

// settleRunning cancels the pending "running" snapshot, or, if its timer
// already fired, makes its publish one of those flush waits for.
func (x *execution) settleRunning() error {
	lp := x.running
	if lp == nil {
		return nil
	}
	x.running = nil
	if lp.timer.Stop() {
		return nil
	}
	<-lp.done
	if lp.err != nil {
		return fmt.Errorf("publish running snapshot: %w", lp.err)
	}
	x.pubs.futures = append(x.pubs.futures, lp.future)
	return nil
}

// runSteps executes the remaining steps. A step failure fails the run (that
// is a result, not an error); an error return means the run must be retried
// later from its last checkpoint.
func (x *execution) runSteps(ctx context.Context) error {
	s := x.s
	wf, ok := s.opts.Catalog.Workflow(x.run.Project, x.run.Workflow)
	if !ok {
		return x.finish(ctx, runs.StatusFailed, "the workflow no longer exists")
	}
	x.wf = wf
	// A user or credential gone since the decision runs without it (the
	// step that needs it fails); a failed read retries the run later.
	var err error
	if x.user, err = s.opts.Directory.User(ctx, x.run.Project, x.run.User); err != nil && !errors.Is(err, directory.ErrNotFound) {
		return fmt.Errorf("load user: %w", err)
	}
	if x.run.Credential != "" {
		if x.cred, err = s.opts.Directory.Credential(ctx, x.run.Project, x.run.User, x.run.Credential); err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("load credential: %w", err)
		}
	}
	x.env = x.buildEnv()
	if x.run.Status == runs.StatusQueued {
		x.run.Status = runs.StatusRunning
		x.run.StartedAt = time.Now().UTC()
		if err := x.announceRunning(); err != nil {
			return err
		}
	}
	steps := map[string]any{}
	x.env["steps"] = steps
	for _, done := range x.run.Steps {
		out, err := x.s.unspill(ctx, done.Output)
		if err != nil {
			return err
		}
		steps[done.ID] = out
		if done.Type == workflow.StepResponse {
			x.replied = true // answered by an earlier delivery
		}
	}
	for i, st := range wf.Steps {
		if _, done := x.run.StepByID(st.ID); done {
			continue
		}
		rec, retryIn := x.tracedStep(ctx, st)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if retryIn > 0 {
			x.run.Pending = &runs.PendingStep{Step: st.ID, Attempts: rec.Attempts, Error: rec.Error,
				StartedAt: rec.StartedAt, RetryAt: rec.FinishedAt.Add(retryIn)}
			if err := x.snapshot(ctx); err != nil {
				return err
			}
			if err := x.flush(ctx); err != nil {
				return err
			}
			return retryLater{retryIn}
		}
		x.run.Pending = nil
		// Later steps see the whole output; the record keeps what fits and
		// a reference to the object store for the rest.
		steps[st.ID] = rec.Output
		if err := x.spill(ctx, &rec, false); err != nil {
			return err
		}
		x.run.Steps = append(x.run.Steps, rec)
		if rec.Status == runs.StepFailed {
			if st.Type == workflow.StepResponse {
				x.sendReply(&runs.Reply{RunID: x.run.ID, Status: 500, Error: ErrResponseTemplate.Error(),
					Message: "the response step failed: " + strings.TrimPrefix(rec.Error, ErrResponseTemplate.Error()+": ")})
			}
			return x.finish(ctx, runs.StatusFailed, fmt.Sprintf("step %s failed: %s", st.ID, rec.Error))
		}
		if x.reply != nil && i < len(wf.Steps)-1 {
			// The answer goes out only once the response step is stored,
			// so a redelivered run resumes after it and never answers twice.
			// (As the last step, finish stores it with the final state.)
			if err := x.snapshot(ctx); err != nil {
				return err
			}
			if err := x.flush(ctx); err != nil {
				return err
			}
			x.sendReply(x.reply)
			x.reply = nil
			continue
		}
		if i < len(wf.Steps)-1 {
			// Checkpoint, so a redelivered run resumes after this step.
			if err := x.snapshot(ctx); err != nil {
				return err
			}
		}
	}
	return x.finish(ctx, runs.StatusSucceeded, "")
}

func (x *execution) finish(ctx context.Context, status runs.Status, msg string) error {
	x.run.Status = status
	x.run.Error = msg
	x.run.FinishedAt = time.Now().UTC()
	if x.run.StartedAt.IsZero() {
		x.run.StartedAt = x.run.FinishedAt
	}
	if err := x.snapshot(ctx); err != nil {
		return err
	}
	if status == runs.StatusFailed {
		if err := x.deadLetter(msg); err != nil {
			return err
		}
	}
	if x.reply != nil {
		// A response step that was the last step: answer while the final
		// snapshot is being stored instead of after, one JetStream round
		// trip sooner. Nothing with side effects is left to repeat: if the
		// store fails, the redelivered run only renders the response again,
		// and that second answer has no waiting caller.
		x.sendReply(x.reply)
		x.reply = nil
	}
	if err := x.flush(ctx); err != nil {
		return err
	}
	if !x.replied {
		// The run ended without answering (it failed before its response
		// step, or skipped it): tell a waiting caller now rather than let
		// it wait for the timeout.
		if status == runs.StatusFailed {
			x.sendReply(&runs.Reply{RunID: x.run.ID, Status: 500, Error: "run_failed", Message: msg})
		} else {
			x.sendReply(&runs.Reply{RunID: x.run.ID, Status: 204})
		}
	}
	d := x.run.FinishedAt.Sub(x.run.StartedAt).Seconds()
	x.s.opts.Metrics.RunsFinished.WithLabelValues(string(status)).Inc()
	x.s.opts.Metrics.RunDuration.WithLabelValues(string(status)).Observe(d)
	if status == runs.StatusFailed {
		x.log.Warn("run failed", "error", msg)
	} else {
		x.log.Debug("run succeeded")
	}
	return nil
}

// deadLetter copies a failed run to the DEAD stream with its reason. The
// copy is the run's final snapshot; the original trigger stays in TRIGGERS
// and the decision record, from where a replay starts a new run.
func (x *execution) deadLetter(reason string) error {
	b, err := json.Marshal(x.run)
	if err != nil {
		return fmt.Errorf("encode dead run: %w", err)
	}
	m := nats.NewMsg(subjects.DeadRun(x.run.Project, x.run.Workflow))
	m.Header.Set(HeaderDeadReason, reason)
	m.Header.Set(HeaderRunID, x.run.ID)
	m.Header.Set(HeaderWorkflow, x.run.Workflow)
	m.Header.Set(runs.HeaderRecord, runs.RecordRun)
	m.Data = b
	return x.pubs.add(m, jetstream.WithMsgID("dead:"+x.run.ID))
}

// buildEnv is what expressions see: trigger, user, credential (no secret).
func (x *execution) buildEnv() map[string]any {
	ev := x.ev
	trig := map[string]any{
		"id":          ev.Id,
		"kind":        ev.Kind.String(),
		"name":        ev.Name,
		"user":        ev.User,
		"credential":  ev.Credential,
		"integration": ev.Integration,
		"payload":     decodeJSON(ev.Payload),
		"receivedAt":  ev.GetReceivedAt().AsTime().Format(time.RFC3339Nano),
	}
	if ev.OccurredAt != nil {
		trig["occurredAt"] = ev.OccurredAt.AsTime().Format(time.RFC3339Nano)
	}
	if r := ev.GetRequest(); r != nil {
		trig["request"] = reqbody.Env(r, reqbody.Limits{})
	}
	if t := ev.GetSchedule(); t != nil {
		// The tick's nominal time, not when it fired: a caught-up or spread
		// run still sees the time it stands for.
		trig["schedule"] = map[string]any{
			"workflow": t.GetWorkflow(), "zone": t.GetZone(),
			"nominalTime": t.GetNominalTime().AsTime().UTC().Format(time.RFC3339),
		}
	}
	user := map[string]any{"id": x.run.User}
	if x.user != nil {
		user["metadata"] = x.user.Metadata
	}
	cred := map[string]any{}
	if x.cred != nil {
		cred = map[string]any{
			"id": x.cred.ID, "integration": x.cred.Integration,
			"providerAccountId": x.cred.ProviderAccountID, "settings": x.cred.Settings,
		}
	}
	return map[string]any{
		"trigger":    trig,
		"user":       user,
		"credential": cred,
		"run":        map[string]any{"id": x.run.ID, "workflow": x.run.Workflow},
	}
}

func decodeJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	return v
}

// runStep runs one attempt of a step, with its condition. A failed attempt
// that may be retried returns the backoff to wait before the next one.
func (x *execution) runStep(ctx context.Context, st *workflow.Step) (runs.Step, time.Duration) {
	rec := runs.Step{ID: st.ID, Type: st.Type, StartedAt: time.Now().UTC()}
	if cond := st.Cond(); cond != nil {
		ok, err := cond.Bool(x.env)
		if err != nil {
			rec.Status, rec.Error, rec.FinishedAt = runs.StepFailed, "if: "+err.Error(), time.Now().UTC()
			return rec, 0
		}
		if !ok {
			rec.Status, rec.FinishedAt = runs.StepSkipped, time.Now().UTC()
			return rec, 0
		}
	}
	policy := st.RetryPolicy()
	attempt := 1
	if p := x.run.Pending; p != nil && p.Step == st.ID {
		// A retry of a step whose earlier attempt failed: carry on counting.
		attempt = p.Attempts + 1
		rec.StartedAt = p.StartedAt
	}
	rec.Attempts = attempt
	mark := x.markStarted(st.ID, attempt, rec.StartedAt)
	stop := x.keepAlive()
	input, output, err := x.s.runStepOnce(ctx, x, st)
	stop()
	x.settleMark(mark)
	rec.Input, rec.Output = input, output
	rec.FinishedAt = time.Now().UTC()
	if err == nil {
		rec.Status = runs.StepSucceeded
		return rec, 0
	}
	rec.Status, rec.Error = runs.StepFailed, err.Error()
	var pe *permanentError
	if errors.As(err, &pe) || attempt >= policy.Attempts || ctx.Err() != nil {
		return rec, 0
	}
	// Wait for the next attempt outside the executor: the run is
	// checkpointed with the attempt it reached and its message handed back
	// with a delay, so a slot is not held for minutes of backoff.
	backoff := time.Duration(policy.Backoff)
	for i := 1; i < attempt && backoff < x.s.opts.MaxBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, x.s.opts.MaxBackoff)
	x.log.Info("step failed; retrying", "step", st.ID, "attempt", attempt, "err", err, "backoff", backoff)
	return rec, backoff
}

// markStarted checkpoints the attempt about to start as started, once it
// has run for RunningDelay: if the router goes down during the attempt, the
// delivery that resumes the run finds it in RUN_STATE and counts the rerun
// as the next attempt. Counting from NumDelivered cannot: after a server
// crash redeliveries arrive with NumDelivered 1, and a step that ran twice
// showed attempts 1. The checkpoint is a Pending step due at once (RetryAt
// is when the attempt started). Steps quicker than the delay are never
// marked — one RUN_STATE write per slow step, none per fast one — so a
// crash in their few milliseconds goes uncounted, as before.
//
// The message is encoded now, on this goroutine; the timer only publishes.
func (x *execution) markStarted(step string, attempt int, started time.Time) *lazyPublish {
	saved := x.run.Pending
	x.run.Pending = &runs.PendingStep{Step: step, Attempts: attempt, StartedAt: started, RetryAt: started}
	data, err := json.Marshal(x.run)
	x.run.Pending = saved
	if err != nil || len(data) > x.s.budgets.Record {
		// Only the count is at stake; the run goes on without the mark.
		return nil
	}
	m := nats.NewMsg(subjects.RunState(x.run.Project, x.run.ID))
	m.Data = data
	done := make(chan struct{})
	lp := &lazyPublish{done: done}
	lp.timer = time.AfterFunc(x.s.opts.RunningDelay, func() {
		defer close(done)
		lp.future, lp.err = x.s.opts.JS.PublishMsgAsync(m)
	})
	return lp
}

// settleMark cancels a mark not yet published. One that was makes RUN_STATE
// hold a state of this run, which the final state must then supersede (in
// order: both go out on the same connection). A mark that failed to store
// is not waited for nor retried; it only costs the count.
func (x *execution) settleMark(lp *lazyPublish) {
	if lp == nil || lp.timer.Stop() {
		return
	}
	<-lp.done
	x.checkpointed = true
	if lp.err != nil {
		x.log.Warn("could not checkpoint a step's attempt as started", "err", lp.err)
	}
}

// keepAlive tells JetStream the run is still in progress while a step runs
// longer than a third of the ack wait, so a slow step is not redelivered to
// another executor meanwhile. It returns the function that stops it.
func (x *execution) keepAlive() func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(x.s.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = x.msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// retryLater is runSteps' answer when a step failed and is retried after a
// backoff: the run is checkpointed and its message is handed back with that
// delay.
type retryLater struct{ after time.Duration }

func (r retryLater) Error() string { return "step retried in " + r.after.String() }

// permanentError is a step failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// evalString renders an optional template as a string.
func evalString(t *template.Template, env map[string]any) (string, error) {
	if t == nil {
		return "", nil
	}
	return t.EvalString(env)
}

// spill moves a step record's input and output to the object store when
// they are larger than the inline budget — or, with all, whatever their
// size — leaving a reference with a preview. The names are the run's and
// step's, so a step recorded again after a crash overwrites its earlier
// copy.
func (x *execution) spill(ctx context.Context, rec *runs.Step, all bool) error {
	base := x.run.Project + "/" + x.run.ID + "/" + rec.ID
	for _, v := range []struct {
		name string
		val  *any
	}{{"input", &rec.Input}, {"output", &rec.Output}} {
		if _, ok := blob.IsRef(*v.val); ok || *v.val == nil {
			continue
		}
		var spilled any
		var err error
		if all {
			var b []byte
			if b, err = json.Marshal(*v.val); err != nil {
				err = wire.Unencodable(err)
			} else {
				spilled, err = x.s.opts.Blobs.Put(ctx, base+"/"+v.name, b, wire.ContentTypeJSON)
			}
		} else {
			spilled, err = x.s.opts.Blobs.Spill(ctx, base+"/"+v.name, *v.val)
		}
		switch {
		case err == nil:
			*v.val = spilled
		case wire.Permanent(err):
			// A value that cannot be stored at all (not JSON): say so in
			// its place rather than retry what cannot succeed.
			*v.val = map[string]any{"error": "the step's " + v.name + " could not be recorded: " + err.Error()}
		default:
			return fmt.Errorf("step %s %s: %w", rec.ID, v.name, err)
		}
	}
	return nil
}

// spillAll moves every step value that is not a reference yet to the object
// store, whatever its size.
func (x *execution) spillAll(ctx context.Context) error {
	for i := range x.run.Steps {
		if err := x.spill(ctx, &x.run.Steps[i], true); err != nil {
			return err
		}
	}
	return nil
}

// unspill returns the value a step output stands for: itself, or, for a
// reference to the object store, the value stored there.
func (s *Service) unspill(ctx context.Context, v any) (any, error) {
	ref, ok := blob.IsRef(v)
	if !ok {
		return v, nil
	}
	b, err := s.opts.Blobs.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("load a step output: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode a step output: %w", err)
	}
	return out, nil
}

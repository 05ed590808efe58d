// Package router consumes trigger events, decides which workflows run for
// which connected user and credential, records that decision, and executes
// the resulting runs.
//
// Durable pull consumers do the work, through pkg/consume (ack, retry with
// delay, dead-letter, MaxDeliver), one of each per project: "router-<p>" on
// TRIGGERS turns one trigger event into a decision record (decided by
// services/router/decide) plus zero or more run messages on RUNS (each with
// Nats-Msg-Id = its deterministic run id) — or executes a request's one run
// itself — and "executor-<p>" on RUNS runs the steps, checkpointing every
// finished step. Each kind shares one budget of slots across projects in
// turn, so a project's burst cannot starve another. A trigger is acked only
// after its decision and runs are stored; a run only after its final state
// is stored.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/directget"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

// Consumer names.
const (
	ConsumerRouter   = "router"
	ConsumerExecutor = "executor"
)

// RouterDurable is the durable consumer on TRIGGERS that routes project
// p's triggers.
func RouterDurable(project string) string { return ConsumerRouter + "-" + project }

// ExecutorDurable is the durable consumer on RUNS that executes project p's
// runs.
func ExecutorDurable(project string) string { return ConsumerExecutor + "-" + project }

// Options configure the router service.
type Options struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Catalog *catalog.Catalog
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Directory holds connected users and credentials (and the secrets
	// http steps apply).
	Directory *directory.Directory
	// Triggers publishes the events emit steps produce.
	Triggers *trigger.Publisher
	// Blobs keeps step inputs and outputs too large for a run record.
	Blobs *blob.Store
	// HTTPClient makes the http steps' calls; it carries the egress guard.
	HTTPClient *http.Client
	// Concurrency bounds runs executing at once (default 256).
	Concurrency int
	// WalkConns is how many connections of its own the router opens for
	// the enrollment walks of large schedule ticks (default 2; negative:
	// none, the walks share the router's connection).
	WalkConns int
	// RouteConcurrency bounds trigger events being routed at once, request
	// runs executed in place included (default 256).
	RouteConcurrency int
	// AckWait is how long a delivered message may go unacknowledged before
	// redelivery (default 30s); long steps extend it with InProgress.
	AckWait time.Duration
	// FanoutTimeout bounds the routing of one schedule tick shard: its
	// enrollment walk and run publishes (default 10m; at least AckWait).
	FanoutTimeout time.Duration
	// MaxBackoff caps a step's retry backoff (default 5m).
	MaxBackoff time.Duration
	// RunningDelay is how long a run must be going before its "running"
	// snapshot is published (default 250ms); shorter runs go from queued
	// straight to their final state.
	RunningDelay time.Duration
	// CatalogWait bounds how long routing waits for the catalog to reach the
	// revision the publisher saw (default 5s).
	CatalogWait time.Duration
	// RunStateTTL is how long a finished run's final state stays in
	// RUN_STATE, superseding its last checkpoint (broker.Limits.RunStateTTL).
	RunStateTTL time.Duration
	// DuplicateWindow is the streams' Nats-Msg-Id window
	// (broker.Limits.DuplicateWindow): a run whose trigger is older than
	// half of it may have been published twice, and is checked for a
	// finished state before it runs.
	DuplicateWindow time.Duration

	// MaxHops stops emit chains (default decide.DefaultMaxHops).
	MaxHops uint32
	// DecisionPage is the number of candidates per decision record (default
	// the connection's budget, wire.Budgets.DecisionPage).
	DecisionPage int
	// TracerProvider makes the decide, run and step spans (tracing.go);
	// nil traces nothing.
	TracerProvider trace.TracerProvider
}

// Service is the router plus executor.
type Service struct {
	opts     Options
	log      *slog.Logger
	deciders *decide.Deciders
	budgets  wire.Budgets
	state    jetstream.Stream // RUN_STATE, for resuming runs
	states   *runStates       // whether a run is in flight (schedule overlap)
	enroll   *sharedEnrollment

	// since is when (unix nanos) the router started or its connection last
	// came back; reconnects is the connection's reconnect count then.
	since      atomic.Int64
	reconnects atomic.Uint64
	// delivered holds, per durable consumer, the highest delivery sequence
	// this router has had (*atomic.Uint64), see noteDelivery.
	delivered sync.Map

	// router and executor hold one durable consumer per project each (on
	// TRIGGERS and RUNS), every group drawing from its own slots in turn.
	router   *consume.Group
	executor *consume.Group
	// stopWatch ends the loop that gives every project its executor.
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// New validates opts and returns a Service; Start begins consuming.
func New(opts Options) (*Service, error) {
	if opts.NC == nil || opts.JS == nil || opts.Catalog == nil || opts.Directory == nil || opts.Triggers == nil || opts.Blobs == nil {
		return nil, errors.New("router: NC, JS, Catalog, Directory, Triggers and Blobs are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.HTTPClient == nil {
		return nil, errors.New("router: HTTPClient is required (use egress.NewClient)")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 256
	}
	if opts.RouteConcurrency <= 0 {
		// Request runs execute in the router's handlers (see route), so
		// this also bounds synchronous runs in flight.
		opts.RouteConcurrency = 256
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.FanoutTimeout <= 0 {
		opts.FanoutTimeout = 10 * time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.RunningDelay <= 0 {
		opts.RunningDelay = 250 * time.Millisecond
	}
	if opts.CatalogWait <= 0 {
		opts.CatalogWait = 5 * time.Second
	}
	if opts.RunStateTTL <= 0 {
		opts.RunStateTTL = broker.DefaultLimits().RunStateTTL
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = broker.DefaultLimits().DuplicateWindow
	}

	if opts.WalkConns == 0 {
		opts.WalkConns = 2
	}
	states := &runStates{nc: opts.NC}
	enroll := newSharedEnrollment(opts.Directory)
	deciders, err := decide.New(decide.Options{Config: opts.Catalog, Directory: directoryView{opts.Directory}, MaxHops: opts.MaxHops,
		Enrollment: enroll, Runs: states, Integrations: opts.Catalog, Accounts: opts.Directory})
	if err != nil {
		return nil, err
	}
	budgets := wire.FromConn(opts.NC)
	if opts.DecisionPage <= 0 {
		opts.DecisionPage = budgets.DecisionPage
	}
	return &Service{opts: opts, log: opts.Logger.With("service", "router"), deciders: deciders, budgets: budgets, states: states, enroll: enroll}, nil
}

// Name is the role's name, "router": the router and the executor.
func (s *Service) Name() string { return "router" }

// maxDeliver bounds the deliveries of a trigger or run message before it is
// dead-lettered. A step retried after a backoff hands its message back, so
// every attempt of every step is a delivery: the bound leaves room for a run
// whose steps all retry as often as a step may.
const maxDeliver = 2*workflow.MaxAttempts + 10

// Start creates the durable consumers (idempotently) and starts consuming:
// per project, "router-<project>" on TRIGGERS and "executor-<project>" on
// RUNS. The routers draw from one budget of RouteConcurrency slots in turn,
// the executors from one of Concurrency, so one project's backlog — of
// triggers or of runs — cannot starve another project's. Triggers on the
// subjects of a project that does not exist are not consumed.
func (s *Service) Start(ctx context.Context) error {
	js := s.opts.JS
	var err error
	if s.state, err = js.Stream(ctx, subjects.StreamRunState); err != nil {
		return fmt.Errorf("router: stream %s: %w", subjects.StreamRunState, err)
	}
	if s.opts.WalkConns > 0 {
		if err := s.enroll.openWalkers(ctx, s.opts.NC, s.opts.WalkConns); err != nil {
			// The walks share the router's connection then: slower, not wrong.
			s.log.Warn("enrollment walks on the router's connection", "err", err)
		}
	}
	s.since.Store(time.Now().UnixNano())
	s.reconnects.Store(s.opts.NC.Stats().Reconnects)
	reg := s.opts.Metrics.Registry
	// Consumers of the one shared durables "router" and "executor" that
	// came before the per-project ones are gone for good.
	for stream, durable := range map[string]string{subjects.StreamTriggers: ConsumerRouter, subjects.StreamRuns: ConsumerExecutor} {
		if err := js.DeleteConsumer(ctx, stream, durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.log.Warn("removing a consumer of an earlier version", "consumer", durable, "err", err)
		}
	}
	s.router, err = consume.NewGroup(js, consume.GroupOptions{
		Slots: consume.NewSlots(s.opts.RouteConcurrency),
		Consumer: func(project string) consume.Options {
			return consume.Options{
				Name: ConsumerRouter, Stream: subjects.StreamTriggers, Durable: RouterDurable(project),
				FilterSubjects: []string{subjects.TriggersOfProject(project)},
				AckWait:        s.opts.AckWait, MaxAckPending: s.opts.RouteConcurrency * 16,
				MaxDeliver: maxDeliver, Handler: s.route, OnReceive: s.noteDelivery, Middleware: []consume.Middleware{s.traceDecide, consume.KeepAlive(0)},
				DeadLetter: consume.DeadLetterTo(js, func(jetstream.Msg) string { return subjects.DeadTrigger(project) }),
				Logger:     s.log, Registerer: reg,
			}
		},
	})
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	s.executor, err = consume.NewGroup(js, consume.GroupOptions{
		Slots: consume.NewSlots(s.opts.Concurrency),
		Consumer: func(project string) consume.Options {
			return consume.Options{
				Name: ConsumerExecutor, Stream: subjects.StreamRuns, Durable: ExecutorDurable(project),
				FilterSubjects: []string{subjects.RunsOfProject(project)},
				AckWait:        s.opts.AckWait, MaxAckPending: s.opts.Concurrency * 2,
				MaxDeliver: maxDeliver, Handler: s.execute, OnReceive: s.noteDelivery, Middleware: []consume.Middleware{consume.KeepAlive(0)},
				DeadLetter: consume.DeadLetterTo(js, func(m jetstream.Msg) string {
					// The workflow of the subject the server accepted, not
					// the header: a forged header could make a subject the
					// server refuses.
					if _, wf, ok := subjects.RunParts(m.Subject()); ok {
						return subjects.DeadRun(project, wf)
					}
					return subjects.DeadRun(project, "_unknown")
				}),
				Logger: s.log, Registerer: reg,
			}
		},
	})
	if err != nil {
		_ = s.router.Stop(ctx)
		return fmt.Errorf("router: %w", err)
	}
	if err := s.addProjects(ctx); err != nil {
		_ = s.router.Stop(ctx)
		return err
	}
	wctx, stop := context.WithCancel(context.Background())
	s.stopWatch, s.watchDone = stop, make(chan struct{})
	go s.watchProjects(wctx)
	return nil
}

// connectedSince is when this router started or its connection last came
// back: messages stored before it may have been delivered before a crash.
func (s *Service) connectedSince() time.Time {
	if n := s.opts.NC.Stats().Reconnects; n != s.reconnects.Load() {
		s.reconnects.Store(n)
		s.since.Store(time.Now().UnixNano())
	}
	return time.Unix(0, s.since.Load())
}

// addProjects gives every project in the catalog its executor.
func (s *Service) addProjects(ctx context.Context) error {
	for _, p := range s.opts.Catalog.Projects() {
		if err := s.router.Add(ctx, p); err != nil {
			return fmt.Errorf("router: router of %s: %w", p, err)
		}
		if err := s.executor.Add(ctx, p); err != nil {
			return fmt.Errorf("router: executor of %s: %w", p, err)
		}
	}
	return nil
}

// watchProjects starts the executor of each project created later. Runs
// of a project whose executor is not started yet wait in RUNS meanwhile.
func (s *Service) watchProjects(ctx context.Context) {
	defer close(s.watchDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.opts.Catalog.ProjectsChanged():
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.addProjects(actx); err != nil {
			s.log.Warn("starting an executor", "err", err)
		}
		cancel()
	}
}

// Stop stops fetching new messages, then waits for in-flight work until ctx
// ends; runs still going then are cancelled and left unacknowledged so
// JetStream redelivers them (they resume after their last checkpoint).
func (s *Service) Stop(ctx context.Context) error {
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
	}
	var errs []error
	if s.router != nil {
		errs = append(errs, s.router.Stop(ctx))
	}
	if s.executor != nil {
		errs = append(errs, s.executor.Stop(ctx))
	}
	s.enroll.close()
	return errors.Join(errs...)
}

// publishes collects asynchronous publishes so a handler can wait for all
// of them to be stored before it acknowledges its input.
type publishes struct {
	js      jetstream.JetStream
	futures []jetstream.PubAckFuture
}

// add publishes m asynchronously. The connection bounds publishes in
// flight; when it stays full for the stall wait (a schedule tick's fan-out
// publishes a hundred thousand runs while the server is busy), add tries
// again after a pause instead of failing the whole trigger, whose
// redelivery would decide and publish it all again.
func (p *publishes) add(m *nats.Msg, opts ...jetstream.PublishOpt) error {
	for attempt := 1; ; attempt++ {
		f, err := p.js.PublishMsgAsync(m, opts...)
		if err == nil {
			p.futures = append(p.futures, f)
			return nil
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || attempt >= maxStalls {
			return fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		time.Sleep(time.Duration(min(attempt, 10)) * 20 * time.Millisecond)
	}
}

// maxStalls is how many times add tries a publish the full in-flight
// budget refused (about 20 s of stall waits and pauses) before failing.
const maxStalls = 50

// settle waits for the oldest publishes until at most keep are not yet
// acknowledged, and forgets the acknowledged ones, so a long fan-out holds
// a bounded number of futures (each keeps its message); the first failed
// publish fails it.
func (p *publishes) settle(ctx context.Context, keep int) error {
	n := 0
	for ; n < len(p.futures); n++ {
		f := p.futures[n]
		if len(p.futures)-n > keep {
			select {
			case <-f.Ok():
				continue
			case err := <-f.Err():
				return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := false
		select {
		case <-f.Ok():
			done = true
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		default:
		}
		if !done {
			break
		}
	}
	p.futures = append(p.futures[:0], p.futures[n:]...)
	return nil
}

func (p *publishes) wait(ctx context.Context) error {
	var errs []error
	for _, f := range p.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("publish %s: %w", f.Msg().Subject, err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.futures = p.futures[:0]
	return errors.Join(errs...)
}

// directoryView gives the deciders the directory's users: not found is
// ok false, any other error a failed lookup.
type directoryView struct{ dir *directory.Directory }

func (d directoryView) User(ctx context.Context, p, u string) (*directory.User, bool, error) {
	us, err := d.dir.User(ctx, p, u)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, false, nil
	}
	return us, err == nil, err
}

func (d directoryView) Credentials(ctx context.Context, p, u string) ([]*directory.Credential, error) {
	return d.dir.Credentials(ctx, p, u)
}

// runStates answers the schedule overlap check from RUN_STATE: a run is in
// flight while its last state there is a checkpoint, not a final state. A
// run without any (queued, or finished without checkpointing) is not
// running; the check needs no history lookup. A page of runs is one
// batched direct get (multi_last), not one request per run.
type runStates struct {
	nc *nats.Conn
}

// maxMultiLast is the most subjects the server answers in one multi_last.
const maxMultiLast = 1000

func (r *runStates) Running(ctx context.Context, project string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(ids); start += maxMultiLast {
		chunk := ids[start:min(len(ids), start+maxMultiLast)]
		subjs := make([]string, len(chunk))
		for i, id := range chunk {
			subjs[i] = subjects.RunState(project, id)
		}
		if err := r.lastOf(ctx, subjs, func(data []byte, subject string) error {
			var run runs.Run
			if err := json.Unmarshal(data, &run); err != nil {
				return fmt.Errorf("decode state on %s: %w", subject, err)
			}
			if !run.Status.Terminal() {
				// The subject names the run: sb.state.<p>.run.<run>.
				out[subject[strings.LastIndexByte(subject, '.')+1:]] = true
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lastOf sends one batched direct get for the last message of each of
// subjs and hands each answer to fn.
func (r *runStates) lastOf(ctx context.Context, subjs []string, fn func(data []byte, subject string) error) error {
	_, err := directget.Get(ctx, r.nc, subjects.StreamRunState, directget.Request{MultiLast: subjs, Batch: len(subjs)},
		func(m directget.Msg) error { return fn(m.Data, m.Subject) })
	if err != nil {
		return fmt.Errorf("run state: %w", err)
	}
	return nil
}

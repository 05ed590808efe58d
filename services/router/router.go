// Package router consumes trigger events, decides which workflows run for
// which connected user and credential, records that decision, and executes
// the resulting runs.
//
// Two durable pull consumers do the work: "router" on TRIGGERS turns one
// trigger event into a decision record plus zero or more run messages on
// RUNS (each with Nats-Msg-Id = its deterministic run id), and "executor" on
// RUNS runs the steps, checkpointing every finished step to RUN_EVENTS. A
// trigger is acked only after its decision and runs are stored; a run only
// after its final state is stored.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router/decide"
)

// Consumer names.
const (
	ConsumerRouter   = "router"
	ConsumerExecutor = "executor"
)

// Options configure the router service.
type Options struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Catalog *catalog.Catalog
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// HTTPClient makes the http steps' calls; it carries the egress guard.
	HTTPClient *http.Client
	// Concurrency bounds runs executing at once (default 256).
	Concurrency int
	// RouteConcurrency bounds trigger events being routed at once (default 64).
	RouteConcurrency int
	// AckWait is how long a delivered message may go unacknowledged before
	// redelivery (default 30s); long steps extend it with InProgress.
	AckWait time.Duration
	// MaxBackoff caps a step's retry backoff (default 5m).
	MaxBackoff time.Duration
	// RunningDelay is how long a run must be going before its "running"
	// snapshot is published (default 250ms); shorter runs go from queued
	// straight to their final state.
	RunningDelay time.Duration
	// CatalogWait bounds how long routing waits for the catalog to reach the
	// revision the publisher saw (default 5s).
	CatalogWait time.Duration
	// MaxHops stops emit chains (default decide.DefaultMaxHops).
	MaxHops uint32
	// DecisionPage is the number of candidates per decision record (default
	// runs.DefaultDecisionPage).
	DecisionPage int
}

// Service is the router plus executor.
type Service struct {
	opts     Options
	log      *slog.Logger
	deciders *decide.Deciders
	runs     jetstream.Stream // RUN_EVENTS, for resuming runs

	stopping  atomic.Bool
	mu        sync.Mutex
	consumers []jetstream.ConsumeContext
	inflight  sync.WaitGroup
	runSem    chan struct{}
	routeSem  chan struct{}
	// runCtx is cancelled when shutdown gives up on in-flight runs; they
	// are then abandoned for redelivery (and resume from their checkpoint).
	runCtx    context.Context
	cancelRun context.CancelFunc
	stopStats context.CancelFunc
}

// New validates opts and returns a Service; Start begins consuming.
func New(opts Options) (*Service, error) {
	if opts.NC == nil || opts.JS == nil || opts.Catalog == nil {
		return nil, errors.New("router: NC, JS and Catalog are required")
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
		opts.RouteConcurrency = 64
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
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
	deciders, err := decide.New(decide.Options{Config: opts.Catalog, Directory: catalogDirectory{opts.Catalog}, MaxHops: opts.MaxHops})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	return &Service{
		deciders:  deciders,
		opts:      opts,
		log:       opts.Logger.With("service", "router"),
		runSem:    make(chan struct{}, opts.Concurrency),
		routeSem:  make(chan struct{}, opts.RouteConcurrency),
		runCtx:    runCtx,
		cancelRun: cancel,
	}, nil
}

// Name is the role's name, "router": the router and the executor.
func (s *Service) Name() string { return "router" }

// Start creates the durable consumers (idempotently) and starts consuming.
func (s *Service) Start(ctx context.Context) error {
	js := s.opts.JS
	var err error
	if s.runs, err = js.Stream(ctx, subjects.StreamRunEvents); err != nil {
		return fmt.Errorf("router: stream %s: %w", subjects.StreamRunEvents, err)
	}
	routeCons, err := js.CreateOrUpdateConsumer(ctx, subjects.StreamTriggers, jetstream.ConsumerConfig{
		Durable:       ConsumerRouter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.AckWait,
		MaxAckPending: s.opts.RouteConcurrency * 16,
		FilterSubject: subjects.TriggersAll,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("router: consumer %s: %w", ConsumerRouter, err)
	}
	execCons, err := js.CreateOrUpdateConsumer(ctx, subjects.StreamRuns, jetstream.ConsumerConfig{
		Durable:       ConsumerExecutor,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.AckWait,
		MaxAckPending: s.opts.Concurrency * 2,
		FilterSubject: subjects.RunsAll,
	})
	if err != nil {
		return fmt.Errorf("router: consumer %s: %w", ConsumerExecutor, err)
	}
	errh := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrConsumerDeleted) {
			s.log.Warn("consume error", "err", err)
		}
	})
	rc, err := routeCons.Consume(s.dispatch(s.routeSem, s.route), errh, jetstream.PullMaxMessages(s.opts.RouteConcurrency*4))
	if err != nil {
		return fmt.Errorf("router: consume triggers: %w", err)
	}
	ec, err := execCons.Consume(s.dispatch(s.runSem, s.execute), errh, jetstream.PullMaxMessages(s.opts.Concurrency))
	if err != nil {
		rc.Stop()
		return fmt.Errorf("router: consume runs: %w", err)
	}
	s.mu.Lock()
	s.consumers = []jetstream.ConsumeContext{rc, ec}
	s.mu.Unlock()

	statsCtx, stop := context.WithCancel(context.Background())
	s.stopStats = stop
	go s.reportPending(statsCtx, []jetstream.Consumer{routeCons, execCons})
	return nil
}

// dispatch hands each message to its own goroutine, bounded by sem, so the
// consume callback never blocks on one slow run.
func (s *Service) dispatch(sem chan struct{}, h func(jetstream.Msg)) jetstream.MessageHandler {
	return func(m jetstream.Msg) {
		// Count the message before waiting for a slot, so Stop's Wait
		// cannot return while a callback is still about to start one.
		s.inflight.Add(1)
		if s.stopping.Load() {
			// Draining: hand fetched messages straight back for another
			// instance instead of starting work or waiting out AckWait.
			_ = m.Nak()
			s.inflight.Done()
			return
		}
		sem <- struct{}{}
		go func() {
			defer func() {
				<-sem
				s.inflight.Done()
			}()
			h(m)
		}()
	}
}

// Stop stops fetching new messages, then waits for in-flight work until ctx
// ends; runs still going then are cancelled and left unacknowledged so
// JetStream redelivers them (they resume after their last checkpoint).
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	cons := s.consumers
	s.consumers = nil
	s.mu.Unlock()
	s.stopping.Store(true)
	for _, c := range cons {
		c.Drain()
	}
	for _, c := range cons {
		select {
		case <-c.Closed():
		case <-ctx.Done():
		}
	}
	if s.stopStats != nil {
		s.stopStats()
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancelRun()
		<-done
		return nil
	}
}

func (s *Service) reportPending(ctx context.Context, cons []jetstream.Consumer) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range cons {
				qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				info, err := c.Info(qctx)
				cancel()
				if err != nil {
					continue
				}
				s.opts.Metrics.ConsumerPending.WithLabelValues(info.Stream, info.Name).Set(float64(info.NumPending))
			}
		}
	}
}

// publishes collects asynchronous publishes so a handler can wait for all
// of them to be stored before it acknowledges its input.
type publishes struct {
	js      jetstream.JetStream
	futures []jetstream.PubAckFuture
}

func (p *publishes) add(m *nats.Msg, opts ...jetstream.PublishOpt) error {
	f, err := p.js.PublishMsgAsync(m, opts...)
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.Subject, err)
	}
	p.futures = append(p.futures, f)
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

// catalogDirectory reads connected users from the catalog for the deciders.
type catalogDirectory struct{ cat *catalog.Catalog }

func (d catalogDirectory) User(_ context.Context, p, u string) (*catalog.User, bool, error) {
	us, ok := d.cat.User(p, u)
	return us, ok, nil
}

func (d catalogDirectory) Credentials(_ context.Context, p, u string) ([]*catalog.Credential, error) {
	return d.cat.Credentials(p, u), nil
}

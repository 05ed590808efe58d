package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	DefaultAckWait    = 30 * time.Second
	DefaultMaxDeliver = 10
)

// deadLetterAttempts is how many deliveries beyond Options.MaxDeliver the
// server allows. The plumbing dead-letters on the MaxDeliver-th delivery;
// the extra ones exist only for when that fails (the dead-letter stream is
// unavailable) or the last attempt was cut short by a shutdown or a crash,
// so the message comes back and dead-lettering is tried again instead of
// JetStream giving up on it silently.
const deadLetterAttempts = 5

// pullExpiry is how long one pull request lives on the server.
const pullExpiry = 5 * time.Second

// pendingInterval is how often a consumer with metrics polls its info.
const pendingInterval = 5 * time.Second

// Options configure a Consumer.
type Options struct {
	// Name identifies the consumer in logs and metrics; required. It is
	// also the durable name unless Durable is set.
	Name string
	// Stream is the stream to consume; required.
	Stream string
	// Durable is the durable consumer's name (default Name). Every process
	// using the same durable shares its messages.
	Durable string
	// FilterSubjects restricts the consumer to these subjects (default:
	// the whole stream).
	FilterSubjects []string
	// AckWait is how long a delivery may go unsettled before JetStream
	// redelivers it (default 30s). KeepAlive(0) refreshes it every third.
	AckWait time.Duration
	// MaxAckPending bounds unsettled deliveries across every process of
	// the durable (default 4 × Concurrency); set it to at least the sum of
	// their Concurrency, or they wait on each other.
	MaxAckPending int
	// Concurrency bounds handlers running at once in this process
	// (default 1); it also sizes each pull (PullMaxMessages).
	Concurrency int
	// Slots, if set, is a budget shared with other consumers: a handler
	// needs a slot from it as well as one of its own Concurrency.
	Slots *Slots
	// MaxDeliver is the delivery on which a still failing message is
	// dead-lettered (default 10). The consumer's MaxDeliver on the server
	// is set a few higher so that a failed dead-letter is retried.
	MaxDeliver int
	// Backoff is the redelivery delay after a failed delivery. A delivery
	// that is never settled (its process died) comes back after AckWait.
	Backoff Backoff
	// Handler handles each message; required.
	Handler Handler
	// OnReceive, if set, sees every delivery in the order the server sent
	// them, before it waits for a slot (handlers run concurrently and may
	// start in another order). It must not block.
	OnReceive func(jetstream.Msg)
	// Middleware wraps Handler, first outermost. Recover is always applied
	// around all of it.
	Middleware []Middleware
	// DeadLetter receives messages that will not be retried; required
	// (DeadLetterTo publishes them to a stream).
	DeadLetter DeadLetter
	// Logger receives settlement failures and dead letters (default: none).
	Logger *slog.Logger
	// Registerer, if set, gets the consumer's metrics: handled, acked,
	// retried and dead-lettered counters and a handler duration histogram
	// by Name, and a pending gauge by stream and durable polled every 5s.
	Registerer prometheus.Registerer
}

func (o *Options) validate() error {
	switch {
	case o.Name == "":
		return errors.New("consume: Name is required")
	case o.Stream == "":
		return errors.New("consume: Stream is required")
	case o.Handler == nil:
		return errors.New("consume: Handler is required")
	case o.DeadLetter == nil:
		return errors.New("consume: DeadLetter is required (see DeadLetterTo)")
	}
	if o.Durable == "" {
		o.Durable = o.Name
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 4 * o.Concurrency
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// consumerConfig is the durable's configuration. MaxDeliver and BackOff come
// from Options only, so no consumer is created without a delivery bound.
//
// BackOff is left empty on purpose, also on update (clearing one set by
// hand). On the server BackOff[n] is the ack wait of delivery n+1, and a
// NakWithDelay(d) is timed against AckWait but expires against BackOff[n],
// so every entry above AckWait adds itself minus AckWait to d (measured:
// a 100ms Nak became 2.1s with BackOff [1s, 3s]). Retry delays are exact
// only without it; the backoff schedule is applied by the Naks instead.
func (o *Options) consumerConfig() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver + deadLetterAttempts,
		BackOff:       nil,
		MaxAckPending: o.MaxAckPending,
	}
	if len(o.FilterSubjects) == 1 {
		// A single filter stays FilterSubject, as consumers created before
		// this package have it; updating one into the other is a change.
		cfg.FilterSubject = o.FilterSubjects[0]
	} else {
		cfg.FilterSubjects = o.FilterSubjects
	}
	return cfg
}

// Consumer is a running durable pull consumer. Its methods are safe for
// concurrent use.
type Consumer struct {
	opts    Options
	log     *slog.Logger
	handler Handler
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
	metrics *metrics

	sem  chan struct{}
	lane *lane

	// waitCtx ends when Stop begins: callbacks waiting for a slot give
	// their message back. handlerCtx ends when Stop stops waiting for
	// in-flight handlers.
	waitCtx        context.Context
	stopWaiting    context.CancelFunc
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc

	mu       sync.Mutex
	stopping bool
	inflight sync.WaitGroup

	// stopped is closed, and stopErr set, when the first Stop returns.
	stopped chan struct{}
	stopErr error

	pollStop context.CancelFunc
	pollDone chan struct{}
}

// Start creates or updates the durable consumer opts describe (idempotent:
// every replica may call it) and starts handing its messages to
// opts.Handler. ctx bounds the setup; cancelling it later does not stop the
// consumer (call Stop), but its values reach the handlers.
func Start(ctx context.Context, js jetstream.JetStream, opts Options) (*Consumer, error) {
	if js == nil {
		return nil, errors.New("consume: JetStream is required")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer, opts.Name)
	if err != nil {
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, opts.Stream, opts.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("consume %s: consumer %s on %s: %w", opts.Name, opts.Durable, opts.Stream, err)
	}
	base := context.WithoutCancel(ctx)
	c := &Consumer{
		opts:    opts,
		log:     opts.Logger.With("consumer", opts.Name, "stream", opts.Stream),
		handler: Chain(opts.Handler, append([]Middleware{Recover()}, opts.Middleware...)...),
		cons:    cons,
		metrics: m,
		sem:     make(chan struct{}, opts.Concurrency),
		stopped: make(chan struct{}),
	}
	if opts.Slots != nil {
		c.lane = opts.Slots.newLane()
	}
	c.waitCtx, c.stopWaiting = context.WithCancel(base)
	c.handlerCtx, c.cancelHandlers = context.WithCancel(withAckWait(base, opts.AckWait))

	errh := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		if stopping && errors.Is(err, jetstream.ErrConsumerDeleted) {
			return
		}
		c.log.Warn("consume error", "err", err)
	})
	// A short pull expiry bounds how long a lost pull goes unnoticed: the
	// client detects one by missed heartbeats (half the expiry), and with
	// the default 30s expiry a loaded server stalled a consumer for ~30s
	// with messages pending and no pull outstanding (sbbench, 3 of 8 runs).
	cc, err := cons.Consume(c.receive, errh, jetstream.PullMaxMessages(opts.Concurrency), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		c.stopWaiting()
		c.cancelHandlers()
		return nil, fmt.Errorf("consume %s: start: %w", opts.Name, err)
	}
	c.cc = cc
	if m != nil {
		pctx, stop := context.WithCancel(base)
		c.pollStop, c.pollDone = stop, make(chan struct{})
		go c.pollPending(pctx)
	}
	return c, nil
}

// Name is the consumer's Options.Name.
func (c *Consumer) Name() string { return c.opts.Name }

// Durable is the durable consumer's name on the server.
func (c *Consumer) Durable() string { return c.opts.Durable }

// receive is the Consume callback. JetStream calls it for one message at a
// time, so blocking here until a slot is free is the backpressure: the next
// pull is only sent once messages are taken.
func (c *Consumer) receive(m jetstream.Msg) {
	if c.opts.OnReceive != nil {
		c.opts.OnReceive(m)
	}
	if !c.admit(m) {
		c.handBack(m)
		return
	}
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		c.release()
		c.handBack(m)
		return
	}
	// Added under mu, so Stop's Wait cannot start between the check and
	// the Add.
	c.inflight.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.inflight.Done()
		defer c.release()
		c.handle(m)
	}()
}

// admit waits for one of the consumer's own slots and then, if it shares a
// budget, one of those. While it waits the message's ack timer keeps
// running, so a long wait sends InProgress. It reports false once Stop began.
func (c *Consumer) admit(m jetstream.Msg) bool {
	var stopKeepAlive func()
	defer func() {
		if stopKeepAlive != nil {
			stopKeepAlive()
		}
	}()
	wait := func() {
		if stopKeepAlive == nil {
			stopKeepAlive = startKeepAlive(m, c.opts.AckWait/3)
		}
	}
	select {
	case c.sem <- struct{}{}:
	default:
		wait()
		select {
		case c.sem <- struct{}{}:
		case <-c.waitCtx.Done():
			return false
		}
	}
	if c.opts.Slots == nil || c.opts.Slots.tryAcquire() {
		return true
	}
	wait()
	if err := c.opts.Slots.acquire(c.waitCtx, c.lane); err != nil {
		<-c.sem
		return false
	}
	return true
}

func (c *Consumer) release() {
	if c.opts.Slots != nil {
		c.opts.Slots.release()
	}
	<-c.sem
}

// handBack returns a fetched message that will not be started here, without
// delay, so another process (or this one after a restart) takes it at once
// instead of after AckWait.
func (c *Consumer) handBack(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		c.log.Debug("hand back", "subject", m.Subject(), "err", err)
	}
}

func (c *Consumer) handle(m jetstream.Msg) {
	var delivered uint64 = 1
	md, mdErr := m.Metadata()
	if mdErr == nil {
		delivered = md.NumDelivered
	}
	start := time.Now()
	err := c.handler(c.handlerCtx, m)
	c.metrics.observe(time.Since(start).Seconds())
	c.metrics.incHandled()
	c.settle(m, md, delivered, err)
}

// settle applies the package's settlement contract to one delivery.
func (c *Consumer) settle(m jetstream.Msg, md *jetstream.MsgMetadata, delivered uint64, err error) {
	// Built only off the hot path: most deliveries just ack.
	msgLog := func() *slog.Logger {
		log := c.log.With("subject", m.Subject(), "delivery", delivered)
		if md != nil {
			log = log.With("seq", md.Sequence.Stream)
		}
		return log
	}
	switch {
	case errors.Is(err, ErrSettled):
		return
	case err == nil:
		if aerr := m.Ack(); aerr != nil && !errors.Is(aerr, jetstream.ErrMsgAlreadyAckd) {
			msgLog().Warn("ack", "err", aerr)
		}
		c.metrics.incAcked()
		return
	}
	log := msgLog()
	permanent := IsPermanent(err)
	if !permanent && c.handlerCtx.Err() != nil {
		// Stop gave up on this handler; its failure says nothing about the
		// message, which another instance should take over now.
		log.Info("handler cancelled by shutdown; handing the message back", "err", err)
		c.handBack(m)
		return
	}
	if permanent || delivered >= uint64(c.opts.MaxDeliver) {
		reason := err
		if !permanent {
			reason = fmt.Errorf("gave up after %d deliveries: %w", delivered, err)
		}
		c.deadLetter(log, m, delivered, reason)
		return
	}
	delay := c.opts.Backoff.Delay(delivered)
	var re *retryError
	if errors.As(err, &re) {
		delay = re.delay
	}
	log.Warn("handler failed; will retry", "err", err, "delay", delay)
	c.nakWithDelay(log, m, delay)
}

func (c *Consumer) deadLetter(log *slog.Logger, m jetstream.Msg, delivered uint64, reason error) {
	// Not the handler's context: a dead letter must still be stored while
	// Stop waits, and a Timeout middleware's deadline is long gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.handlerCtx), c.opts.AckWait)
	defer cancel()
	if err := c.opts.DeadLetter(ctx, m, reason); err != nil {
		if delivered >= uint64(c.opts.MaxDeliver+deadLetterAttempts) {
			log.Error("dead letter failed on the last delivery JetStream allows; the message stays in the stream but this consumer will not see it again",
				"reason", reason.Error(), "err", err)
		} else {
			log.Error("dead letter failed; the message is kept for redelivery", "reason", reason.Error(), "err", err)
		}
		c.nakWithDelay(log, m, c.opts.Backoff.Delay(delivered))
		return
	}
	if err := m.TermWithReason(headerValue(reason.Error(), 256)); err != nil {
		// The copy is stored; the redelivery this causes is dead-lettered
		// again under the same Nats-Msg-Id and deduplicated.
		log.Warn("terminate after dead letter", "err", err)
	}
	c.metrics.incDead()
	log.Warn("message dead-lettered", "reason", reason.Error())
}

func (c *Consumer) nakWithDelay(log *slog.Logger, m jetstream.Msg, d time.Duration) {
	c.metrics.incRetried()
	if err := m.NakWithDelay(d); err != nil {
		log.Warn("nak", "err", err)
	}
}

func (c *Consumer) pollPending(ctx context.Context) {
	defer close(c.pollDone)
	t := time.NewTicker(pendingInterval)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, pendingInterval)
		info, err := c.cons.Info(qctx)
		cancel()
		if err == nil {
			c.metrics.pending.WithLabelValues(info.Stream, info.Name).Set(float64(info.NumPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop stops the consumer: it stops fetching, hands back (Nak without delay)
// messages fetched but not started, and waits for running handlers until
// ctx ends. Then it cancels the handlers' context and waits for them to
// return; messages whose handler failed that way are handed back too, and
// Stop returns an error wrapping ctx.Err(). Later calls wait for the first
// one and return its result.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	first := !c.stopping
	c.stopping = true
	c.mu.Unlock()
	if first {
		c.stopErr = c.stop(ctx)
		close(c.stopped)
		return c.stopErr
	}
	select {
	case <-c.stopped:
		return c.stopErr
	case <-ctx.Done():
		return fmt.Errorf("consume %s: stop: %w", c.opts.Name, ctx.Err())
	}
}

func (c *Consumer) stop(ctx context.Context) error {
	c.stopWaiting()
	// Drain, not Stop: messages already fetched still reach receive, which
	// hands them back instead of leaving them to AckWait.
	c.cc.Drain()
	select {
	case <-c.cc.Closed():
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		c.cancelHandlers()
		<-done
		err = fmt.Errorf("consume %s: stop: in-flight handlers cancelled: %w", c.opts.Name, ctx.Err())
	}
	c.cancelHandlers()
	if c.pollStop != nil {
		c.pollStop()
		<-c.pollDone
		c.metrics.pending.DeleteLabelValues(c.opts.Stream, c.opts.Durable)
	}
	return err
}

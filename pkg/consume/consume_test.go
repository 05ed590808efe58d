package consume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// The work stream is the tests' own; dead letters go to Switchboard's DEAD
// stream, as they do in production.
const (
	workStream = "WORK"
	waitFor    = 20 * time.Second
)

type env struct {
	js   jetstream.JetStream
	dead jetstream.Stream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := srv.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: workStream, Subjects: []string{"work.>"}, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	dead, err := srv.JS.Stream(ctx, subjects.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: srv.JS, dead: dead}
}

// deadSubject maps work.<rest> to sb.dead.consumetest.<rest>.
func deadSubject(m jetstream.Msg) string {
	return "sb.dead.consumetest." + strings.TrimPrefix(m.Subject(), "work.")
}

// start fills in what every test consumer shares and stops it at cleanup.
func (e *env) start(t testing.TB, opts consume.Options) *consume.Consumer {
	t.Helper()
	opts.Stream = workStream
	if opts.DeadLetter == nil {
		opts.DeadLetter = consume.DeadLetterTo(e.js, deadSubject)
	}
	if opts.Backoff == (consume.Backoff{}) {
		opts.Backoff = consume.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := consume.Start(ctx, e.js, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func (e *env) publish(t testing.TB, subject, data string) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(data)
	m.Header.Set("X-Test", "kept")
	m.Header.Set(jetstream.ExpectedStreamHeader, workStream) // must not reach the dead letter
	ack, err := e.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSettled waits until the durable has no unsettled delivery left and its
// ack floor passed seq: the message was acked or terminated.
func (e *env) waitSettled(t testing.TB, durable string, seq uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to settle seq %d", durable, seq), func() bool {
		info, err := e.consumerInfo(durable)
		return err == nil && info.AckFloor.Stream >= seq && info.NumAckPending == 0
	})
}

func (e *env) consumerInfo(durable string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := e.js.Consumer(ctx, workStream, durable)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// deadLetter returns the last dead letter on subject, nil if there is none.
func (e *env) deadLetter(t testing.TB, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := e.dead.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// recorder remembers NumDelivered of every handler call.
type recorder struct {
	mu         sync.Mutex
	deliveries []uint64
}

func (r *recorder) record(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, md.NumDelivered)
	return md.NumDelivered
}

func (r *recorder) get() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// TestConformance is the settlement contract, one row per outcome, each on
// its own subject and durable in one server.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	fail := errors.New("boom")
	cases := []struct {
		name       string
		maxDeliver int
		ackWait    time.Duration
		mws        []consume.Middleware
		// deadLetter wraps the real one; nil uses it as is.
		deadLetter func(real consume.DeadLetter) consume.DeadLetter
		handler    func(r *recorder) consume.Handler
		want       []uint64
		// wantDead is a substring of the dead letter's reason; "" means the
		// message must not be dead-lettered.
		wantDead string
	}{
		{
			name: "nil acks",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error { r.record(m); return nil }
			},
			want: []uint64{1},
		},
		{
			name: "retry with delay redelivers",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error {
					if r.record(m) < 3 {
						return consume.Retry(fail, 20*time.Millisecond)
					}
					return nil
				}
			},
			want: []uint64{1, 2, 3},
		},
		{
			name: "error redelivers with backoff",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error {
					if r.record(m) < 3 {
						return fail
					}
					return nil
				}
			},
			want: []uint64{1, 2, 3},
		},
		{
			name:       "max deliver dead-letters",
			maxDeliver: 3,
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error { r.record(m); return fail }
			},
			want:     []uint64{1, 2, 3},
			wantDead: "gave up after 3 deliveries: boom",
		},
		{
			name:       "retry on the last delivery dead-letters",
			maxDeliver: 2,
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error {
					r.record(m)
					return consume.Retry(fail, 10*time.Millisecond)
				}
			},
			want:     []uint64{1, 2},
			wantDead: "gave up after 2 deliveries: boom",
		},
		{
			name: "permanent dead-letters at once",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error { r.record(m); return consume.Permanent(fail) }
			},
			want:     []uint64{1},
			wantDead: "boom",
		},
		{
			name: "wrapped permanent keeps its class",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error {
					r.record(m)
					return fmt.Errorf("decode: %w", consume.Permanent(errors.New("bad json")))
				}
			},
			want:     []uint64{1},
			wantDead: "decode: bad json",
		},
		{
			name: "panic dead-letters with its text and stack",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error { r.record(m); panic("kaboom") }
			},
			want:     []uint64{1},
			wantDead: "panic: kaboom [consume_test.TestConformance",
		},
		{
			name: "failed dead letter is not terminated",
			deadLetter: func(real consume.DeadLetter) consume.DeadLetter {
				var calls atomic.Int32
				return func(ctx context.Context, m jetstream.Msg, reason error) error {
					if calls.Add(1) <= 2 {
						return errors.New("DEAD unavailable")
					}
					return real(ctx, m, reason)
				}
			},
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error { r.record(m); return consume.Permanent(fail) }
			},
			want:     []uint64{1, 2, 3},
			wantDead: "boom",
		},
		{
			name:       "failed dead letter on the last delivery is retried",
			maxDeliver: 1,
			deadLetter: func(real consume.DeadLetter) consume.DeadLetter {
				var calls atomic.Int32
				return func(ctx context.Context, m jetstream.Msg, reason error) error {
					if calls.Add(1) == 1 {
						return errors.New("DEAD unavailable")
					}
					return real(ctx, m, reason)
				}
			},
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error { r.record(m); return fail }
			},
			want:     []uint64{1, 2},
			wantDead: "gave up after 2 deliveries: boom",
		},
		{
			name:    "ErrSettled leaves the message alone",
			ackWait: time.Second,
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error {
					if r.record(m) == 1 {
						// Unsettled on purpose: only AckWait brings it back,
						// which proves the plumbing did not ack it.
						return fmt.Errorf("handed off: %w", consume.ErrSettled)
					}
					return nil
				}
			},
			want: []uint64{1, 2},
		},
		{
			name: "handler that acked itself",
			handler: func(r *recorder) consume.Handler {
				return func(_ context.Context, m jetstream.Msg) error {
					r.record(m)
					if err := m.Ack(); err != nil {
						return err
					}
					return consume.ErrSettled
				}
			},
			want: []uint64{1},
		},
		{
			name: "timeout bounds the handler",
			mws:  []consume.Middleware{consume.Timeout(20 * time.Millisecond)},
			handler: func(r *recorder) consume.Handler {
				return func(ctx context.Context, m jetstream.Msg) error {
					r.record(m)
					<-ctx.Done()
					return consume.Permanent(ctx.Err())
				}
			},
			want:     []uint64{1},
			wantDead: "context deadline exceeded",
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "c" + strconv.Itoa(i)
			subject := "work." + key
			r := &recorder{}
			var dl consume.DeadLetter
			if tc.deadLetter != nil {
				dl = tc.deadLetter(consume.DeadLetterTo(e.js, deadSubject))
			}
			e.start(t, consume.Options{
				Name: key, FilterSubjects: []string{subject}, MaxDeliver: tc.maxDeliver,
				AckWait: tc.ackWait, Middleware: tc.mws, DeadLetter: dl, Handler: tc.handler(r),
			})
			seq := e.publish(t, subject, "payload "+key)
			e.waitSettled(t, key, seq)
			if got := r.get(); !slices.Equal(got, tc.want) {
				t.Errorf("deliveries = %v, want %v", got, tc.want)
			}
			dead := e.deadLetter(t, "sb.dead.consumetest."+key)
			if tc.wantDead == "" {
				if dead != nil {
					t.Fatalf("dead-lettered with %q, want acked", dead.Header.Get(consume.HeaderDeadReason))
				}
				return
			}
			if dead == nil {
				t.Fatal("no dead letter")
			}
			checkDeadLetter(t, dead, subject, seq, key, tc.wantDead)
		})
	}
}

func checkDeadLetter(t *testing.T, dead *jetstream.RawStreamMsg, subject string, seq uint64, durable, reason string) {
	t.Helper()
	h := dead.Header
	if got := h.Get(consume.HeaderDeadReason); !strings.Contains(got, reason) {
		t.Errorf("reason = %q, want it to contain %q", got, reason)
	}
	if got := h.Get(consume.HeaderDeadSubject); got != subject {
		t.Errorf("%s = %q, want %q", consume.HeaderDeadSubject, got, subject)
	}
	if got := h.Get(consume.HeaderDeadStream); got != workStream {
		t.Errorf("%s = %q, want %q", consume.HeaderDeadStream, got, workStream)
	}
	if got := h.Get(consume.HeaderDeadSequence); got != strconv.FormatUint(seq, 10) {
		t.Errorf("%s = %q, want %d", consume.HeaderDeadSequence, got, seq)
	}
	if got, want := h.Get(jetstream.MsgIDHeader), fmt.Sprintf("dead:%s:%s:%d", workStream, durable, seq); got != want {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, want)
	}
	if got := h.Get("X-Test"); got != "kept" {
		t.Errorf("original header X-Test = %q, want kept", got)
	}
	if got := h.Get(jetstream.ExpectedStreamHeader); got != "" {
		t.Errorf("original %s = %q was copied; server directives must be dropped", jetstream.ExpectedStreamHeader, got)
	}
	if got, want := string(dead.Data), "payload "+durable; got != want {
		t.Errorf("data = %q, want %q", got, want)
	}
}

func TestPanicKeepsConsuming(t *testing.T) {
	e := newEnv(t)
	var handled atomic.Int32
	e.start(t, consume.Options{
		Name: "panicky", FilterSubjects: []string{"work.panicky"},
		Handler: func(_ context.Context, m jetstream.Msg) error {
			if string(m.Data()) == "boom" {
				var none []byte
				_ = none[len(m.Data())] // a real runtime panic, not a panic(string)
			}
			handled.Add(1)
			return nil
		},
	})
	first := e.publish(t, "work.panicky", "boom")
	second := e.publish(t, "work.panicky", "fine")
	e.waitSettled(t, "panicky", second)
	if handled.Load() != 1 {
		t.Fatalf("handled %d messages after the panic, want 1", handled.Load())
	}
	dead := e.deadLetter(t, "sb.dead.consumetest.panicky")
	if dead == nil {
		t.Fatal("panicking message not dead-lettered")
	}
	reason := dead.Header.Get(consume.HeaderDeadReason)
	if !strings.Contains(reason, "index out of range [4] with length 0") || !strings.Contains(reason, "consume_test.go:") {
		t.Errorf("reason = %q, want the panic text and its location", reason)
	}
	if got := dead.Header.Get(consume.HeaderDeadSequence); got != strconv.FormatUint(first, 10) {
		t.Errorf("dead letter of seq %s, want %d", got, first)
	}
}

// TestKeepAlive runs a handler of 2.5s against an AckWait of 1s: with
// KeepAlive the message stays with it; without, JetStream redelivers it
// (the control that shows the first half means something).
func TestKeepAlive(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name          string
		mws           []consume.Middleware
		wantRedeliver bool
	}{
		{name: "kept", mws: []consume.Middleware{consume.KeepAlive(0)}},
		{name: "redelivered-without", wantRedeliver: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			subject := "work.keepalive-" + tc.name
			r := &recorder{}
			var done atomic.Int32
			e.start(t, consume.Options{
				Name: "keepalive-" + tc.name, FilterSubjects: []string{subject},
				AckWait: time.Second, Concurrency: 2, Middleware: tc.mws,
				Handler: func(ctx context.Context, m jetstream.Msg) error {
					r.record(m)
					defer done.Add(1)
					select {
					case <-time.After(2500 * time.Millisecond): // the slow work
					case <-ctx.Done():
						return ctx.Err()
					}
					return nil
				},
			})
			seq := e.publish(t, subject, "slow")
			if tc.wantRedeliver {
				eventually(t, "a redelivery", func() bool { return len(r.get()) >= 2 })
				return
			}
			eventually(t, "the handler to finish", func() bool { return done.Load() == 1 })
			e.waitSettled(t, "keepalive-"+tc.name, seq)
			if got := r.get(); !slices.Equal(got, []uint64{1}) {
				t.Errorf("deliveries = %v, want [1]", got)
			}
			info, err := e.consumerInfo("keepalive-" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumRedelivered != 0 {
				t.Errorf("NumRedelivered = %d, want 0", info.NumRedelivered)
			}
		})
	}
}

// TestStopDrains: Stop waits for running handlers and hands back the
// messages fetched but not started, which a second instance then gets at
// once (AckWait is long, so only a Nak can bring them back in time).
func TestStopDrains(t *testing.T) {
	e := newEnv(t)
	const total = 6
	release := make(chan struct{})
	var started, finishedClean atomic.Int32
	var firstSeqs sync.Map
	first := e.start(t, consume.Options{
		Name: "drain", FilterSubjects: []string{"work.drain"}, Concurrency: 2, AckWait: time.Minute,
		Handler: func(ctx context.Context, m jetstream.Msg) error {
			md, _ := m.Metadata()
			firstSeqs.Store(md.Sequence.Stream, true)
			started.Add(1)
			<-release
			if ctx.Err() == nil {
				finishedClean.Add(1)
			}
			return nil
		},
	})
	for i := range total {
		e.publish(t, "work.drain", strconv.Itoa(i))
	}
	eventually(t, "two handlers running", func() bool { return started.Load() == 2 })
	// A third message is fetched and waiting for a slot.
	eventually(t, "a fetched, unstarted message", func() bool {
		info, err := e.consumerInfo("drain")
		return err == nil && info.NumAckPending >= 3
	})
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		stopped <- first.Stop(ctx)
	}()

	// A second instance (the next replica of a rolling deploy) gets every
	// message the first one did not start, while the first is still
	// waiting for its two handlers.
	var second atomic.Int32
	e.start(t, consume.Options{
		Name: "drain", FilterSubjects: []string{"work.drain"}, Concurrency: 2, AckWait: time.Minute,
		Handler: func(_ context.Context, m jetstream.Msg) error {
			md, _ := m.Metadata()
			if _, dup := firstSeqs.Load(md.Sequence.Stream); dup {
				t.Errorf("seq %d handled by both instances", md.Sequence.Stream)
			}
			second.Add(1)
			return nil
		},
	})
	eventually(t, "the rest handled by the second instance", func() bool { return second.Load() == total-2 })
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while its handlers were still running", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if started.Load() != 2 || finishedClean.Load() != 2 {
		t.Fatalf("first instance started %d and finished %d uncancelled, want 2 and 2", started.Load(), finishedClean.Load())
	}
	e.waitSettled(t, "drain", total)
}

// TestStopCancelsHandlers: when Stop's ctx ends first, handlers are
// cancelled and their messages handed back, not dead-lettered, even on the
// last delivery.
func TestStopCancelsHandlers(t *testing.T) {
	e := newEnv(t)
	running := make(chan struct{})
	c := e.start(t, consume.Options{
		Name: "cancel", FilterSubjects: []string{"work.cancel"}, MaxDeliver: 1, AckWait: time.Minute,
		Handler: func(ctx context.Context, m jetstream.Msg) error {
			close(running)
			<-ctx.Done()
			return fmt.Errorf("interrupted: %w", ctx.Err())
		},
	})
	seq := e.publish(t, "work.cancel", "x")
	<-running
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	var again atomic.Int32
	e.start(t, consume.Options{
		Name: "cancel", FilterSubjects: []string{"work.cancel"}, MaxDeliver: 1, AckWait: time.Minute,
		Handler: func(context.Context, jetstream.Msg) error { again.Add(1); return nil },
	})
	e.waitSettled(t, "cancel", seq)
	if again.Load() != 1 {
		t.Fatalf("redelivered %d times, want 1", again.Load())
	}
	if dead := e.deadLetter(t, "sb.dead.consumetest.cancel"); dead != nil {
		t.Fatalf("dead-lettered on shutdown: %q", dead.Header.Get(consume.HeaderDeadReason))
	}
}

func TestConsumerConfig(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name           string
		opts           consume.Options
		wantMaxDeliver int
		wantFilter     string
		wantFilters    []string
	}{
		{
			name:           "defaults",
			opts:           consume.Options{Name: "cfg-default", FilterSubjects: []string{"work.a"}},
			wantMaxDeliver: consume.DefaultMaxDeliver + 5, wantFilter: "work.a",
		},
		{
			name:           "several filters",
			opts:           consume.Options{Name: "cfg-multi", Durable: "cfg-multi-d", MaxDeliver: 3, FilterSubjects: []string{"work.a", "work.b"}},
			wantMaxDeliver: 3 + 5, wantFilters: []string{"work.a", "work.b"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Handler = func(context.Context, jetstream.Msg) error { return nil }
			c := e.start(t, tc.opts)
			// Starting twice (a second replica) must be accepted as is.
			c2 := e.start(t, tc.opts)
			if c.Durable() != c2.Durable() {
				t.Fatalf("durables %q and %q", c.Durable(), c2.Durable())
			}
			info, err := e.consumerInfo(c.Durable())
			if err != nil {
				t.Fatal(err)
			}
			cfg := info.Config
			if cfg.MaxDeliver != tc.wantMaxDeliver {
				t.Errorf("MaxDeliver = %d, want %d", cfg.MaxDeliver, tc.wantMaxDeliver)
			}
			if len(cfg.BackOff) != 0 {
				t.Errorf("BackOff = %v, want none", cfg.BackOff)
			}
			if cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.AckWait != consume.DefaultAckWait {
				t.Errorf("AckPolicy %v AckWait %v", cfg.AckPolicy, cfg.AckWait)
			}
			if cfg.FilterSubject != tc.wantFilter || !slices.Equal(cfg.FilterSubjects, tc.wantFilters) {
				t.Errorf("filters %q %q, want %q %q", cfg.FilterSubject, cfg.FilterSubjects, tc.wantFilter, tc.wantFilters)
			}
		})
	}
}

func TestStartValidates(t *testing.T) {
	e := newEnv(t)
	h := func(context.Context, jetstream.Msg) error { return nil }
	dl := consume.DeadLetterTo(e.js, deadSubject)
	cases := []struct {
		name string
		opts consume.Options
	}{
		{"no name", consume.Options{Stream: workStream, Handler: h, DeadLetter: dl}},
		{"no stream", consume.Options{Name: "x", Handler: h, DeadLetter: dl}},
		{"no handler", consume.Options{Name: "x", Stream: workStream, DeadLetter: dl}},
		{"no dead letter", consume.Options{Name: "x", Stream: workStream, Handler: h}},
		{"unknown stream", consume.Options{Name: "x", Stream: "NOPE", Handler: h, DeadLetter: dl}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := consume.Start(context.Background(), e.js, tc.opts); err == nil {
				_ = c.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
		})
	}
}

// OnReceive sees the deliveries in the server's order, although the
// handlers run concurrently and settle in any order; a retry is a new
// delivery with a higher delivery number.
func TestOnReceiveOrder(t *testing.T) {
	e := newEnv(t)
	subject := "work.onreceive"
	var mu sync.Mutex
	var seqs []uint64
	var handled atomic.Int32
	e.start(t, consume.Options{
		Name: "onreceive", FilterSubjects: []string{subject}, Concurrency: 8,
		OnReceive: func(m jetstream.Msg) {
			md, err := m.Metadata()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seqs = append(seqs, md.Sequence.Consumer)
			mu.Unlock()
		},
		Handler: func(ctx context.Context, m jetstream.Msg) error {
			if md, _ := m.Metadata(); md.NumDelivered == 1 && md.Sequence.Stream%5 == 0 {
				return consume.Retry(errors.New("once more"), time.Millisecond)
			}
			handled.Add(1)
			return nil
		},
	})
	for i := range 60 {
		e.publish(t, subject, fmt.Sprint(i))
	}
	eventually(t, "60 messages handled", func() bool { return handled.Load() == 60 })
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != 72 {
		t.Errorf("%d deliveries seen, want 72 (60 and 12 retries)", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("delivery %d seen after %d: %v", seqs[i], seqs[i-1], seqs)
		}
	}
}

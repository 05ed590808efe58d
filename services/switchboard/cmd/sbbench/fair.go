package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	"github.com/switchboard-hq/switchboard/services/router"
)

// The scenario's flags are registered here, not in main's config, so the
// scenario stays one file.
var (
	fairRuns  = flag.Int("fair-runs", 100000, "runs project burst enqueues in the fair scenario")
	fairDelay = flag.Duration("fair-delay", 0, "how long the listener takes to answer each of project burst's calls in the fair scenario (a slow integration: the runs then pile up in RUNS instead of in TRIGGERS)")
)

const (
	fairProject  = "burst"
	fairUser     = "b1"
	fairEvent    = "Burst Event"
	fairProbe    = "Fair Probe"
	fairWorkflow = "fair-probe"
)

// fairListener is the local server both projects' http steps call: /burst
// counts project burst's runs, /dev reports each probe of project dev (by
// its payload's i) with the time of the call and how many burst calls had
// arrived by then.
type fairListener struct {
	srv   *http.Server
	done  chan error
	url   string
	delay time.Duration // before answering a burst call
	burst atomic.Int64
	// burstWant is the burst total; allBurst is closed when it is reached.
	burstWant atomic.Int64
	allBurst  chan struct{}
	allOnce   sync.Once
	lastBurst atomic.Int64 // unix nanos of the latest burst call
	mu        sync.Mutex
	probes    map[int64]chan probeHit
}

type probeHit struct {
	at    time.Time
	burst int64 // burst calls received before this one
}

func startFairListener(delay time.Duration) (*fairListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &fairListener{done: make(chan error, 1), url: "http://" + ln.Addr().String(), delay: delay,
		allBurst: make(chan struct{}), probes: map[int64]chan probeHit{}}
	l.burstWant.Store(-1)
	l.srv = &http.Server{Handler: http.HandlerFunc(l.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { l.done <- l.srv.Serve(ln) }()
	return l, nil
}

func (l *fairListener) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	switch r.URL.Path {
	case "/burst":
		if l.delay > 0 {
			time.Sleep(l.delay)
		}
		n := l.burst.Add(1)
		l.lastBurst.Store(now.UnixNano())
		if want := l.burstWant.Load(); want >= 0 && n >= want {
			l.allOnce.Do(func() { close(l.allBurst) })
		}
	case "/dev":
		hit := probeHit{at: now, burst: l.burst.Load()}
		var p struct {
			I json.Number `json:"i"`
		}
		_ = json.Unmarshal(body, &p)
		i, _ := p.I.Int64()
		if ch := l.probe(i); ch != nil {
			select {
			case ch <- hit:
			default: // a repeated call of the same probe: the first one counts
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// probe returns the channel probe i's call is reported on.
func (l *fairListener) probe(i int64) chan probeHit {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch, ok := l.probes[i]
	if !ok {
		ch = make(chan probeHit, 1)
		l.probes[i] = ch
	}
	return ch
}

func (l *fairListener) expectBurst(n int64) {
	l.burstWant.Store(n)
	if l.burst.Load() >= n {
		l.allOnce.Do(func() { close(l.allBurst) })
	}
}

func (l *fairListener) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
	<-l.done
}

// runFair measures whether one project's backlog holds up another
// project's runs. Project burst gets -fair-runs runs queued at once (one App
// Event each, published straight to TRIGGERS); one App Event of project dev
// is then sent through the API and timed from the send until its run has
// called the listener, twice:
//
//   - right after the burst is published, while the router still routes
//     burst's triggers: routing is one durable consumer on TRIGGERS for
//     every project, so this event waits its turn behind them;
//   - once every trigger is routed and burst's runs wait in RUNS: the
//     executor runs one durable consumer per project ("executor-<project>")
//     drawing from one budget of slots in round-robin, so dev's run should
//     get the next free slot rather than wait behind burst's backlog.
//
// Both are held to the < 1 s target. The same probe on the idle system is
// the reference.
func runFair(ctx context.Context, b *bench) error {
	n := *fairRuns
	if n <= 0 {
		return fmt.Errorf("-fair-runs must be positive, not %d", n)
	}
	l, err := startFairListener(*fairDelay)
	if err != nil {
		return err
	}
	defer l.stop()
	if err := b.setupFair(ctx, l.url); err != nil {
		return err
	}
	// The router starts burst's executor when it sees the new project;
	// wait for it so the backlog drains from the first message on.
	if err := waitConsumer(ctx, b, subjects.StreamRuns, router.ExecutorDurable(fairProject)); err != nil {
		return err
	}
	// Start from a quiet system: earlier scenarios' work is done.
	if _, err := b.drainRuns(ctx); err != nil {
		return err
	}

	var probeN int64
	probe := func() (time.Duration, probeHit, error) {
		probeN++
		return b.sendProbe(ctx, l, probeN)
	}
	if _, _, err := probe(); err != nil { // warm-up: connections, caches
		return fmt.Errorf("warm-up probe: %w", err)
	}
	idle, _, err := probe()
	if err != nil {
		return fmt.Errorf("idle probe: %w", err)
	}
	b.printf("fair: project %s enqueues %d runs (one App Event each, straight to TRIGGERS; the listener answers each after %s); project %s's run of App Event %q is timed while they drain\n",
		fairProject, n, *fairDelay, "dev", fairProbe)
	b.printf("  idle      dev event send → listener call %s\n", ms(idle))

	cpu0 := sampleCPU()
	start := time.Now()
	enqueued, err := b.enqueueBurst(ctx, n)
	if err != nil {
		return err
	}
	l.expectBurst(int64(n))
	b.printf("  enqueued  %d triggers in %s (%.0f/s)\n", n, enqueued.Round(time.Millisecond), float64(n)/enqueued.Seconds())

	// Probe 1: sent while the router still routes burst's triggers.
	routerBacklog, err := consumerBacklog(ctx, b, subjects.StreamTriggers, router.RouterDurable(fairProject))
	if err != nil {
		return err
	}
	duringRouting := make(chan probeResult, 1)
	probeN++
	go func(i int64) {
		d, hit, err := b.sendProbe(ctx, l, i)
		duringRouting <- probeResult{d, hit, err}
	}(probeN)

	if err := waitRouted(ctx, b, l, start, n); err != nil {
		return err
	}
	routedAt := time.Since(start)
	// Probe 1 was routed before the router ran dry; its run is done or
	// about to be, and probe 2 must not queue behind it.
	routing := <-duringRouting
	if routing.err != nil {
		return fmt.Errorf("probe sent during routing: %w", routing.err)
	}
	b.printf("  routing   dev event sent with %d burst triggers still to route: send → listener call %s (burst had completed %d runs then)\n",
		routerBacklog, ms(routing.d), routing.hit.burst)

	// Probe 2: every trigger is routed, burst's runs wait in RUNS for its
	// executor, and dev's run has to get past them to a slot.
	backlog, err := consumerBacklog(ctx, b, subjects.StreamRuns, router.ExecutorDurable(fairProject))
	if err != nil {
		return err
	}
	b.printf("  routed    every trigger after %s; %d of burst's runs completed, %d pending or in flight in %s\n",
		routedAt.Round(time.Millisecond), l.burst.Load(), backlog, router.ExecutorDurable(fairProject))
	draining, hit, err := probe()
	if err != nil {
		return fmt.Errorf("probe while burst drains: %w", err)
	}
	b.printf("  executing dev event send → listener call %s; burst had completed %d of %d runs then\n", ms(draining), hit.burst, n)
	stillDraining := hit.burst < int64(n)
	if !stillDraining {
		b.printf("  WARNING: burst had already drained when dev's run called; raise -fair-runs\n")
	}

	// Bounded: generous for a slow machine, but never forever.
	timeout := max(2*time.Minute, time.Duration(n)*5*time.Millisecond, time.Duration(n)*(*fairDelay)/64)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	for waiting := true; waiting; {
		select {
		case <-l.allBurst:
			waiting = false
		case <-progress.C:
			b.printf("  %5.1fs    burst %d of %d runs completed\n", time.Since(start).Seconds(), l.burst.Load(), n)
		case <-deadline.C:
			return fmt.Errorf("after %s burst had %d of %d runs completed", timeout, l.burst.Load(), n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	drain := time.Unix(0, l.lastBurst.Load()).Sub(start)
	cpu := cpuSince(cpu0)
	rate := float64(n) / drain.Seconds()
	// What a single FIFO queue of runs would have made dev's run wait: the
	// backlog ahead of it at the drain rate.
	fifo := time.Duration(float64(backlog) / rate * float64(time.Second))
	b.printf("  drained   %d runs %s after the first publish (%.0f runs/s, %s); behind the %d queued runs in one FIFO, dev's run would have waited ≈ %s\n",
		n, drain.Round(time.Millisecond), rate, cpu, backlog, fifo.Round(time.Millisecond))
	hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := b.waitHistory(hctx); err != nil {
		return err
	}

	verdict := func(d time.Duration, ok bool) string {
		if d < time.Second && ok {
			return "meets"
		}
		return "BELOW"
	}
	b.summary = append(b.summary,
		fmt.Sprintf("%-28s %8s send → listener call with burst's triggers routed, %d runs queued in %s (%d of %d burst runs done at the call; FIFO estimate %s; idle %s; target < 1s: %s)",
			"fair dev event, executing", ms(draining), backlog, router.ExecutorDurable(fairProject), hit.burst, n,
			fifo.Round(time.Millisecond), ms(idle), verdict(draining, stillDraining)),
		fmt.Sprintf("%-28s %8s send → listener call with %d of burst's triggers still to route (one router consumer per project, sharing the routing slots in turn; target < 1s: %s)",
			"fair dev event, routing", ms(routing.d), routerBacklog, verdict(routing.d, routing.hit.burst < int64(n))),
		fmt.Sprintf("%-28s %8s for %d runs from the first publish (%.0f runs/s; every trigger routed after %s; listener delay %s; other processes %.2f cores)",
			"fair burst drain", drain.Round(time.Millisecond), n, rate, routedAt.Round(time.Millisecond), *fairDelay, cpu.other),
	)
	return nil
}

type probeResult struct {
	d   time.Duration
	hit probeHit
	err error
}

// setupFair creates project burst through the operator API (project, API
// key, documents, user) and applies the probe workflow to project dev.
// Going through the API writes the user wherever the router reads users.
func (b *bench) setupFair(ctx context.Context, url string) error {
	admin := b.sys.AdminToken
	if _, err := b.callAs(ctx, admin, http.MethodPut, "/v1/projects/"+fairProject, `{"name":"Burst"}`, http.StatusOK); err != nil {
		return fmt.Errorf("create project %s: %w", fairProject, err)
	}
	raw, err := b.callAs(ctx, admin, http.MethodPost, "/v1/projects/"+fairProject+"/api-keys", "", http.StatusCreated)
	if err != nil {
		return fmt.Errorf("API key of %s: %w", fairProject, err)
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(raw, &key); err != nil || key.Key == "" {
		return fmt.Errorf("API key of %s: %q", fairProject, raw)
	}
	docs := fmt.Sprintf(`kind: AppEvent
name: %s
---
kind: Workflow
id: burst-call
trigger: {type: app_event, event: %s}
steps:
  - id: call
    type: http
    method: POST
    url: %s/burst
    json: {i: "{{ trigger.payload.i }}"}
`, fairEvent, fairEvent, url)
	if _, err := b.callAs(ctx, key.Key, http.MethodPost, "/v1/projects/"+fairProject+"/apply", docs, http.StatusOK); err != nil {
		return fmt.Errorf("apply to %s: %w", fairProject, err)
	}
	if _, err := b.callAs(ctx, key.Key, http.MethodPut, "/v1/projects/"+fairProject+"/users/"+fairUser, "{}",
		http.StatusOK, http.StatusCreated, http.StatusNoContent); err != nil {
		return fmt.Errorf("user %s of %s: %w", fairUser, fairProject, err)
	}
	return b.apply(ctx, fmt.Sprintf(`kind: AppEvent
name: %s
---
kind: Workflow
id: %s
trigger: {type: app_event, event: %s}
steps:
  - id: call
    type: http
    method: POST
    url: %s/dev
    json: {i: "{{ trigger.payload.i }}"}
`, fairProbe, fairWorkflow, fairProbe, url))
}

// callAs is call with another bearer token; it returns the answer's body.
func (b *bench) callAs(ctx context.Context, token, method, path, body string, want ...int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if strings.HasSuffix(path, "/apply") {
		req.Header.Set("Content-Type", "application/yaml")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	for _, w := range want {
		if resp.StatusCode == w {
			return msg, nil
		}
	}
	return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
}

// sendProbe sends App Event "Fair Probe" {i} as user u1 of project dev and
// waits until its run has called the listener.
func (b *bench) sendProbe(ctx context.Context, l *fairListener, i int64) (time.Duration, probeHit, error) {
	ch := l.probe(i)
	body := fmt.Sprintf(`{"name":%q,"payload":{"i":%d}}`, fairProbe, i)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/v1/projects/dev/events", strings.NewReader(body))
	if err != nil {
		return 0, probeHit{}, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, probeHit{}, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return 0, probeHit{}, fmt.Errorf("POST /v1/projects/dev/events: %d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	wait := time.NewTimer(5 * time.Minute)
	defer wait.Stop()
	select {
	case hit := <-ch:
		return hit.at.Sub(sent), hit, nil
	case <-wait.C:
		return 0, probeHit{}, fmt.Errorf("probe %d: its run did not call the listener within 5m", i)
	case <-ctx.Done():
		return 0, probeHit{}, ctx.Err()
	}
}

// enqueueBurst publishes n App Events of project burst to TRIGGERS, as
// ingress would (protobuf envelope, Nats-Msg-Id = event id), asynchronously
// on a JetStream context of its own so its pending publishes do not count
// against the system's. It returns once JetStream stored every one.
func (b *bench) enqueueBurst(ctx context.Context, n int) (time.Duration, error) {
	var failed atomic.Int64
	var firstErr atomic.Value
	js, err := jetstream.New(b.sys.NC,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}))
	if err != nil {
		return 0, err
	}
	subject := subjects.Trigger(fairProject, subjects.KindAppEvent, fairUser)
	start := time.Now()
	for i := range n {
		now := timestamppb.Now()
		ev := &sbv1.TriggerEvent{
			Id: envelope.NewID(), Project: fairProject, Kind: sbv1.Kind_APP_EVENT, Name: fairEvent, User: fairUser,
			Payload: []byte(`{"i":` + strconv.Itoa(i) + `}`), OccurredAt: now, ReceivedAt: now,
		}
		m, err := envelope.NewMsg(subject, ev)
		if err != nil {
			return 0, err
		}
		// The stall wait is the backpressure: a publish waits for room
		// among the pending ones instead of failing after 200ms when the
		// server falls behind (it also routes and executes meanwhile).
		if _, err := js.PublishMsgAsync(m, jetstream.WithMsgID(ev.Id), jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, fmt.Errorf("publish burst event %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d burst publishes failed, the first with: %v", f, n, firstErr.Load())
	}
	return time.Since(start), nil
}

// waitRouted waits until the router has settled every trigger, printing
// the router consumer's state every 5s (a pull that stalls shows as no
// progress with nothing waiting or unacknowledged).
func waitRouted(ctx context.Context, b *bench, l *fairListener, start time.Time, n int) error {
	timeout := max(2*time.Minute, time.Duration(n)*2*time.Millisecond)
	cons, err := b.sys.JS.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable(fairProject))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", router.RouterDurable(fairProject), err)
	}
	last := time.Now()
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", router.RouterDurable(fairProject), err)
		}
		if info.NumPending+uint64(info.NumAckPending) == 0 {
			return nil
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			b.printf("  %5.1fs    router: %d triggers to route, %d unacked, %d pull requests waiting; burst %d of %d runs completed\n",
				time.Since(start).Seconds(), info.NumPending, info.NumAckPending, info.NumWaiting, l.burst.Load(), n)
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("after %s the router still had %d triggers to route", timeout, info.NumPending+uint64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// consumerBacklog is a consumer's pending plus unacknowledged messages.
func consumerBacklog(ctx context.Context, b *bench, stream, durable string) (uint64, error) {
	cons, err := b.sys.JS.Consumer(ctx, stream, durable)
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", durable, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", durable, err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// waitConsumer waits until durable exists on stream.
func waitConsumer(ctx context.Context, b *bench, stream, durable string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := b.sys.JS.Consumer(ctx, stream, durable)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("consumer %s: %w", durable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer %s was not created: %w", durable, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

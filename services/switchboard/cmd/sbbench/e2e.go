package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
)

const e2eWorkflow = "bench-e2e"

// listener is the local server the workflow's http step calls.
type listener struct {
	hits      atomic.Int64
	mu        sync.Mutex
	first     time.Time
	last      time.Time
	srv       *http.Server
	done      chan error
	url       string
	wantTotal atomic.Int64
	all       chan struct{} // closed when hits reach wantTotal
	closeOnce sync.Once
}

func startListener() (*listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &listener{done: make(chan error, 1), all: make(chan struct{}), url: "http://" + ln.Addr().String() + "/hook"}
	l.wantTotal.Store(-1)
	l.srv = &http.Server{Handler: http.HandlerFunc(l.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { l.done <- l.srv.Serve(ln) }()
	return l, nil
}

func (l *listener) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	now := time.Now()
	n := l.hits.Add(1)
	l.mu.Lock()
	if l.first.IsZero() {
		l.first = now
	}
	l.last = now
	l.mu.Unlock()
	if want := l.wantTotal.Load(); want >= 0 && n >= want {
		l.closeOnce.Do(func() { close(l.all) })
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// expect sets how many hits complete the run (once the sends are counted).
func (l *listener) expect(n int64) {
	l.wantTotal.Store(n)
	if l.hits.Load() >= n {
		l.closeOnce.Do(func() { close(l.all) })
	}
}

func (l *listener) times() (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first, l.last
}

func (l *listener) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
	<-l.done
}

// runE2E applies a workflow with one http step on App Event "Bench E2E",
// sends -events such events through the API as fast as -conns connections
// can, and measures completed runs per second: from the first send until the
// listener has received every call. It then reports when the executor had
// recorded every run succeeded and when the read model (GET /runs) had them.
func runE2E(ctx context.Context, b *bench) error {
	l, err := startListener()
	if err != nil {
		return err
	}
	defer l.stop()
	docs := fmt.Sprintf(`kind: AppEvent
name: Bench E2E
---
kind: Workflow
id: %s
trigger: {type: app_event, event: Bench E2E}
steps:
  - id: call
    type: http
    method: POST
    url: %s
    json:
      i: "{{ trigger.payload.i }}"
      user: "{{ user.id }}"
`, e2eWorkflow, l.url)
	if err := b.apply(ctx, docs); err != nil {
		return err
	}
	// Start from a quiet system: the ingest rounds' triggers are routed.
	if _, err := b.drainRouter(ctx); err != nil {
		return err
	}
	succ0, fail0, err := runsFinished(b)
	if err != nil {
		return err
	}
	n := int64(b.cfg.events)
	b.printf("e2e: %d App Events over %d conns, workflow %s (one http step to %s)\n", n, b.cfg.conns, e2eWorkflow, l.url)

	t := target{name: "send", url: b.base + "/v1/projects/dev/events",
		header: http.Header{"Authorization": {"Bearer " + b.token}}, body: eventBody("Bench E2E")}
	stopProf, err := b.startProfile("e2e")
	if err != nil {
		return err
	}
	profiling := true
	defer func() {
		if profiling {
			stopProf()
		}
	}()
	cpu0 := sampleCPU()
	start := time.Now()
	sent := make(chan result, 1)
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending() // on an early return, stop the senders before teardown
	go func() { sent <- closedLoop(sendCtx, t, b.cfg.conns, limit{n: n}) }()

	// Bounded: generous for a slow machine, but never forever.
	timeout := max(2*time.Minute, time.Duration(n)*10*time.Millisecond)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	var send result
	sendDone := false
	for waiting := true; waiting; {
		select {
		case send = <-sent:
			sendDone = true
			b.printf("  sent      %s\n", send)
			l.expect(send.ok)
			if send.ok == 0 {
				return errors.New("no event was accepted")
			}
		case <-l.all:
			waiting = false
		case <-progress.C:
			s, f, _ := runsFinished(b)
			b.printf("  %5.1fs    listener %d calls, runs succeeded %.0f, failed %.0f\n",
				time.Since(start).Seconds(), l.hits.Load(), s-succ0, f-fail0)
		case <-deadline.C:
			s, f, _ := runsFinished(b)
			return fmt.Errorf("after %s the listener had %d of %d calls (runs succeeded %.0f, failed %.0f)",
				timeout, l.hits.Load(), n, s-succ0, f-fail0)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !sendDone {
		send = <-sent
		b.printf("  sent      %s\n", send)
	}
	want := send.ok
	cpu := cpuSince(cpu0)
	stopProf()
	profiling = false
	_, last := l.times()
	callsDur := last.Sub(start)
	rate := float64(l.hits.Load()) / callsDur.Seconds()

	// The executor counts a run finished once its final state is stored in
	// RUN_EVENTS; the read model follows that stream.
	var execDur time.Duration
	for {
		s, f, err := runsFinished(b)
		if err != nil {
			return err
		}
		if s-succ0+f-fail0 >= float64(want) {
			execDur = time.Since(start)
			if f-fail0 > 0 {
				b.printf("  WARNING: %.0f runs failed\n", f-fail0)
			}
			break
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("only %.0f of %d runs finished after %s", s-succ0+f-fail0, want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.waitHistory(hctx); err != nil {
		return err
	}
	readDur := time.Since(start)
	succeeded, err := countRuns(b, runs.StatusSucceeded)
	if err != nil {
		return err
	}

	b.printf("  accepted  %d events in %s (%.0f events/s over HTTP, p99 %s)\n",
		send.ok, send.elapsed.Round(time.Millisecond), send.rps(), ms(send.pct(99)))
	b.printf("  listener  %d calls, the last %s after the first send: %.0f completed runs/s\n",
		l.hits.Load(), callsDur.Round(time.Millisecond), rate)
	b.printf("  %s until the last call, %s process CPU per run\n", cpu, cpu.perOp(rate))
	b.printf("  executor  every run stored as finished after %s (%.0f runs/s)\n",
		execDur.Round(time.Millisecond), float64(want)/execDur.Seconds())
	b.printf("  read model %d runs succeeded in GET /runs after %s (%.0f runs/s)\n",
		succeeded, readDur.Round(time.Millisecond), float64(succeeded)/readDur.Seconds())
	if succeeded != want {
		b.printf("  WARNING: read model has %d succeeded runs, %d events were accepted\n", succeeded, want)
	}
	verdict := "meets"
	if rate < 3000 {
		verdict = "BELOW"
	}
	b.summary = append(b.summary,
		fmt.Sprintf("%-28s %8.0f runs/s (%d runs, listener's last call %s after the first send; target ≥ 3000: %s)",
			"e2e completed runs", rate, l.hits.Load(), callsDur.Round(time.Millisecond), verdict),
		fmt.Sprintf("%-28s %8s per run (whole process incl. load generator; other processes %.2f cores)",
			"e2e process CPU", cpu.perOp(rate), cpu.other),
		fmt.Sprintf("%-28s %8.0f events/s over HTTP while runs execute (p99 %s, errors %d)",
			"e2e send", send.rps(), ms(send.pct(99)), send.errs),
		fmt.Sprintf("%-28s %8s after the first send (%d succeeded; executor done after %s)",
			"e2e read model complete", readDur.Round(time.Millisecond), succeeded, execDur.Round(time.Millisecond)),
	)
	return nil
}

// runsFinished reads switchboard_runs_finished_total{status} from the dev
// system's registry.
func runsFinished(b *bench) (succeeded, failed float64, err error) {
	fams, err := b.sys.Metrics.Registry.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, f := range fams {
		if f.GetName() != "switchboard_runs_finished_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "status" {
					continue
				}
				switch lp.GetValue() {
				case string(runs.StatusSucceeded):
					succeeded += m.GetCounter().GetValue()
				case string(runs.StatusFailed):
					failed += m.GetCounter().GetValue()
				}
			}
		}
	}
	return succeeded, failed, nil
}

// countRuns pages through the read model's runs of the bench workflow with
// status st, as GET /v1/projects/dev/runs?workflow=…&status=… does.
func countRuns(b *bench, st runs.Status) (int64, error) {
	var n int64
	f := history.Filter{Project: "dev", Workflow: e2eWorkflow, Status: st, Limit: history.MaxLimit}
	for {
		page, err := b.sys.History.ListRuns(f)
		if err != nil {
			return n, err
		}
		n += int64(len(page.Runs))
		if page.NextCursor == "" {
			return n, nil
		}
		f.Cursor = page.NextCursor
	}
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// runIngest compares POST /v1/projects/dev/events with the bare baseline.
// The event has no workflow, so the router only decodes it and writes a
// decision record; it does that concurrently with the load, as it would in
// production, and its backlog is drained before the next round starts so it
// never steals CPU from the baseline.
func runIngest(ctx context.Context, b *bench) error {
	hdr := http.Header{"Authorization": {"Bearer " + b.token}}
	body := eventBody("Bench Event")
	bareT := target{name: "bare", url: b.bare.Base + "/bare/events", header: hdr, body: body}
	sbT := target{name: "switchboard", url: b.base + "/v1/projects/dev/events", header: hdr, body: body}
	bareRs, sbRs, err := compare(ctx, b, comparison{name: "ingest", profile: "ingest", conns: b.cfg.conns, trace: true}, bareT, sbT, b.drainRouter)
	if err != nil {
		return err
	}
	report(b, "ingest", bareRs, sbRs, 0.70)
	return nil
}

// comparison says how compare runs: name labels the log, profile names the
// -cpuprofile files (FILE.<profile>.<target>.<round>), conns is the load's
// concurrency, and trace takes the -trace from its first subject round.
type comparison struct {
	name    string
	profile string
	conns   int
	trace   bool
}

// compare drives the same closed-loop load against base and subject in
// alternating rounds (base, subject, base, subject), after an unmeasured
// warm-up of each. after runs when a subject round ends (to drain work the
// subject left queued) and returns a note for the log.
func compare(ctx context.Context, b *bench, cmp comparison, base, subject target, after func(context.Context) (string, error)) (baseRs, subjRs []result, err error) {
	const rounds = 2
	round := b.cfg.duration / rounds
	warm := min(max(round/5, 500*time.Millisecond), 2*time.Second)
	name := cmp.name
	b.printf("%s: %d conns, warm-up %s each, then %d rounds of %s per target, alternating\n", name, cmp.conns, warm, rounds, round)
	for _, t := range []target{base, subject} {
		r := closedLoop(ctx, t, cmp.conns, limit{d: warm})
		b.printf("  warm-up   %s\n", r)
		if t.name == subject.name && after != nil {
			if _, err := after(ctx); err != nil {
				return nil, nil, err
			}
		}
	}
	for i := 1; i <= rounds; i++ {
		for _, t := range []target{base, subject} {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			stopProf, err := b.startProfile(fmt.Sprintf("%s.%s.%d", cmp.profile, t.name, i))
			if err != nil {
				return nil, nil, err
			}
			var traced chan error
			if i == 1 && t.name == subject.name && cmp.trace && b.cfg.trace != "" {
				traced = make(chan error, 1)
				go func() { traced <- b.traceFor(ctx, round/2-time.Second, 2*time.Second) }()
			}
			r := closedLoop(ctx, t, cmp.conns, limit{d: round})
			stopProf()
			if traced != nil {
				if err := <-traced; err != nil {
					return nil, nil, err
				}
			}
			b.printf("  round %d   %s\n", i, r)
			if t.name == base.name {
				baseRs = append(baseRs, r)
				continue
			}
			subjRs = append(subjRs, r)
			if after != nil {
				note, err := after(ctx)
				if err != nil {
					return nil, nil, err
				}
				b.printf("            %s\n", note)
			}
		}
	}
	return baseRs, subjRs, nil
}

// report prints and records the comparison: the mean rate over both rounds
// (total 2xx / total time) is the headline, the best round is shown too. It
// returns the subject's merged rounds.
func report(b *bench, name string, baseRs, subjRs []result, target float64) result {
	bm, sm := merge(baseRs[0].name, baseRs), merge(subjRs[0].name, subjRs)
	ratio := sm.rps() / bm.rps()
	bestRatio := best(subjRs).rps() / best(baseRs).rps()
	verdict := "meets"
	if ratio < target {
		verdict = "BELOW"
	}
	b.printf("  mean      %s\n  mean      %s\n", bm, sm)
	b.printf("  ratio %s/%s: %.2f of mean req/s (best rounds: %.2f); target ≥ %.2f: %s\n",
		sm.name, bm.name, ratio, bestRatio, target, verdict)
	line := func(r result) string {
		return fmt.Sprintf("%-28s %8.0f req/s  p50 %8s  p99 %8s  errors %d  (process CPU %s/req; other processes %.2f cores)",
			name+" "+r.name, r.rps(), ms(r.pct(50)), ms(r.pct(99)), r.errs, r.cpu.perOp(r.rps()), r.cpu.other)
	}
	b.summary = append(b.summary,
		line(bm), line(sm),
		fmt.Sprintf("%-28s %8.2f (mean of %d rounds; best rounds %.2f; target ≥ %.2f: %s)", name+" ratio", ratio, len(subjRs), bestRatio, target, verdict),
	)
	return sm
}

// startProfile starts a CPU profile of the whole process when -cpuprofile
// is set; the returned func stops it.
func (b *bench) startProfile(suffix string) (func(), error) {
	if b.cfg.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(b.cfg.cpuProfile + "." + suffix)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// traceFor writes an execution trace of the whole process, from after to
// after+d, to -trace.
func (b *bench) traceFor(ctx context.Context, after, d time.Duration) error {
	select {
	case <-time.After(max(after, 0)):
	case <-ctx.Done():
		return nil
	}
	f, err := os.Create(b.cfg.trace)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := trace.Start(f); err != nil {
		return err
	}
	time.Sleep(d)
	trace.Stop()
	return nil
}

// drainRouter waits until the router has routed every trigger and the read
// model has applied every record, and says how far behind it was.
func (b *bench) drainRouter(ctx context.Context) (string, error) {
	start := time.Now()
	cons, err := b.sys.JS.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable(dev.Project))
	if err != nil {
		return "", err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return "", err
	}
	backlog := info.NumPending + uint64(info.NumAckPending)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for info.NumPending > 0 || info.NumAckPending > 0 {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("router backlog not drained: %d pending, %d unacked", info.NumPending, info.NumAckPending)
		case <-time.After(20 * time.Millisecond):
		}
		if info, err = cons.Info(ctx); err != nil {
			return "", err
		}
	}
	routed := time.Since(start)
	if err := b.waitHistory(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("router backlog at round end: %d triggers, routed in %s; read model caught up after %s",
		backlog, routed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond)), nil
}

// waitHistory waits until the read model has applied RUN_EVENTS up to its
// current last sequence.
func (b *bench) waitHistory(ctx context.Context) error {
	st, err := b.sys.JS.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	if err := b.sys.History.WaitSeq(ctx, info.State.LastSeq); err != nil {
		return fmt.Errorf("read model at %d of %d: %w", b.sys.History.LastSeq(), info.State.LastSeq, err)
	}
	return nil
}

// Command sbbench is Switchboard's benchmark (`make bench`). In one
// invocation it measures, on this machine and on 127.0.0.1 only:
//
//   - ingest: the same closed-loop load against POST /v1/projects/dev/events of
//     an in-process dev system and against a bare echo handler that only
//     publishes the body to JetStream and answers 202, alternating rounds;
//   - sync: synchronous request triggers (a workflow whose one response step
//     echoes a body field) against a bare handler doing the minimal durable
//     round trip (JetStream publish, a pull consumer answers on core NATS),
//     at 1 and at -conns connections, alternating rounds;
//   - e2e: App Events sent through the API until a one-`http`-step workflow
//     has called a local listener for every one of them (runs/s);
//   - devproc: startup time of `switchboard dev` on a warm data dir and its
//     idle RSS.
//
// Each scenario is one function in the scenarios table; a scenario with a
// baseline adds its route to the bare server in setup (before serve) and
// reuses compare() and report().
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

type config struct {
	duration   time.Duration
	conns      int
	events     int
	dataDir    string
	cpuProfile string
	trace      string
	only       string
	repo       string
}

// bench is what every scenario shares.
type bench struct {
	cfg     config
	tmp     string // removed at the end unless -data-dir was given
	sys     *dev.System
	base    string // http://host:port of the dev system
	token   string // user token of u1
	bare    *bare
	summary []string // lines of the final block
	out     io.Writer
}

type scenario struct {
	name string
	// needsSystem scenarios run against the in-process dev system and bare
	// baseline; the others bring their own processes.
	needsSystem bool
	run         func(ctx context.Context, b *bench) error
}

var scenarios = []scenario{
	{"ingest", true, runIngest},
	{"e2e", true, runE2E},
	{"sync", true, runSync},
	{"fair", true, runFair},
	{"devproc", false, runDevProc},
}

// extraScenarios run only when -only names them.
var extraScenarios = []scenario{
	{"schedule", false, runSchedule},
}

func main() {
	// The same GC setting as the switchboard binary; it applies to the bare
	// baseline in this process too, so the comparison stays even.
	service.TuneRuntime()
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "load time per target in the ingest comparison and in each sync comparison (split over 2 rounds each)")
	flag.IntVar(&cfg.conns, "conns", 50, "concurrent keep-alive connections (sync also runs at 1)")
	flag.IntVar(&cfg.events, "events", 30000, "App Events sent in the end-to-end scenario")
	flag.StringVar(&cfg.dataDir, "data-dir", "", "parent directory of the run's scratch dir (default: the system temp dir); the scratch dir is removed at the end")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write CPU profiles of the whole process during each ingest round (FILE.ingest.<target>.<round>), each sync round (FILE.sync.<conns>c.<target>.<round>) and the e2e send (FILE.e2e)")
	flag.StringVar(&cfg.trace, "trace", "", "write a 2s runtime/trace of the whole process from the middle of the first switchboard ingest round to FILE (go tool trace -pprof=sync FILE)")
	flag.StringVar(&cfg.only, "only", "", "comma-separated scenarios to run (default all: ingest,e2e,sync,fair,devproc; schedule only when named)")
	flag.StringVar(&cfg.repo, "repo", "", "repository root for building the switchboard binary (default: found from the working directory)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sbbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	b := &bench{cfg: cfg, out: out}
	if cfg.dataDir != "" {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return err
		}
	}
	if b.tmp, err = os.MkdirTemp(cfg.dataDir, "sbbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	selected, err := selectScenarios(cfg.only)
	if err != nil {
		return err
	}
	b.printf("sbbench: %s, GOMAXPROCS %d, NumCPU %d, %d conns, -duration %s, -events %d, load average %s\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), cfg.conns, cfg.duration, cfg.events, loadavg())
	b.summary = append(b.summary, fmt.Sprintf("%-28s %s, %d CPUs, %d conns, load average at start %s",
		"machine", runtime.Version(), runtime.NumCPU(), cfg.conns, loadavg()))

	needSys := false
	for _, s := range selected {
		needSys = needSys || s.needsSystem
	}
	if needSys {
		if err := b.setup(ctx); err != nil {
			return err
		}
		defer b.teardown()
	}
	var failed []string
	for _, s := range selected {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.printf("== %s\n", s.name)
		if err := s.run(ctx, b); err != nil {
			b.printf("%s: FAILED: %v\n", s.name, err)
			b.summary = append(b.summary, fmt.Sprintf("%-28s FAILED: %v", s.name, err))
			failed = append(failed, s.name)
		}
		b.printf("\n")
	}
	b.summary = append(b.summary, fmt.Sprintf("%-28s %s", "load average at end", loadavg()))
	b.printf("== summary (paste into docs/benchmarks.md)\n```\n")
	for _, l := range b.summary {
		b.printf("%s\n", l)
	}
	b.printf("```\n")
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func selectScenarios(only string) ([]scenario, error) {
	if only == "" {
		return scenarios, nil
	}
	var out []scenario
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range append(scenarios[:len(scenarios):len(scenarios)], extraScenarios...) {
			if s.name == name {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
	}
	return out, nil
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

// setup starts the dev system with the ingest documents and user u1, and the
// bare baseline with its routes.
func (b *bench) setup(ctx context.Context) error {
	started := time.Now()
	sys, err := dev.Start(ctx, dev.Options{
		DataDir:  b.tmp + "/dev",
		HTTPAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return fmt.Errorf("dev system: %w", err)
	}
	b.sys, b.base = sys, "http://"+sys.HTTPAddr
	b.printf("dev system on %s (started in %s)\n", b.base, time.Since(started).Round(time.Millisecond))
	if err := b.apply(ctx, "kind: AppEvent\nname: Bench Event\n"); err != nil {
		return err
	}
	if err := b.call(ctx, http.MethodPut, "/v1/projects/dev/users/u1", "{}", http.StatusOK, http.StatusCreated, http.StatusNoContent); err != nil {
		return fmt.Errorf("create user u1: %w", err)
	}
	if b.token, err = sys.Token("u1", 24*time.Hour); err != nil {
		return err
	}
	if b.bare, err = startBare(ctx, b.tmp); err != nil {
		return fmt.Errorf("bare baseline: %w", err)
	}
	if err := b.bare.addSync(ctx); err != nil {
		return fmt.Errorf("bare baseline: %w", err)
	}
	if err := b.bare.serve(); err != nil {
		return fmt.Errorf("bare baseline: %w", err)
	}
	b.printf("bare baseline on %s\n\n", b.bare.Base)
	return nil
}

func (b *bench) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b.bare != nil {
		b.bare.Stop(ctx)
	}
	if b.sys != nil {
		b.sys.Stop(ctx)
	}
}

// apply posts documents to the dev project with the API key.
func (b *bench) apply(ctx context.Context, docs string) error {
	if err := b.call(ctx, http.MethodPost, "/v1/projects/dev/apply", docs, http.StatusOK); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

// call makes one API call with the project API key and checks the status.
func (b *bench) call(ctx context.Context, method, path, body string, want ...int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.sys.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	for _, w := range want {
		if resp.StatusCode == w {
			return nil
		}
	}
	return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
}

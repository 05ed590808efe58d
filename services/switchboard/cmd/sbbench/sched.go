package main

// The scheduler benchmark (issue 10, "Numbers this must reach"), run with
// `sbbench -only schedule`; not part of the default set (it imports a
// million users):
//
//   - fan-out: -sched-users users (default 1,000,000) enrolled for one
//     workflow, imported with pkg/directory's Import, every one in one zone
//     of their metadata; one tick triggered with POST …/schedule/trigger;
//     measured: the time from the trigger's answer (and from the first tick
//     event stored in TRIGGERS) until RUNS holds one message per user, the
//     decision pages written, the router's and the scheduler's VmRSS;
//   - lateness: -sched-workflows workflows (default 1,000) ticking every
//     -sched-every (5s) in each of -sched-zones zones (10) of a small
//     audience (one user per zone), for -sched-for (60s); lateness of each
//     tick event = the time TRIGGERS stored it − its nominal time.
//
// The NATS server is embedded in this process (its store in -sched-dir when
// given, which is kept and reused: a second run skips the import); the
// router and the scheduler are `switchboard serve --role …` processes of
// their own, so their RSS is their own (VmRSS from /proc). Runs are not
// executed during the measurement: the executor's durable consumer is
// paused, so RUNS keeps every dispatched run message.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

var (
	schedUsers     = flag.Int("sched-users", 1_000_000, "schedule: users enrolled for the fan-out workflow")
	schedWorkflows = flag.Int("sched-workflows", 1000, "schedule: workflows of small audiences in the lateness run (0 skips it)")
	schedZones     = flag.Int("sched-zones", 10, "schedule: zones each lateness workflow ticks in (one user each)")
	schedEvery     = flag.Duration("sched-every", 5*time.Second, "schedule: interval of the lateness workflows")
	schedFor       = flag.Duration("sched-for", 60*time.Second, "schedule: how long lateness is measured")
	schedDir       = flag.String("sched-dir", "", "schedule: keep the NATS store here and reuse it (a second run skips the import); default a scratch dir")
	schedProfile   = flag.String("sched-cpuprofile", "", "schedule: write a CPU profile of the router process during the fan-out to FILE")
	schedSkipFan   = flag.Bool("sched-skip-fanout", false, "schedule: skip the fan-out (lateness only)")
	schedLateProf  = flag.String("sched-late-cpuprofile", "", "schedule: write a CPU profile of the scheduler process during the lateness run to FILE")
	schedNATS      = flag.String("sched-nats", "process", "schedule: the NATS server: process (a stock nats-server binary built from the module, as deployed) or embedded (in sbbench's process, with its runtime settings)")
	schedSrvProf   = flag.String("sched-late-server-cpuprofile", "", "schedule: write a CPU profile of the nats-server during the lateness window to FILE")
	schedBin       = flag.String("sched-bin", "", "schedule: the switchboard binary to run the router and scheduler with (default: built from the repository)")
	schedWait      = flag.Duration("sched-wait", 10*time.Minute, "schedule: give up on the fan-out after this long")
)

const schedProject = "dev"

// lateZones are the zones of the lateness run's audiences.
var lateZones = []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
	"America/Los_Angeles", "Europe/London", "Asia/Kolkata", "America/Sao_Paulo", "Africa/Cairo",
	"Asia/Singapore", "Pacific/Auckland"}

type schedEnv struct {
	b         *bench
	ns        natsServer
	app       *app.App
	js        jetstream.JetStream
	apiKey    string
	base      string // the in-process ingress (apply)
	router    *roleProc
	scheduler *roleProc
}

func runSchedule(ctx context.Context, b *bench) error {
	if *schedZones > len(lateZones) {
		return fmt.Errorf("-sched-zones: at most %d", len(lateZones))
	}
	repo, err := repoRoot(b.cfg.repo)
	if err != nil {
		return err
	}
	bin := *schedBin
	if bin == "" {
		bin = filepath.Join(b.tmp, "switchboard")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./services/switchboard/cmd/switchboard")
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	dir := *schedDir
	if dir == "" {
		dir = filepath.Join(b.tmp, "sched")
	}
	e := &schedEnv{b: b}
	if err := e.start(ctx, dir); err != nil {
		return err
	}
	defer e.stop()

	// The documents: the fan-out workflow (its cron never comes: only the
	// manual tick runs it) and its integration; the small audiences' one.
	docs := `kind: Integration
id: big
auth: {type: bearer}
---
kind: Integration
id: small
auth: {type: bearer}
---
kind: Workflow
id: fanout
integration: big
enabledByDefault: true
trigger: {type: schedule, cron: "0 0 3 1 1 *", timezoneFrom: user.metadata.timezone, overlap: allow}
steps: [{id: work, type: function, function: noop}]
`
	if err := e.apply(ctx, docs); err != nil {
		return err
	}
	if err := e.importUsers(ctx); err != nil {
		return err
	}
	// A reused store: earlier runs' lateness workflows stop ticking, and
	// their triggers and runs (and any tick still unrouted) go, so that
	// this run routes only its own.
	var parked strings.Builder
	for i := range max(*schedWorkflows, 1000) {
		fmt.Fprintf(&parked, "---\nkind: Workflow\nid: tick-%04d\nintegration: small\nenabledByDefault: true\ntrigger: {type: schedule, cron: \"0 0 3 1 1 *\", timezoneFrom: user.metadata.timezone, overlap: allow, catchup: skip}\nsteps: [{id: work, type: function, function: noop}]\n", i)
	}
	if err := e.apply(ctx, parked.String()); err != nil {
		return err
	}
	for _, name := range []string{subjects.StreamTriggers, subjects.StreamRuns} {
		st, err := e.js.Stream(ctx, name)
		if err != nil {
			return err
		}
		if err := st.Purge(ctx); err != nil {
			return fmt.Errorf("purge %s: %w", name, err)
		}
	}
	if e.router, err = startRole(ctx, bin, "router", e.ns.ClientURL(), true); err != nil {
		return err
	}
	if e.scheduler, err = startRole(ctx, bin, "scheduler", e.ns.ClientURL(), *schedLateProf != ""); err != nil {
		return err
	}
	b.printf("schedule: router pid %d, scheduler pid %d (VmRSS %.1f / %.1f MB at start)\n",
		e.router.pid(), e.scheduler.pid(), e.router.rss(), e.scheduler.rss())
	// Runs stay in RUNS: the executor's consumer is paused for the run.
	if err := e.pauseExecutor(ctx); err != nil {
		return err
	}
	if !*schedSkipFan {
		if err := e.fanout(ctx); err != nil {
			return err
		}
	}
	if *schedWorkflows > 0 {
		if err := e.lateness(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (e *schedEnv) start(ctx context.Context, dir string) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	switch *schedNATS {
	case "embedded":
		if e.ns, err = broker.StartEmbedded(broker.EmbeddedOptions{DataDir: dir, ListenAddr: natsAddr}); err != nil {
			return err
		}
	case "process":
		bin, err := os.MkdirTemp("", "sbbench-nats-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(bin)
		if e.ns, err = startNATSProc(ctx, bin, filepath.Join(dir, "nats")); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-sched-nats %q: want process or embedded", *schedNATS)
	}
	keyFile := filepath.Join(dir, "api-key")
	if k, err := os.ReadFile(keyFile); err == nil {
		e.apiKey = strings.TrimSpace(string(k))
	} else {
		if e.apiKey, err = auth.GenerateAPIKey(); err != nil {
			return err
		}
		if err := os.WriteFile(keyFile, []byte(e.apiKey), 0o600); err != nil {
			return err
		}
	}
	// This process serves the API the documents are applied through and
	// owns the directory the users are imported with; it routes nothing.
	e.app, err = app.Start(ctx, app.Options{
		Roles: []string{app.RoleIngress}, Name: "sbbench", Connect: e.ns.Connect, HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Setup: func(ctx context.Context, d *app.Deps) error {
			hash := auth.HashAPIKey(e.apiKey)
			_, rev, err := d.Catalog.UpdateProject(ctx, schedProject, func(p *catalog.Project) error {
				p.Name = "Scheduler benchmark"
				for _, k := range p.APIKeys {
					if k.Hash == hash {
						return nil
					}
				}
				p.APIKeys = append(p.APIKeys, catalog.APIKey{ID: "bench", Hash: hash, Prefix: e.apiKey[:10], CreatedAt: time.Now().UTC()})
				return nil
			})
			if err != nil {
				return err
			}
			return d.Catalog.WaitRevision(ctx, rev)
		},
	})
	if err != nil {
		return fmt.Errorf("in-process API: %w", err)
	}
	e.js, e.base = e.app.JS, "http://"+e.app.HTTPAddr()
	return nil
}

// cpu is the CPU time each process has used: the nats-server, the router
// and the scheduler. An embedded server's is sbbench's own (its measuring
// is a small part of it).
func (e *schedEnv) cpu() [3]time.Duration {
	var c [3]time.Duration
	for i, pid := range []int{e.serverPID(), e.router.pid(), e.scheduler.pid()} {
		c[i], _ = procCPU(pid)
	}
	return c
}

// serverPID is the nats-server's process: its own, or sbbench's when embedded.
func (e *schedEnv) serverPID() int {
	if p, ok := e.ns.(*natsProc); ok {
		return p.pid()
	}
	return os.Getpid()
}

func (e *schedEnv) stop() {
	for _, p := range []*roleProc{e.scheduler, e.router} {
		if p != nil {
			p.stop()
		}
	}
	if e.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.app.Stop(ctx)
		cancel()
	}
	if e.ns != nil {
		e.ns.Shutdown()
	}
}

// call makes an API call with the API key.
func (e *schedEnv) call(ctx context.Context, base, method, path, ctype string, body io.Reader, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return msg, nil
}

func (e *schedEnv) apply(ctx context.Context, docs string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := e.call(cctx, e.base, http.MethodPost, "/v1/projects/"+schedProject+"/apply", "application/yaml", strings.NewReader(docs), http.StatusOK)
	return err
}

// importUsers imports the fan-out's users (zone Europe/Berlin, one
// credential of integration big) and one user per lateness zone
// (integration small), unless the store has them already; users missing
// from it (a line that timed out under load) are imported again.
func (e *schedEnv) importUsers(ctx context.Context) error {
	n := *schedUsers
	last := fmt.Sprintf("u%07d", n-1)
	var todo []int // user indexes; n.. are the small users
	if _, err := e.app.Directory.User(ctx, schedProject, last); err == nil {
		missing, err := e.missingUsers(ctx, n)
		if err != nil {
			return err
		}
		e.b.printf("schedule: the store has the users already (%s found; %d missing)\n", last, len(missing))
		todo = missing
	} else {
		todo = make([]int, n+len(lateZones))
		for i := range todo {
			todo[i] = i
		}
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == 5 {
			return fmt.Errorf("import: %d users still not stored after %d attempts", len(todo), attempt)
		}
		failed, err := e.importLines(ctx, n, todo)
		if err != nil {
			return err
		}
		todo = failed
	}
	return nil
}

// importLines imports the users of indexes todo and returns those whose
// line failed as unavailable (a write that timed out), to try again.
func (e *schedEnv) importLines(ctx context.Context, n int, todo []int) ([]int, error) {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<16)
		for _, i := range todo {
			if i < n {
				fmt.Fprintf(w, `{"id":"u%07d","metadata":{"timezone":"Europe/Berlin"},"credentials":[{"id":"c","integration":"big","providerAccountId":"a%07d","secret":{"accessToken":"t%07d"}}]}`+"\n", i, i, i)
			} else {
				z := i - n
				fmt.Fprintf(w, `{"id":"small-%02d","metadata":{"timezone":%q},"credentials":[{"id":"c","integration":"small","providerAccountId":"s%02d","secret":{"accessToken":"s"}}]}`+"\n", z, lateZones[z], z)
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	start := time.Now()
	var lines atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				l := lines.Load()
				e.b.printf("  import: %d lines after %s (%.0f users/s), load average %s\n", l, time.Since(start).Round(time.Second), float64(l)/time.Since(start).Seconds(), loadavg())
			}
		}
	}()
	res, err := e.app.Directory.Import(ctx, schedProject, pr, directory.ImportOptions{
		IntegrationExists: func(id string) bool { return id == "big" || id == "small" },
		Progress:          func(p directory.ImportProgress) { lines.Store(int64(p.Lines)) },
		MaxErrors:         len(todo),
	})
	close(done)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	var failed []int
	for _, le := range res.Errors {
		if le.Code != "unavailable" {
			return nil, fmt.Errorf("import: line %d: %s %s", le.Line, le.Code, le.Message)
		}
		failed = append(failed, todo[le.Line-1])
	}
	took := time.Since(start)
	e.b.printf("schedule: imported %d users (%d credentials) in %s: %.0f users/s, %d lines unavailable (tried again), load average %s\n",
		res.Users, res.Credentials, took.Round(time.Second), float64(res.Users)/took.Seconds(), len(failed), loadavg())
	if len(todo) > 1000 {
		e.b.summary = append(e.b.summary, fmt.Sprintf("%-28s %d users in %s (%.0f users/s, Import over the in-process connection)",
			"schedule import", res.Users, took.Round(time.Second), float64(res.Users)/took.Seconds()))
	}
	return failed, nil
}

// missingUsers lists the fan-out users (indexes below n) without a record,
// from the keys of the directory bucket (headers only, last per subject).
func (e *schedEnv) missingUsers(ctx context.Context, n int) ([]int, error) {
	have := make([]bool, n)
	const prefix = "$KV.sb_directory.u." + schedProject + ".u"
	cons, err := e.js.OrderedConsumer(ctx, "KV_sb_directory", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$KV.sb_directory.u." + schedProject + ".>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, HeadersOnly: true,
	})
	if err != nil {
		return nil, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	total := info.NumPending
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	for seen := uint64(0); seen < total; seen++ {
		m, err := it.Next()
		if err != nil {
			return nil, err
		}
		subj := m.Subject()
		if op := m.Headers().Get("KV-Operation"); op != "" {
			continue // deleted or purged
		}
		if strings.HasPrefix(subj, prefix) {
			var i int
			if _, err := fmt.Sscanf(subj[len(prefix):], "%07d", &i); err == nil && i < n {
				have[i] = true
			}
		}
	}
	var missing []int
	for i, ok := range have {
		if !ok {
			missing = append(missing, i)
		}
	}
	return missing, nil
}

// pauseExecutor pauses the executor's durable consumer for an hour, once
// the router has created it.
func (e *schedEnv) pauseExecutor(ctx context.Context) error {
	durable := router.ExecutorDurable(schedProject)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.js.PauseConsumer(ctx, subjects.StreamRuns, durable, time.Now().Add(time.Hour))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pause %s: %w", durable, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *schedEnv) streamState(ctx context.Context, name string) (jetstream.StreamState, error) {
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	return info.State, nil
}

// decisionPages counts the decision records of the project in RUN_EVENTS.
func (e *schedEnv) decisionPages(ctx context.Context) (uint64, error) {
	s, err := e.js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return 0, err
	}
	subj := subjects.Decisions(schedProject)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subj], nil
}

// fanout triggers one tick of the fan-out workflow and waits until RUNS
// holds one new message per user.
func (e *schedEnv) fanout(ctx context.Context) error {
	b := e.b
	n := uint64(*schedUsers)
	before, err := e.streamState(ctx, subjects.StreamRuns)
	if err != nil {
		return err
	}
	pagesBefore, err := e.decisionPages(ctx)
	if err != nil {
		return err
	}
	trigBefore, err := e.streamState(ctx, subjects.StreamTriggers)
	if err != nil {
		return err
	}
	var prof *profileFetch
	if *schedProfile != "" {
		prof = e.router.profile(*schedProfile, 60*time.Second)
	}
	b.printf("schedule: fan-out of one tick to %d users, load average %s\n", n, loadavg())
	cpu0 := e.cpu()
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	body, err := e.call(cctx, "http://"+e.scheduler.httpAddr, http.MethodPost, "/v1/projects/"+schedProject+"/workflows/fanout/schedule/trigger", "application/json", nil, http.StatusAccepted)
	cancel()
	if err != nil {
		if l := strings.TrimSpace(e.scheduler.stderr.String()); l != "" {
			lines := strings.Split(l, "\n")
			b.printf("  scheduler log (%d lines, last 5):\n", len(lines))
			for _, x := range lines[max(0, len(lines)-5):] {
				b.printf("    %s\n", x[:min(len(x), 400)])
			}
		}
		return err
	}
	answered := time.Since(start)
	b.printf("  trigger answered after %s: %s\n", answered.Round(time.Millisecond), strings.TrimSpace(string(body)))

	var (
		firstStored time.Time
		lastCount   uint64
		lastChange  = time.Now()
		routerHWM   float64
		schedHWM    float64
		got         uint64
		firstRun    time.Duration
	)
	next := time.Now().Add(5 * time.Second)
	for {
		st, err := e.streamState(ctx, subjects.StreamRuns)
		if err != nil {
			return err
		}
		got = st.Msgs - before.Msgs
		now := time.Now()
		routerHWM, schedHWM = max(routerHWM, e.router.rss()), max(schedHWM, e.scheduler.rss())
		if got != lastCount {
			if lastCount == 0 {
				firstRun = now.Sub(start)
			}
			lastCount, lastChange = got, now
		}
		if firstStored.IsZero() {
			if t, err := e.firstTickStored(ctx, trigBefore.LastSeq); err == nil {
				firstStored = t
			}
		}
		if now.After(next) {
			b.printf("  %6s: %8d runs in RUNS, router VmRSS %.0f MB, load average %s\n", now.Sub(start).Round(time.Second), got, e.router.rss(), loadavg())
			next = now.Add(5 * time.Second)
		}
		if got >= n {
			break
		}
		if (got > 0 && now.Sub(lastChange) > 90*time.Second) || now.Sub(start) > *schedWait {
			b.printf("  giving up: %d of %d runs after %s (none new for %s)\n", got, n, now.Sub(start).Round(time.Second), now.Sub(lastChange).Round(time.Second))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	if prof != nil {
		prof.wait(b)
	}
	pages, _ := e.decisionPages(ctx)
	pagesNew := pages - pagesBefore
	// Trigger redeliveries show as more than one delivery of a tick event.
	var redelivered string
	if ci, err := e.js.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable(schedProject)); err == nil {
		if info, err := ci.Info(ctx); err == nil {
			redelivered = fmt.Sprintf("router consumer: %d ack pending, %d redelivered, %d pending", info.NumAckPending, info.NumRedelivered, info.NumPending)
		}
	}
	// What the router logged (warnings and errors), last lines first cut.
	if l := strings.TrimSpace(e.router.stderr.String()); l != "" {
		lines := strings.Split(l, "\n")
		b.printf("  router log (%d lines, last 5):\n", len(lines))
		for _, x := range lines[max(0, len(lines)-5):] {
			b.printf("    %s\n", x[:min(len(x), 400)])
		}
	}
	cpu1, cpuWall := e.cpu(), time.Since(start).Seconds()
	cores := func(i int) float64 { return (cpu1[i] - cpu0[i]).Seconds() / cpuWall }
	_, rHWM := e.router.mem()
	_, sHWM := e.scheduler.mem()
	fromStored := ""
	if !firstStored.IsZero() {
		fromStored = fmt.Sprintf(", %s from the first tick event stored", time.Since(firstStored).Round(100*time.Millisecond))
	}
	verdict := "meets"
	if got < n || took > 60*time.Second {
		verdict = "BELOW"
	}
	b.printf("  %d runs in RUNS %s after the trigger call%s (the first after %s); %d decision pages; %s\n", got, took.Round(100*time.Millisecond), fromStored, firstRun.Round(100*time.Millisecond), pagesNew, redelivered)
	b.printf("  router VmRSS %.0f MB (VmHWM %.0f MB), scheduler VmRSS %.0f MB (VmHWM %.0f MB); load average %s\n",
		e.router.rss(), rHWM, e.scheduler.rss(), sHWM, loadavg())
	b.summary = append(b.summary,
		fmt.Sprintf("%-28s %d of %d runs in RUNS after %s (target ≤ 60s: %s)%s, the first after %s, %d decision pages", "schedule fan-out", got, n, took.Round(100*time.Millisecond), verdict, fromStored, firstRun.Round(100*time.Millisecond), pagesNew),
		fmt.Sprintf("%-28s router VmHWM %.0f MB, scheduler VmHWM %.0f MB (separate processes), nats-server (%s) VmRSS %.0f MB; load average %s", "schedule fan-out RSS", rHWM, sHWM,
			*schedNATS, func() float64 { r, _, _ := procMem(e.serverPID()); return r }(), loadavg()),
		fmt.Sprintf("%-28s nats-server %.2f, router %.2f, scheduler %.2f (from the trigger to the last run)", "schedule fan-out CPU cores", cores(0), cores(1), cores(2)),
	)
	return nil
}

// firstTickStored is when TRIGGERS stored its first message after seq.
func (e *schedEnv) firstTickStored(ctx context.Context, seq uint64) (time.Time, error) {
	s, err := e.js.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		return time.Time{}, err
	}
	m, err := s.GetMsg(ctx, seq+1)
	if err != nil {
		return time.Time{}, err
	}
	return m.Time, nil
}

// lateness applies the small-audience workflows and records, for each tick
// event TRIGGERS stores, its stored time − its nominal time (the ULID time
// of its event id, which is the tick's nominal time).
func (e *schedEnv) lateness(ctx context.Context) error {
	b := e.b
	nw, nz := *schedWorkflows, *schedZones
	var docs strings.Builder
	for i := range nw {
		fmt.Fprintf(&docs, "---\nkind: Workflow\nid: tick-%04d\nintegration: small\nenabledByDefault: true\ntrigger: {type: schedule, every: %s, timezoneFrom: user.metadata.timezone, overlap: allow, catchup: skip}\nsteps: [{id: work, type: function, function: noop}]\n", i, *schedEvery)
	}
	// Only nz zones in use: the other lateness users leave their zone.
	for z := range lateZones {
		zone := lateZones[z]
		if z >= nz {
			zone = lateZones[0]
		}
		if _, _, err := e.app.Directory.UpdateUser(ctx, schedProject, fmt.Sprintf("small-%02d", z), func(u *directory.User) error {
			u.Metadata = map[string]any{"timezone": zone}
			return nil
		}); err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("zone of small-%02d: %w", z, err)
		}
	}
	// Listen before applying, so the first ticks are seen.
	var (
		mu   sync.Mutex
		late []time.Duration
		from time.Time
	)
	cons, err := e.js.OrderedConsumer(ctx, subjects.StreamTriggers, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sb.trigger." + schedProject + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy, HeadersOnly: true,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		nominal, ok := ulidTime(m.Headers().Get(nats.MsgIdHdr))
		if !ok {
			return
		}
		mu.Lock()
		if !from.IsZero() && !nominal.Before(from) && nominal.Before(from.Add(*schedFor)) {
			late = append(late, md.Timestamp.Sub(nominal))
		}
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	start := time.Now()
	if err := e.apply(ctx, docs.String()); err != nil {
		return err
	}
	b.printf("schedule: lateness: applied %d workflows × %d zones every %s in %s\n", nw, nz, *schedEvery, time.Since(start).Round(time.Millisecond))
	// Jobs follow the catalog within a second and zones within 5 s; the
	// measurement starts at the first whole interval 10 s later.
	mu.Lock()
	from = time.Now().Add(10 * time.Second).Truncate(*schedEvery).Add(*schedEvery)
	until := from.Add(*schedFor)
	mu.Unlock()
	var prof *profileFetch
	if *schedLateProf != "" {
		prof = e.scheduler.profile(*schedLateProf, min(*schedFor, 60*time.Second))
	}
	var rHWM, sHWM float64
	cpuNow := e.cpu
	for time.Now().Before(from) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	cpu0, cpuFrom := cpuNow(), time.Now()
	var srvProf *profileFetch
	if p, ok := e.ns.(*natsProc); ok && *schedSrvProf != "" {
		srvProf = fetchProfile(p.profAddr, *schedSrvProf, fmt.Sprintf("profile?seconds=%d", int(schedFor.Seconds())), "nats-server CPU profile")
	} else if *schedSrvProf != "" {
		f, err := os.Create(*schedSrvProf)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	for time.Now().Before(until.Add(3 * time.Second)) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		rHWM, sHWM = max(rHWM, e.router.rss()), max(sHWM, e.scheduler.rss())
	}
	cpu1, cpuWall := cpuNow(), time.Since(cpuFrom).Seconds()
	if srvProf != nil {
		srvProf.wait(b)
	} else if *schedSrvProf != "" {
		pprof.StopCPUProfile()
		b.printf("  nats-server CPU profile in %s\n", *schedSrvProf)
	}
	if prof != nil {
		prof.wait(b)
		e.scheduler.heapProfile(*schedLateProf + ".heap").wait(b)
	}
	mu.Lock()
	var ls []time.Duration
	for _, l := range late {
		ls = append(ls, l)
	}
	mu.Unlock()
	// Only the ticks of the window [from, until).
	ticks := int(*schedFor / *schedEvery)
	want := ticks * nw * nz // events: one a tick of a small zone
	sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
	pct := func(p float64) time.Duration {
		if len(ls) == 0 {
			return 0
		}
		return ls[min(len(ls)-1, int(p*float64(len(ls))))]
	}
	var backlog string
	if ci, err := e.js.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable(schedProject)); err == nil {
		if info, err := ci.Info(ctx); err == nil {
			backlog = fmt.Sprintf("router consumer behind by %d events", info.NumPending+uint64(info.NumAckPending))
		}
	}
	verdict := "meets"
	switch {
	case len(ls) < want*99/100:
		// Ticks that never came are not on time: a scheduler that died
		// stores none, and its empty lateness must not read as a pass.
		verdict = fmt.Sprintf("FAILED: %d of %d tick events stored", len(ls), want)
	case pct(0.99) >= time.Second:
		verdict = "BELOW"
	}
	b.printf("  %d tick events stored from %s (≈ %d expected over %s: %d ticks × %d workflows × %d zones, one event each)\n",
		len(ls), from.Format(time.TimeOnly), want, *schedFor, ticks, nw, nz)
	b.printf("  lateness p50 %s, p99 %s, max %s; %s; router VmHWM %.0f MB, scheduler VmHWM %.0f MB (this phase's max VmRSS %.0f / %.0f MB); load average %s\n",
		pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond), backlog,
		func() float64 { _, h := e.router.mem(); return h }(), func() float64 { _, h := e.scheduler.mem(); return h }(), rHWM, sHWM, loadavg())
	cores := func(i int) float64 { return (cpu1[i] - cpu0[i]).Seconds() / cpuWall }
	b.printf("  CPU over the window, in cores: nats-server (%s) %.2f, router %.2f, scheduler %.2f; nats-server VmRSS %.0f MB\n",
		*schedNATS, cores(0), cores(1), cores(2), func() float64 { r, _, _ := procMem(e.serverPID()); return r }())
	b.summary = append(b.summary,
		fmt.Sprintf("%-28s p50 %s, p99 %s, max %s over %d tick events of %d workflows × %d zones every %s (target p99 < 1s: %s); %s", "schedule tick lateness",
			pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond), len(ls), nw, nz, *schedEvery, verdict, backlog),
		fmt.Sprintf("%-28s router max VmRSS %.0f MB, scheduler max VmRSS %.0f MB during it; load average %s", "schedule lateness RSS", rHWM, sHWM, loadavg()),
	)
	return nil
}

// ulidTime is the time of a ULID (its first 10 Crockford base32 digits).
func ulidTime(id string) (time.Time, bool) {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	if len(id) != 26 {
		return time.Time{}, false
	}
	var ms uint64
	for i := range 10 {
		d := strings.IndexByte(alphabet, id[i])
		if d < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(d)
	}
	return time.UnixMilli(int64(ms)), true
}

// roleProc is a `switchboard serve --role` process.
type roleProc struct {
	cmd       *exec.Cmd
	stderr    *lockedBuffer
	exited    chan error
	httpAddr  string
	pprofAddr string
	role      string
}

func startRole(ctx context.Context, bin, role, natsURL string, pprof bool) (*roleProc, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &roleProc{stderr: &lockedBuffer{}, exited: make(chan error, 1), httpAddr: httpAddr, role: role}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "SWITCHBOARD_NATS_URL="+natsURL, "SWITCHBOARD_HTTP_ADDR="+httpAddr, "SWITCHBOARD_ADMIN_ADDR="+adminAddr, "SWITCHBOARD_LOG_LEVEL=warn")
	if pprof {
		if p.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		env = append(env, "SWITCHBOARD_PPROF_ADDR="+p.pprofAddr)
	}
	p.cmd = exec.Command(bin, "serve", "--role", role)
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, io.Discard, p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- p.cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	for {
		if resp, err := client.Get("http://" + httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.exited:
			return nil, fmt.Errorf("%s exited: %v\n%s", role, err, p.stderr.String())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			p.stop()
			return nil, fmt.Errorf("%s not ready after a minute\n%s", role, p.stderr.String())
		}
	}
}

func (p *roleProc) pid() int { return p.cmd.Process.Pid }

func (p *roleProc) mem() (rss, hwm float64) {
	rss, hwm, _ = procMem(p.pid())
	return rss, hwm
}

func (p *roleProc) rss() float64 { r, _ := p.mem(); return r }

func (p *roleProc) stop() { interruptAndWait(p.cmd, p.exited, 20*time.Second) }

type profileFetch struct {
	done chan error
	file string
	what string
}

// profile fetches a CPU profile of the process (its pprof listener) over
// the next d into file.
func (p *roleProc) profile(file string, d time.Duration) *profileFetch {
	return p.fetchProfile(file, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), p.role+" CPU profile")
}

// heapProfile fetches a heap profile of the process now into file.
func (p *roleProc) heapProfile(file string) *profileFetch {
	return p.fetchProfile(file, "heap", p.role+" heap profile")
}

func (p *roleProc) fetchProfile(file, path, what string) *profileFetch {
	return fetchProfile(p.pprofAddr, file, path, what)
}

// fetchProfile fetches /debug/pprof/<path> from the pprof listener at addr
// into file.
func fetchProfile(addr, file, path, what string) *profileFetch {
	f := &profileFetch{done: make(chan error, 1), file: file, what: what}
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", addr, path))
		if err != nil {
			f.done <- err
			return
		}
		defer resp.Body.Close()
		out, err := os.Create(file)
		if err != nil {
			f.done <- err
			return
		}
		_, err = io.Copy(out, resp.Body)
		f.done <- errors.Join(err, out.Close())
	}()
	return f
}

func (f *profileFetch) wait(b *bench) {
	if err := <-f.done; err != nil {
		b.printf("  %s: %v\n", f.what, err)
		return
	}
	b.printf("  %s in %s (go tool pprof -top %s)\n", f.what, f.file, f.file)
}

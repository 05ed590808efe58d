//go:build chaos

package chaos

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// suite is what every scenario shares: the binaries, the load settings and
// where the figures and process logs go.
type suite struct {
	bins binaries
	out  string
	load time.Duration
	rate int
}

// scenario is one crash scenario. run sets up its processes, drives the
// load and its kills, drains and fills in f.
type scenario struct {
	name, what string
	// callers is how many concurrent callers share the load's rate: the
	// retrying callers of nats-kill are more, so that more calls are in
	// flight when the server dies.
	callers int
	run     func(t *testing.T, s *suite, f *figures)
}

// scenarios lists the suite's scenarios in the order they run.
func scenarios() []scenario {
	return []scenario{
		{"dev-kill", "kill -9 `switchboard dev` (embedded NATS, every role) twice mid-load; restart it each time on the same data dir and ports", 3, devKill},
		{"router-kill", "split mode (nats-server; ingress+history+connection-lifecycle; two routers): kill -9 one router mid-load, restart it later on the same ports", 3, routerKill},
		{"nats-kill", "kill -9 nats-server twice mid-load under `switchboard serve --role all` (an outage until every caller saw a call fail, then a bounce), restarting it on the same store dir and port; callers retry every event with its Idempotency-Key until 2xx", 8, natsKill},
	}
}

// drainTimeout bounds the wait for the system to go quiet after the load:
// a delivery unsettled when its process died comes back only after the
// consumers' AckWait (30s), so the bound is above that.
const drainTimeout = 60 * time.Second

// TestChaos runs the scenarios one after the other (on a shared 2-core
// machine, in parallel they would mostly measure each other), writes each
// scenario's figures as soon as it is done and fails a scenario whose
// figures show a lost, duplicated or re-executed event.
func TestChaos(t *testing.T) {
	start := time.Now()
	s := &suite{out: os.Getenv("SWITCHBOARD_CHAOS_OUT"), load: 15 * time.Second, rate: 30}
	if v := os.Getenv("SWITCHBOARD_CHAOS_LOAD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 3*time.Second {
			t.Fatalf("SWITCHBOARD_CHAOS_LOAD=%q: want a duration of at least 3s", v)
		}
		s.load = d
	}
	if v := os.Getenv("SWITCHBOARD_CHAOS_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 8 {
			t.Fatalf("SWITCHBOARD_CHAOS_RATE=%q: want events per second, at least 8 (one per caller)", v)
		}
		s.rate = n
	}
	if s.out == "" {
		// Not t.TempDir: the figures and logs are the point, they outlive the test.
		dir, err := os.MkdirTemp("", "switchboard-chaos-")
		if err != nil {
			t.Fatal(err)
		}
		s.out = dir
	}
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		t.Fatal(err)
	}
	s.bins = buildBinaries(t, t.TempDir())

	var all []figures
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			begin := time.Now()
			f := figures{Scenario: sc.name, What: sc.what, callers: sc.callers,
				Load: fmt.Sprintf("%d events/s from %d callers for %s", s.rate, sc.callers, s.load)}
			sc.run(t, s, &f)
			f.Duration = time.Since(begin).Round(100 * time.Millisecond).String()
			all = append(all, f)
			writeJSON(t, filepath.Join(s.out, sc.name, "figures.json"), f)
			t.Logf("figures of %s:\n%s", sc.name, figuresText(f))
			for _, why := range f.failures() {
				t.Errorf("%s: %s", sc.name, why)
			}
		})
	}
	writeJSON(t, filepath.Join(s.out, "figures.json"), all)
	md := markdown(all, time.Since(start))
	if err := os.WriteFile(filepath.Join(s.out, "figures.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos suite done in %s; figures and process logs in %s\n%s", time.Since(start).Round(time.Second), s.out, md)
}

// ---- the scenarios -----------------------------------------------------------

// devKill: `switchboard dev` — embedded NATS and every role in one process
// — killed twice mid-load, each time restarted on the same data dir, HTTP
// and NATS ports. Every event is sent once: one killed mid-request is
// simply not accepted.
func devKill(t *testing.T, s *suite, f *figures) {
	logDir := scenarioDir(t, s, "dev-kill")
	dataDir := t.TempDir()
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	dev := newProc(t, "switchboard-dev", s.bins.switchboard,
		[]string{"dev", "--data-dir", dataDir, "--http-addr", httpAddr, "--nats-addr", natsAddr, "--examples="},
		[]string{adminAddrEnv(t)}, logDir, httpReady(httpAddr))
	dev.start(t)
	dev.waitReady(t, 60*time.Second)
	raw, err := os.ReadFile(filepath.Join(dataDir, "dev-api-key"))
	if err != nil {
		t.Fatalf("the dev API key: %v", err)
	}
	key := strings.TrimSpace(string(raw))
	a := newAPI(httpAddr)
	l := newListener(t)
	setupTenant(t, a, key, l.srv.URL)

	res := newLoadResult()
	warmUp(t, a, key, f.Scenario, res)
	begin := time.Now()
	wait := startLoad(a, key, s.spec(f, false), res)
	for _, at := range []float64{0.25, 0.6} {
		sleepUntil(begin, s.load, at)
		dev.kill(t)
		dev.start(t)
		dev.waitReady(t, 60*time.Second)
	}
	wait()
	f.Kills = dev.kills
	finish(t, f, a, key, "nats://"+natsAddr, res, l, false)
}

// routerKill: split mode, one process per part against a nats-server
// process, with two routers sharing the consumers. One router is killed at
// a quarter of the load and restarted at 60%: meanwhile the other takes
// every new trigger and run, and what the dead one held comes back after
// AckWait to whichever pulls it.
func routerKill(t *testing.T, s *suite, f *figures) {
	logDir := scenarioDir(t, s, "router-kill")
	fr := startFront(t, s, logDir, "front", "ingress,history,connection-lifecycle")
	a, key, l, common, natsURL := fr.api, fr.key, fr.listener, fr.common, fr.natsURL
	setupTenant(t, a, key, l.srv.URL)

	// The routers start after the documents are applied, so their first
	// catalog already has the workflow.
	var routers []*proc
	for _, name := range []string{"router-a", "router-b"} {
		p, _ := newServe(t, s, name, "router", common, logDir)
		p.start(t)
		routers = append(routers, p)
	}
	for _, p := range routers {
		p.waitReady(t, 60*time.Second)
	}

	res := newLoadResult()
	warmUp(t, a, key, f.Scenario, res)
	begin := time.Now()
	wait := startLoad(a, key, s.spec(f, false), res)
	sleepUntil(begin, s.load, 0.25)
	routers[0].kill(t)
	sleepUntil(begin, s.load, 0.6)
	routers[0].start(t)
	routers[0].waitReady(t, 60*time.Second)
	wait()
	f.Kills = routers[0].kills
	finish(t, f, a, key, natsURL, res, l, false)
}

// natsKill: nats-server killed twice under one `switchboard serve --role
// all`, each time restarted on the same store dir and port. The callers
// send every event with Idempotency-Key = its payload id and retry it until
// a 2xx: each key must run exactly once. The first outage (at a quarter of
// the load) lasts at least minOutage and until every caller has had a call
// fail since the kill, so the calls in flight at the kill were answered (or
// timed out) while the server was down and what the switchboard process
// buffered meanwhile is flushed on the reconnect, beside the callers'
// retries. The second (at
// 60%) is a bounce: restarted as soon as the process is gone, so calls in
// flight lose their acks and their retries meet events that may be stored.
func natsKill(t *testing.T, s *suite, f *figures) {
	logDir := scenarioDir(t, s, "nats-kill")
	fr := startFront(t, s, logDir, "switchboard", "all")
	a, key, l, ns, natsURL := fr.api, fr.key, fr.listener, fr.ns, fr.natsURL
	setupTenant(t, a, key, l.srv.URL)

	res := newLoadResult()
	warmUp(t, a, key, f.Scenario, res)
	begin := time.Now()
	wait := startLoad(a, key, s.spec(f, true), res)
	for i, at := range []float64{0.25, 0.6} {
		sleepUntil(begin, s.load, at)
		ns.kill(t)
		killed := time.Now()
		if i == 0 && !pollUntil(20*time.Second, func() (bool, string) {
			return time.Since(killed) >= minOutage && res.workersFailedSince(killed) == f.callers, ""
		}) {
			t.Logf("not every caller had a failed call within 20s of the kill (%d of %d)", res.workersFailedSince(killed), f.callers)
		}
		ns.start(t)
		t.Logf("nats-server down for %s", time.Since(killed).Round(time.Millisecond))
		ns.waitReady(t, 20*time.Second)
		fr.proc.waitReady(t, 60*time.Second)
	}
	wait()
	f.Kills = ns.kills
	finish(t, f, a, key, natsURL, res, l, true)
}

// minOutage is the shortest first outage of natsKill: long enough for the
// switchboard process's reconnect attempts to fail and its publishes to
// pile up in its client's reconnect buffer, even when every caller is
// answered 503 at once.
const minOutage = 3 * time.Second

// ---- shared steps ------------------------------------------------------------

func (s *suite) spec(f *figures, idempotent bool) loadSpec {
	return loadSpec{scenario: f.Scenario, rate: s.rate, workers: f.callers, duration: s.load,
		idempotent: idempotent, retryFor: 30 * time.Second}
}

// sleepUntil paces the fault injection: it returns at frac of the load.
func sleepUntil(begin time.Time, load time.Duration, frac float64) {
	time.Sleep(time.Until(begin.Add(time.Duration(float64(load) * frac))))
}

func scenarioDir(t *testing.T, s *suite, name string) string {
	dir := filepath.Join(s.out, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("process logs in %s", dir)
	return dir
}

// serveEnv is the environment every `switchboard serve` process of a
// scenario shares: its NATS, one operator token, one secret key (every
// process reading credentials needs the same), loopback egress for the
// listener, and no drain delay (nothing balances traffic here).
func serveEnv(t *testing.T, natsURL string) (admin string, env []string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	admin = "adm_chaos_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	return admin, []string{
		"SWITCHBOARD_NATS_URL=" + natsURL,
		"SWITCHBOARD_ADMIN_TOKEN=" + admin,
		"SWITCHBOARD_SECRET_KEY=" + base64.StdEncoding.EncodeToString(b),
		"SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true",
		"SWITCHBOARD_DRAIN_DELAY=0s",
		"SWITCHBOARD_SHUTDOWN_TIMEOUT=10s",
	}
}

// front is what a scenario starts from: a stock nats-server process and a
// Switchboard process with the given roles, ready, with the project made.
type front struct {
	ns       *proc // the nats-server
	natsURL  string
	common   []string
	proc     *proc // the front process
	api      api
	key      string
	listener *listener
}

func startFront(t *testing.T, s *suite, logDir, name, roles string) *front {
	t.Helper()
	natsAddr := freeAddr(t)
	f := &front{natsURL: "nats://" + natsAddr}
	f.ns = newNATSServer(t, s.bins.natsServer, natsAddr, t.TempDir(), logDir)
	f.ns.start(t)
	f.ns.waitReady(t, 20*time.Second)
	admin, common := serveEnv(t, f.natsURL)
	f.common = common
	var addr string
	f.proc, addr = newServe(t, s, name, roles, common, logDir)
	f.proc.start(t)
	f.proc.waitReady(t, 60*time.Second)
	f.api = newAPI(addr)
	f.listener = newListener(t)
	f.key = createProject(t, f.api, admin)
	return f
}

// adminAddrEnv gives a process its own admin listener (/metrics): the
// default, 127.0.0.1:9090, is one port for every process on the machine.
func adminAddrEnv(t *testing.T) string { return "SWITCHBOARD_ADMIN_ADDR=" + freeAddr(t) }

// newServe is a `switchboard serve --role roles` process with the common
// environment and its own HTTP port, data dir and admin port, which a
// restart keeps; addr is its HTTP address.
func newServe(t *testing.T, s *suite, name, roles string, common []string, logDir string) (p *proc, addr string) {
	addr = freeAddr(t)
	env := append(slices.Clip(common), "SWITCHBOARD_HTTP_ADDR="+addr, "SWITCHBOARD_DATA_DIR="+t.TempDir(), adminAddrEnv(t))
	return newProc(t, name, s.bins.switchboard, []string{"serve", "--role", roles}, env, logDir, httpReady(addr)), addr
}

// createProject creates project dev with the operator token and returns a
// new API key for it.
func createProject(t *testing.T, a api, admin string) string {
	t.Helper()
	a.must(t, http.StatusOK, "PUT", "/v1/projects/"+project, admin, map[string]any{"name": "Chaos"}, nil)
	var created struct{ Key string }
	a.must(t, http.StatusCreated, "POST", "/v1/projects/"+project+"/api-keys", admin, nil, &created)
	return created.Key
}

// finish drains the system, collects what it did and computes the figures.
func finish(t *testing.T, f *figures, a api, key, natsURL string, res *loadResult, l *listener, idempotent bool) {
	t.Helper()
	nc, js := connectJS(t, natsURL)
	defer nc.Close()
	start := time.Now()
	f.Drained, f.DrainNote = drain(a, key, js, res, l, drainTimeout)
	t.Logf("drained=%v after %s %s", f.Drained, time.Since(start).Round(100*time.Millisecond), f.DrainNote)
	compute(f, res, collect(t, a, key, js, l), idempotent)
	// What the history says about a lost event: a 404 is an event never
	// stored (or never decided), a decision without a run one not routed.
	for i, ev := range f.lostEvents {
		if i == maxEvidence {
			break
		}
		st, raw, err := a.call("GET", "/v1/projects/"+project+"/events/"+ev, key, nil)
		if len(raw) > 300 {
			raw = append(raw[:300], "…"...)
		}
		f.evidence("lostDecisions", "GET /events/%s: %d %s %v", ev, st, raw, err)
	}
}

// ---- output --------------------------------------------------------------------

func writeJSON(t *testing.T, path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func figuresText(f figures) string {
	b, _ := json.MarshalIndent(f, "", "  ")
	return string(b)
}

// markdown is the summary table docs/reliability.md is written from.
func markdown(all []figures, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | events sent | accepted (2xx) | attempts | kills | lost | duplicate | re-executed (runs) | keys not exactly once | history mismatch | retried-unfinished | redelivered runs | ran unacknowledged | drained | duration |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range all {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d (%d) | %d | %d | %d | %d | %d | %v | %s |\n",
			f.Scenario, f.EventsSent, f.Accepted, f.Attempts, f.Kills, f.Lost, f.Duplicate, f.ReExecuted, f.ReExecutedRuns,
			f.KeysNotExactlyOnce, f.HistoryMismatch, f.RetriedUnfinished, f.RedeliveredRuns, f.RanUnacknowledged, f.Drained, f.Duration)
	}
	fmt.Fprintf(&b, "\ntotal %s\n", took.Round(time.Second))
	return b.String()
}

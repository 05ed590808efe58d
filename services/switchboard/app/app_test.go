package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/router"
)

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "all", want: RoleNames()},
		{in: "ingress", want: []string{RoleIngress}},
		// Start order, whatever order they were given in; duplicates once.
		{in: "ingress,history, router,ingress", want: []string{RoleHistory, RoleRouter, RoleIngress}},
		{in: "connection-lifecycle,all", want: RoleNames()},
		{in: "", err: "no role"},
		{in: " , ", err: "no role"},
		{in: "ingress,webhooks", err: `unknown role "webhooks"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRoles(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRoles(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseRoles(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	if want := []string{RoleHistory, RoleRouter, RoleScheduler, RoleLifecycle, RoleIngress, RoleWebhookReceiver}; !slices.Equal(RoleNames(), want) {
		t.Fatalf("start order %v, want %v", RoleNames(), want)
	}
}

// ---- fixtures -----------------------------------------------------------------

// client never keeps a connection open, so a shutdown never waits on one
// of the test's idle connections.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// status is the HTTP status of method path, or 0 when nothing answers.
func status(t *testing.T, method, addr, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// options are Options for a process on a fresh embedded NATS (connected in
// process), a fresh data dir and a free port.
func options(t *testing.T, roles ...string) Options {
	t.Helper()
	srv := brokertest.Start(t)
	return Options{
		Roles: roles, Connect: srv.Embedded.Connect, HTTPAddr: freeAddr(t), DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func start(t *testing.T, opts Options) *App {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return a
}

type testWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// recorder logs what the root does to the roles, through the interface.
type recorder struct {
	mu     sync.Mutex
	events []string
	// failStart makes that role's Start fail (before the role's own).
	failStart string
	// onStop is logged with every Stop, to capture the state then.
	onStop func() string
}

func (r *recorder) log(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) wrap(role service.Role) service.Role { return &recorded{Role: role, rec: r} }

type recorded struct {
	service.Role
	rec *recorder
}

func (w *recorded) Start(ctx context.Context) error {
	w.rec.log("start " + w.Name())
	if w.Name() == w.rec.failStart {
		return errors.New("refusing to start")
	}
	return w.Role.Start(ctx)
}

func (w *recorded) Register(e *echo.Echo) {
	w.rec.log("register " + w.Name())
	w.Role.Register(e)
}

func (w *recorded) Stop(ctx context.Context) error {
	note := ""
	if w.rec.onStop != nil {
		note = " " + w.rec.onStop()
	}
	w.rec.log("stop " + w.Name() + note)
	return w.Role.Stop(ctx)
}

// ---- tests ----------------------------------------------------------------------

// TestStartChosenRoles starts each set of roles on its own NATS and checks
// that the process serves exactly those roles' parts, next to one
// /healthz and /readyz, with /metrics on the admin listener only.
func TestStartChosenRoles(t *testing.T) {
	// A route of each HTTP role: without a token it is 401 where the role
	// runs, and 404 (no such route) where it does not.
	probes := map[string][2]string{
		RoleIngress:   {http.MethodPost, "/v1/projects/p/events"},
		RoleLifecycle: {http.MethodPut, "/v1/projects/p/users/u"},
		RoleHistory:   {http.MethodGet, "/v1/projects/p/runs"},
	}
	for _, roles := range [][]string{
		{RoleIngress},
		{RoleRouter},
		{RoleHistory},
		{RoleLifecycle},
		{RoleIngress, RoleHistory},
		RoleNames(),
	} {
		t.Run(strings.Join(roles, ","), func(t *testing.T) {
			opts := options(t, roles...)
			opts.AdminAddr = "127.0.0.1:0"
			a := start(t, opts)
			addr := a.HTTPAddr()
			for _, path := range []string{"/healthz", "/readyz"} {
				if got := status(t, http.MethodGet, addr, path); got != http.StatusOK {
					t.Errorf("%s: %d", path, got)
				}
			}
			if got := status(t, http.MethodGet, addr, "/metrics"); got != http.StatusNotFound {
				t.Errorf("/metrics on the public port: %d, want 404", got)
			}
			if got := status(t, http.MethodGet, a.AdminAddr(), "/metrics"); got != http.StatusOK {
				t.Errorf("/metrics on the admin listener: %d", got)
			}
			for role, probe := range probes {
				want := http.StatusNotFound
				if slices.Contains(roles, role) {
					want = http.StatusUnauthorized
				}
				if got := status(t, probe[0], addr, probe[1]); got != want {
					t.Errorf("%s %s (role %s): %d, want %d", probe[0], probe[1], role, got, want)
				}
			}
			// The router's part is its durable consumers, one per project:
			// a project created now gets its router where the role runs.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, _, err := a.Catalog.UpdateProject(ctx, "p", func(*catalog.Project) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(roles, RoleRouter) {
				deadline := time.Now().Add(10 * time.Second)
				for {
					if _, err := a.JS.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable("p")); err == nil {
						break
					} else if time.Now().After(deadline) {
						t.Fatalf("no router consumer for project p with roles %v: %v", roles, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			} else if _, err := a.JS.Consumer(ctx, subjects.StreamTriggers, router.RouterDurable("p")); err == nil {
				t.Errorf("a router consumer exists with roles %v", roles)
			}
			for _, name := range RoleNames() {
				if _, ok := a.Role(name); ok != slices.Contains(roles, name) {
					t.Errorf("Role(%s) = %v with roles %v", name, ok, roles)
				}
			}
		})
	}
}

// TestShutdownOrder stops a process with every role and checks the drain
// order: /readyz is 503 while the server still serves, then HTTP stops,
// then the roles stop in reverse start order, then NATS is drained.
func TestShutdownOrder(t *testing.T) {
	rec := &recorder{}
	opts := options(t)
	opts.Wrap = rec.wrap
	addr := opts.HTTPAddr
	opts.notReady = func() { rec.log("not ready: /readyz " + http.StatusText(status(t, http.MethodGet, addr, "/readyz"))) }
	rec.onStop = func() string {
		if status(t, http.MethodGet, addr, "/healthz") != 0 {
			return "(HTTP still serving)"
		}
		return "(HTTP closed)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := status(t, http.MethodGet, addr, "/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz %d after Start", got)
	}
	rec.log("serving")
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"start history", "start router", "start scheduler", "start connection-lifecycle", "start ingress", "start webhook-receiver",
		"register history", "register router", "register scheduler", "register connection-lifecycle", "register ingress", "register webhook-receiver",
		"serving",
		"not ready: /readyz Service Unavailable",
		"stop webhook-receiver (HTTP closed)", "stop ingress (HTTP closed)", "stop connection-lifecycle (HTTP closed)", "stop scheduler (HTTP closed)", "stop router (HTTP closed)", "stop history (HTTP closed)",
	}
	if got := rec.all(); !slices.Equal(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	if !a.NC.IsClosed() {
		t.Fatal("NATS connection still open after Stop")
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// TestDrainDelay: during the drain delay the process keeps serving with
// /readyz at 503 and no role stopped; the end of the shutdown budget cuts
// the delay short and the drain goes on.
func TestDrainDelay(t *testing.T) {
	rec := &recorder{}
	opts := options(t)
	opts.Wrap = rec.wrap
	opts.DrainDelay = time.Hour
	// Started by hand: this test's Stop ends with its budget cancelled, which
	// the roles may report; the check is below, not in a cleanup.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	a, err := Start(sctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.HTTPAddr()

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for status(t, http.MethodGet, addr, "/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 503 during the drain delay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Still serving every route while not ready.
	if got := status(t, http.MethodGet, addr, "/v1/projects/p/runs"); got != http.StatusUnauthorized {
		t.Fatalf("history route during the drain delay: %d", got)
	}
	for _, e := range rec.all() {
		if strings.HasPrefix(e, "stop ") {
			t.Fatalf("%q during the drain delay", e)
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned during the drain delay: %v", err)
	default:
	}
	cancel()
	if err := <-stopped; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	var stops []string
	for _, e := range rec.all() {
		if name, ok := strings.CutPrefix(e, "stop "); ok {
			stops = append(stops, name)
		}
	}
	if want := []string{RoleWebhookReceiver, RoleIngress, RoleLifecycle, RoleScheduler, RoleRouter, RoleHistory}; !slices.Equal(stops, want) {
		t.Fatalf("stopped %v, want %v", stops, want)
	}
	if status(t, http.MethodGet, addr, "/healthz") != 0 {
		t.Fatal("still serving after Stop")
	}
}

// TestFailedStartUndoes: when a role fails to start, the roles started
// before it stop again (in reverse), later ones never start, and the port
// and the NATS connection are released.
func TestFailedStartUndoes(t *testing.T) {
	rec := &recorder{failStart: RoleLifecycle}
	opts := options(t)
	opts.Wrap = rec.wrap
	var deps *Deps
	opts.Setup = func(_ context.Context, d *Deps) error { deps = d; return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if a, err := Start(ctx, opts); err == nil || !strings.Contains(err.Error(), "start connection-lifecycle") {
		if a != nil {
			_ = a.Stop(ctx)
		}
		t.Fatalf("Start: %v, want the lifecycle role's failure", err)
	}
	want := []string{"start history", "start router", "start scheduler", "start connection-lifecycle", "stop scheduler", "stop router", "stop history"}
	if got := rec.all(); !slices.Equal(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	if deps == nil || !deps.NC.IsClosed() {
		t.Fatal("NATS connection left open")
	}
	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		t.Fatalf("port still held: %v", err)
	}
	ln.Close()
}

func TestStartRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		err  string
	}{
		{"history without a data dir", func(o *Options) { o.Roles, o.DataDir = []string{RoleHistory}, "" }, "SWITCHBOARD_DATA_DIR"},
		{"unknown role", func(o *Options) { o.Roles = []string{"webhook"} }, `unknown role "webhook"`},
		{"setup fails", func(o *Options) { o.Setup = func(context.Context, *Deps) error { return errors.New("no project") } }, "no project"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(t)
			tc.edit(&opts)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, err := Start(ctx, opts)
			if err == nil {
				_ = a.Stop(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Start: %v, want an error with %q", err, tc.err)
			}
		})
	}
}

// A process started before its NATS server waits for it (compose and
// Kubernetes start containers in any order): without a reconnect buffer its
// first requests would otherwise fail at once and the start with them.
func TestStartWaitsForNATS(t *testing.T) {
	natsAddr := freeAddr(t)
	opts := options(t)
	connecting := make(chan struct{})
	opts.Connect = func(name string) (*nats.Conn, error) {
		defer close(connecting)
		return broker.Connect("nats://"+natsAddr, name)
	}
	type result struct {
		a   *App
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		a, err := Start(ctx, opts)
		done <- result{a, err}
	}()
	// The server comes up only after the process tried to connect.
	<-connecting
	brokertest.StartWith(t, broker.EmbeddedOptions{ListenAddr: natsAddr})
	r := <-done
	if r.err != nil {
		t.Fatalf("Start with a NATS server that came up late: %v", r.err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.a.Stop(ctx)
	})
	if got := status(t, "GET", r.a.HTTPAddr(), "/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz %d after a late NATS", got)
	}
}

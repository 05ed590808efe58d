// Package app is Switchboard's one composition root. Every process —
// `switchboard dev`, `switchboard serve --role …`, the end-to-end tests —
// is built here: the dependencies its roles share are built once (NATS
// connection, JetStream, streams and buckets, catalog, directory, metrics,
// access checker, egress client, health), the chosen roles are taken from
// the one role list (roles.go) and driven through service.Role in one start
// order, and every role serves on one HTTP server next to one /healthz and
// /readyz; /metrics is on the admin listener (Options.AdminAddr).
//
// Start order: shared dependencies (the catalog loaded and followed, the
// directory's watch in place), the Setup hook, then the roles — history →
// router → connection-lifecycle → ingress — then their routes, then HTTP,
// then ready.
//
// Stop order: not ready (/readyz 503) while still serving, the drain delay
// (so load balancers notice), HTTP intake stopped and in-flight requests
// finished, the roles in reverse start order, the catalog and directory
// watches, the NATS connection drained, and last the tracer provider
// flushed and shut down.
//
// A role takes what it needs from Deps in its build function (roles.go); a
// dependency roles share is built once, in buildDeps.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/egress"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"

	"github.com/switchboard-hq/switchboard/services/switchboard/openapi"
)

// Options configure one process.
type Options struct {
	// Roles names the roles to run (see RoleNames); empty runs every role.
	Roles []string
	// Name identifies the process's NATS connection (default "switchboard").
	Name string
	// NATSURL is the NATS server or cluster to connect to, unless Connect
	// is set.
	NATSURL string
	// Connect opens the process's NATS connection; dev mode connects in
	// process to its embedded server. Nil dials NATSURL.
	Connect func(name string) (*nats.Conn, error)
	// HTTPAddr is the one HTTP server every role serves on
	// ("127.0.0.1:0" picks a free port).
	HTTPAddr string
	// DataDir holds local read models; the history role needs it.
	DataDir string
	// AdminToken authorizes operator calls; empty disables them.
	AdminToken string
	// Secrets seals credential secrets; nil stores them unsealed.
	Secrets *secrets.Box
	// MaxBody bounds request bodies (default 1 MiB).
	MaxBody int64
	// HTTPLimits are the HTTP server's timeouts and body-read limits
	// (httpx.ServerOptions; Addr and Handler are ignored, HTTPAddr and the
	// roles' routes are used). Zero fields take httpx's defaults.
	HTTPLimits httpx.ServerOptions
	// AllowPrivate lets http steps call private networks; AllowLoopback
	// only loopback (dev mode).
	AllowPrivate, AllowLoopback bool
	// Concurrency bounds runs executing at once in the router.
	Concurrency int
	// Limits are the streams' and buckets' replicas and retention.
	Limits broker.Limits
	// AdminAddr, when set, is the admin listener (SWITCHBOARD_ADMIN_ADDR):
	// /metrics, and the runtime profiles when AdminPprof is set. Neither
	// is served on HTTPAddr: metrics name project ids and the public port
	// has no auth for them. Empty serves no metrics over HTTP (tests).
	AdminAddr string
	// AdminPprof serves Go's runtime profiles (/debug/pprof/) on the
	// admin listener (SWITCHBOARD_ADMIN_PPROF).
	AdminPprof bool
	// PprofAddr, when set, serves Go's runtime profiles on that address of
	// their own (SWITCHBOARD_PPROF_ADDR, from before the admin listener).
	PprofAddr string
	// DrainDelay is how long Stop keeps serving with /readyz answering 503
	// before it closes the listener: long enough for load balancers to
	// take the process out. Zero skips it (dev, tests).
	DrainDelay time.Duration
	// Setup runs once the shared dependencies are up, before the first
	// role starts; dev mode creates its project and applies the examples.
	Setup func(ctx context.Context, d *Deps) error
	// Wrap, when set, wraps every role built, so a caller can watch the
	// order roles are driven in.
	Wrap   func(service.Role) service.Role
	Logger *slog.Logger
	// TracerProvider, when set (tests), makes every span and is not shut
	// down by Stop; nil builds one from the OTEL_* environment (tracing.go),
	// which is none unless OTEL_TRACES_EXPORTER names an exporter.
	TracerProvider trace.TracerProvider

	// notReady, when set (tests), runs inside Stop right after readiness
	// flipped and before the drain delay: the server still serves.
	notReady func()
}

// Deps are what the roles of one process share, built once by Start.
type Deps struct {
	Logger     *slog.Logger
	NC         *nats.Conn
	JS         jetstream.JetStream
	Catalog    *catalog.Catalog
	Directory  *directory.Directory // connected users and credentials, read on demand
	Metrics    *metrics.Metrics
	Access     *access.Checker
	HTTPClient *http.Client // http steps' client, with the egress guard
	// Triggers is the one producer of trigger events (pkg/trigger): ingress,
	// emit steps and replays publish through it.
	Triggers *trigger.Publisher
	// Blobs holds values too large to keep inline in a record.
	Blobs  *blob.Store
	Health *service.Health
	// Tracing makes the roles' spans; nil when tracing is off.
	Tracing trace.TracerProvider
}

// App is a running process: its roles around shared dependencies and one
// HTTP server.
type App struct {
	Deps
	opts    Options
	roles   []service.Role          // started, in start order (as wrapped)
	byName  map[string]service.Role // as built
	srv     *httpx.Server
	echo    *echo.Echo // the one HTTP server's routes (Routes)
	served  chan struct{}
	serveEr error
	stopBg  context.CancelFunc
	pprof   *profiler
	admin   *profiler
	once    sync.Once
	stopErr error
	// ownTracing is the provider Start built, which Stop shuts down.
	ownTracing *sdktrace.TracerProvider
}

// Start builds the shared dependencies, starts the chosen roles in order,
// mounts their routes and serves HTTP. It returns once every role serves
// and /readyz answers 200 — unless a readiness check fails already (NATS
// down, the history read model still rebuilding after an unclean stop), in
// which case /readyz says so until it passes. ctx bounds the start only. On failure whatever
// was started is stopped again.
func Start(ctx context.Context, opts Options) (_ *App, err error) {
	names := opts.Roles
	if len(names) == 0 {
		names = RoleNames()
	}
	if names, err = ParseRoles(strings.Join(names, ",")); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Name == "" {
		opts.Name = "switchboard"
	}
	if opts.Connect == nil {
		url := opts.NATSURL
		opts.Connect = func(name string) (*nats.Conn, error) { return broker.Connect(url, name) }
	}
	a := &App{opts: opts, byName: map[string]service.Role{}, served: make(chan struct{})}
	a.Logger = opts.Logger
	a.Health = &service.Health{}
	defer func() {
		if err != nil {
			a.abort()
		}
	}()
	if opts.PprofAddr != "" {
		if a.pprof, err = startProfiler(opts.PprofAddr); err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
	}
	if err := a.startTracing(ctx, names); err != nil {
		return nil, err
	}
	if err := a.buildDeps(ctx); err != nil {
		return nil, err
	}
	// Every role's requests need NATS: a process whose connection is down
	// (reconnecting, or closed for good) is not ready, whatever it serves.
	nc := a.NC
	a.Health.AddCheck(service.Check{Name: "nats", Probe: func() service.CheckResult {
		if st := nc.Status(); st != nats.CONNECTED {
			return service.CheckResult{Status: "disconnected", Detail: st.String()}
		}
		return service.OK()
	}})
	// Bind before any role starts, so a taken port fails the start at once.
	if opts.AdminAddr != "" {
		if a.admin, err = startAdmin(adminOptions{Addr: opts.AdminAddr, Metrics: a.Metrics, Pprof: opts.AdminPprof}); err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
	}
	if err := readinessGauge(a.Metrics, a.Health); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	e := httpx.NewEcho(opts.Logger)
	a.echo = e
	roles := routeRoles{}
	// Outside the spans, so a span sees the answer as the metrics count it.
	e.Use(httpMetrics(a.Metrics, roles))
	e.Use(httpTracing(a.Tracing))
	a.Health.Register(e)
	// The API's own description is public and role-independent (openapi/).
	if err := openapi.Register(e); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	lim := opts.HTTPLimits
	lim.Addr, lim.Handler = opts.HTTPAddr, e
	if a.srv, err = httpx.NewServer(lim); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if opts.Setup != nil {
		if err := opts.Setup(ctx, &a.Deps); err != nil {
			return nil, fmt.Errorf("app: setup: %w", err)
		}
	}
	specs := map[string]roleSpec{}
	for _, s := range roleList() {
		specs[s.name] = s
	}
	for _, name := range names {
		r, err := specs[name].build(&a.Deps, &a.opts)
		if err != nil {
			return nil, fmt.Errorf("app: %s: %w", name, err)
		}
		a.byName[name] = r
		if opts.Wrap != nil {
			r = opts.Wrap(r)
		}
		if err := r.Start(ctx); err != nil {
			return nil, fmt.Errorf("app: start %s: %w", name, err)
		}
		a.roles = append(a.roles, r)
		if c, ok := a.byName[name].(service.Checker); ok {
			for _, ch := range c.Checks() {
				a.Health.AddCheck(ch)
			}
		}
	}
	for _, r := range a.roles {
		roles.mount(e, r)
	}
	go func() {
		a.serveEr = a.srv.Serve()
		close(a.served)
	}()
	a.Health.SetReady(true)
	a.Logger.Info("serving", "http", a.srv.Addr(), "admin", a.admin.addr(), "roles", strings.Join(names, ","))
	return a, nil
}

// buildDeps connects to NATS, provisions the streams and buckets, loads and
// follows the catalog, opens the directory, and creates what the roles
// share.
func (a *App) buildDeps(ctx context.Context) (err error) {
	o := a.opts
	if a.NC, err = o.Connect(o.Name); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := broker.WaitConnected(ctx, a.NC, o.Logger.Info); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if a.JS, err = broker.JetStream(a.NC); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := broker.Provision(ctx, a.JS, o.Limits); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if a.Catalog, err = catalog.Open(ctx, catalog.Options{JS: a.JS, Logger: o.Logger}); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	// The catalog follows its bucket until Stop, beyond Start's ctx.
	bg, stop := context.WithCancel(context.Background())
	a.stopBg = stop
	if err := a.Catalog.Start(bg); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if a.Directory, err = directory.Open(ctx, directory.Options{JS: a.JS, Logger: o.Logger, Secrets: o.Secrets}); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := a.Directory.Start(bg); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.Metrics = metrics.New()
	dedupe, err := a.JS.KeyValue(ctx, subjects.BucketDedupe)
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if a.Triggers, err = trigger.New(ctx, trigger.Options{JS: a.JS, Budgets: wire.FromConn(a.NC), Dedupe: dedupe, Logger: o.Logger,
		TracerProvider: a.Tracing, Failed: countPublishFailure(a.Metrics)}); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if a.Blobs, err = blob.Open(ctx, blob.Options{JS: a.JS, Budgets: wire.FromConn(a.NC)}); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.Access = access.New(access.Options{Catalog: a.Catalog, AdminToken: o.AdminToken})
	a.HTTPClient = egress.NewClient(egress.Options{AllowPrivate: o.AllowPrivate, AllowLoopback: o.AllowLoopback})
	return nil
}

// AdminAddr is the address the admin listener (/metrics) is bound to; empty
// when there is none.
func (a *App) AdminAddr() string { return a.admin.addr() }

// HTTPAddr is the address the HTTP server is bound to.
func (a *App) HTTPAddr() string { return a.srv.Addr() }

// SlowBodies is how many slow request-body reads hold one of the HTTP
// server's slots (httpx.ServerOptions.MaxSlowBodies) now.
func (a *App) SlowBodies() int { return a.srv.SlowBodies() }

// Role returns the running role of that name, as built (not wrapped).
func (a *App) Role(name string) (service.Role, bool) {
	r, ok := a.byName[name]
	return r, ok
}

// Done is closed when the HTTP server has stopped serving: during Stop, or
// earlier if it failed (Err says why).
func (a *App) Done() <-chan struct{} { return a.served }

// Err is why the HTTP server stopped serving; nil until then and after a
// clean shutdown.
func (a *App) Err() error {
	select {
	case <-a.served:
		return a.serveEr
	default:
		return nil
	}
}

// Stop shuts the process down in order: /readyz answers 503 at once while
// everything still serves; after the drain delay the HTTP server stops
// accepting and finishes in-flight requests; then the roles stop in reverse
// start order; then the catalog watch ends and NATS is drained. ctx bounds
// all of it, the drain delay included; what is still running when it ends
// is abandoned (unacknowledged work is redelivered by JetStream). Stop may
// be called more than once; it stops once.
func (a *App) Stop(ctx context.Context) error {
	a.once.Do(func() { a.stopErr = a.stop(ctx) })
	return a.stopErr
}

func (a *App) stop(ctx context.Context) error {
	a.Health.SetReady(false)
	if a.opts.notReady != nil {
		a.opts.notReady()
	}
	if d := a.opts.DrainDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	var errs []error
	if err := a.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	<-a.served
	if a.serveEr != nil {
		errs = append(errs, a.serveEr)
	}
	errs = append(errs, a.stopRoles(ctx))
	a.closeDeps(ctx)
	// After the roles, so the spans of their last work are exported.
	errs = append(errs, a.stopTracing(ctx))
	if err := a.pprof.stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := a.admin.stop(ctx); err != nil {
		errs = append(errs, err)
	}
	a.Logger.Info("stopped")
	return errors.Join(errs...)
}

// stopRoles stops the started roles in reverse start order.
func (a *App) stopRoles(ctx context.Context) error {
	var errs []error
	for i := len(a.roles) - 1; i >= 0; i-- {
		r := a.roles[i]
		if err := r.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", r.Name(), err))
		}
	}
	a.roles = nil
	return errors.Join(errs...)
}

func (a *App) closeDeps(ctx context.Context) {
	if a.stopBg != nil {
		a.stopBg()
	}
	if a.NC != nil {
		broker.Drain(ctx, a.NC)
	}
}

// abort undoes a failed Start: the roles started so far stop (in reverse),
// the listener closes, the connection is drained.
func (a *App) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.stopRoles(ctx); err != nil {
		a.Logger.Warn("stopping roles after a failed start", "err", err)
	}
	if a.srv != nil {
		// The server never served: Serve after Shutdown returns at once and
		// closes the listener, which nothing else would.
		_ = a.srv.Shutdown(ctx)
		_ = a.srv.Serve()
	}
	a.closeDeps(ctx)
	_ = a.stopTracing(ctx)
	_ = a.pprof.stop(ctx)
	_ = a.admin.stop(ctx)
}

// Package service is what every Switchboard role shares: the Role
// interface the composition root drives, configuration from the
// environment, JSON logging, and the /healthz and /readyz endpoints.
package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
)

// Config is the configuration of a Switchboard process (`switchboard serve`,
// and `switchboard dev` for what it does not fix itself). Every field has an
// environment variable (documented in the README).
type Config struct {
	NATSURL      string        // SWITCHBOARD_NATS_URL
	HTTPAddr     string        // SWITCHBOARD_HTTP_ADDR
	DataDir      string        // SWITCHBOARD_DATA_DIR (local read models)
	AdminToken   string        // SWITCHBOARD_ADMIN_TOKEN
	SecretKey    string        // SWITCHBOARD_SECRET_KEY: base64 AES-256 key sealing credential secrets
	MaxBody      int64         // SWITCHBOARD_MAX_BODY_BYTES
	AllowPrivate bool          // SWITCHBOARD_ALLOW_PRIVATE_NETWORKS: http steps may call private/loopback addresses
	LogLevel     slog.Level    // SWITCHBOARD_LOG_LEVEL
	Limits       broker.Limits // SWITCHBOARD_REPLICAS, SWITCHBOARD_*_MAX_AGE, SWITCHBOARD_IDEMPOTENCY_TTL
	ShutdownWait time.Duration // SWITCHBOARD_SHUTDOWN_TIMEOUT
	DrainDelay   time.Duration // SWITCHBOARD_DRAIN_DELAY: how long a stopping process serves on with /readyz 503
	Concurrency  int           // SWITCHBOARD_RUN_CONCURRENCY
	PprofAddr    string        // SWITCHBOARD_PPROF_ADDR: serve Go's runtime profiles there (off when empty)
	AdminAddr    string        // SWITCHBOARD_ADMIN_ADDR: /metrics (and profiles) listener; "off" for none
	AdminPprof   bool          // SWITCHBOARD_ADMIN_PPROF: serve the runtime profiles on the admin listener
	// HTTPLimits bound how long clients may take over requests:
	// SWITCHBOARD_BODY_TIMEOUT, SWITCHBOARD_SLOW_BODY_AFTER,
	// SWITCHBOARD_MAX_SLOW_BODIES, SWITCHBOARD_MIN_IMPORT_RATE (bytes per
	// second of a streamed import). Zero fields are httpx's defaults.
	HTTPLimits httpx.ServerOptions
}

// DefaultAdminAddr is the default Config.AdminAddr: loopback, because
// metrics name project ids and profiles show the process's insides. A
// deployment that scrapes from another host binds it wider (":9090") on a
// network only its monitoring reaches.
const DefaultAdminAddr = "127.0.0.1:9090"

// DefaultDrainDelay is the default Config.DrainDelay. A stopping process
// first answers /readyz with 503 and keeps serving this long, so load
// balancers and Kubernetes endpoints stop routing to it before its listener
// closes and no request is refused in between.
const DefaultDrainDelay = 2 * time.Second

// ConfigFromEnv reads Config from the environment, with defaults for a
// single node.
func ConfigFromEnv(defaultHTTPAddr string) (Config, error) {
	c := Config{
		NATSURL:      env("SWITCHBOARD_NATS_URL", "nats://127.0.0.1:4222"),
		HTTPAddr:     env("SWITCHBOARD_HTTP_ADDR", defaultHTTPAddr),
		DataDir:      env("SWITCHBOARD_DATA_DIR", "./data"),
		AdminToken:   os.Getenv("SWITCHBOARD_ADMIN_TOKEN"),
		PprofAddr:    os.Getenv("SWITCHBOARD_PPROF_ADDR"),
		AdminAddr:    env("SWITCHBOARD_ADMIN_ADDR", DefaultAdminAddr),
		SecretKey:    os.Getenv("SWITCHBOARD_SECRET_KEY"),
		MaxBody:      httpx.DefaultMaxBody,
		Limits:       broker.DefaultLimits(),
		ShutdownWait: 30 * time.Second,
		DrainDelay:   DefaultDrainDelay,
		Concurrency:  256,
	}
	var errs []string
	if v := os.Getenv("SWITCHBOARD_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, "SWITCHBOARD_MAX_BODY_BYTES must be a positive integer")
		}
		c.MaxBody = n
	}
	if v := os.Getenv("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS must be true or false")
		}
		c.AllowPrivate = b
	}
	if c.AdminAddr == "off" {
		c.AdminAddr = ""
	}
	if v := os.Getenv("SWITCHBOARD_ADMIN_PPROF"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, "SWITCHBOARD_ADMIN_PPROF must be true or false")
		}
		c.AdminPprof = b
	}
	if v := os.Getenv("SWITCHBOARD_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, "SWITCHBOARD_LOG_LEVEL must be debug, info, warn or error")
		}
	}
	if v := os.Getenv("SWITCHBOARD_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			errs = append(errs, "SWITCHBOARD_REPLICAS must be 1..5")
		}
		c.Limits.Replicas = n
	}
	for name, dst := range map[string]*time.Duration{
		"SWITCHBOARD_BODY_TIMEOUT":    &c.HTTPLimits.BodyTimeout,
		"SWITCHBOARD_SLOW_BODY_AFTER": &c.HTTPLimits.SlowBodyAfter,
	} {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, name+" must be a positive duration like 30s")
			}
			*dst = d
		}
	}
	if v := os.Getenv("SWITCHBOARD_MAX_SLOW_BODIES"); v != "" {
		// -1 lifts the cap (a process behind a proxy that buffers bodies).
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 || n < -1 {
			errs = append(errs, "SWITCHBOARD_MAX_SLOW_BODIES must be a positive integer (-1: no cap)")
		}
		c.HTTPLimits.MaxSlowBodies = n
	}
	if v := os.Getenv("SWITCHBOARD_MIN_IMPORT_RATE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, "SWITCHBOARD_MIN_IMPORT_RATE must be a positive number of bytes per second")
		}
		c.HTTPLimits.MinStreamRate = n
	}
	if v := os.Getenv("SWITCHBOARD_RUN_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, "SWITCHBOARD_RUN_CONCURRENCY must be a positive integer")
		}
		c.Concurrency = n
	}
	for name, dst := range map[string]*time.Duration{
		"SWITCHBOARD_TRIGGERS_MAX_AGE":   &c.Limits.TriggersMaxAge,
		"SWITCHBOARD_RUN_EVENTS_MAX_AGE": &c.Limits.RunEventsMaxAge,
		"SWITCHBOARD_RUNS_MAX_AGE":       &c.Limits.RunsMaxAge,
		"SWITCHBOARD_IDEMPOTENCY_TTL":    &c.Limits.IdempotencyTTL,
		"SWITCHBOARD_RUN_STATE_TTL":      &c.Limits.RunStateTTL,
		"SWITCHBOARD_DUPLICATE_WINDOW":   &c.Limits.DuplicateWindow,
		"SWITCHBOARD_SHUTDOWN_TIMEOUT":   &c.ShutdownWait,
	} {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, name+" must be a positive duration like 24h")
			}
			*dst = d
		}
	}
	if v := os.Getenv("SWITCHBOARD_DRAIN_DELAY"); v != "" {
		// Zero is allowed: a process nobody balances traffic to (dev) has
		// no one to tell.
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, "SWITCHBOARD_DRAIN_DELAY must be a duration like 2s (0 for none)")
		}
		c.DrainDelay = d
	}
	if c.SecretKey != "" {
		if _, err := secrets.ParseKey(c.SecretKey); err != nil {
			errs = append(errs, "SWITCHBOARD_SECRET_KEY must be 32 bytes, base64-encoded")
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// NewLogger returns a JSON slog logger on stderr.
func NewLogger(level slog.Level) *slog.Logger { return newLogger(os.Stderr, level) }

// newLogger writes durations as Go duration strings ("200ms"): the JSON
// handler's default is integer nanoseconds, which nobody reads at a glance
// and which a log query cannot tell from any other number.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}))
}

// Health tracks readiness: a process is live as soon as it serves, and
// ready while it serves (between the end of its start and the beginning
// of its stop) and every named check passes. The checks are the
// dependencies a request needs: the NATS connection, a read model that
// holds the whole history. /readyz names what fails, so an operator sees
// why a pod is out of rotation.
type Health struct {
	ready    atomic.Bool
	wasReady atomic.Bool // tells "starting" from "stopping"

	mu     sync.Mutex
	checks []Check
}

// Check is one named readiness check.
type Check struct {
	Name string
	// Probe is called on every /readyz, concurrently: it must be cheap and
	// must not block (read state, do not dial).
	Probe func() CheckResult
}

// CheckResult is what a probe found: StatusOK, or what is wrong
// ("disconnected", "rebuilding") with details.
type CheckResult struct {
	Status string `json:"status"`
	Detail any    `json:"detail,omitempty"`
}

// StatusOK is a passing check's status.
const StatusOK = "ok"

// OK is a passing check.
func OK() CheckResult { return CheckResult{Status: StatusOK} }

// Checker is a role whose state is part of the process's readiness (the
// history role while its read model rebuilds); the composition root adds
// its checks.
type Checker interface {
	Checks() []Check
}

// SetReady flips readiness.
func (h *Health) SetReady(v bool) {
	if v {
		h.wasReady.Store(true)
	}
	h.ready.Store(v)
}

// AddCheck adds a named check to readiness.
func (h *Health) AddCheck(c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, c)
}

// Readiness is what /readyz answers: whether the process is ready and
// every check's result by name.
type Readiness struct {
	Status string                 `json:"status"` // "ready" or "not ready"
	Checks map[string]CheckResult `json:"checks"`
}

// Ready evaluates readiness now.
func (h *Health) Ready() (Readiness, bool) {
	h.mu.Lock()
	checks := append([]Check(nil), h.checks...)
	h.mu.Unlock()
	out := Readiness{Status: "ready", Checks: map[string]CheckResult{}}
	ok := true
	switch {
	case h.ready.Load():
		out.Checks["shutdown"] = OK()
	case h.wasReady.Load():
		// Stopping: the drain delay keeps serving with this, so load
		// balancers take the process out before its listener closes.
		out.Checks["shutdown"] = CheckResult{Status: "stopping"}
		ok = false
	default:
		out.Checks["shutdown"] = CheckResult{Status: "starting"}
		ok = false
	}
	for _, c := range checks {
		r := c.Probe()
		out.Checks[c.Name] = r
		if r.Status != StatusOK {
			ok = false
		}
	}
	if !ok {
		out.Status = "not ready"
	}
	return out, ok
}

// Register adds /healthz and /readyz to e. /metrics is not among them: it
// names project ids and belongs on the admin listener, not the public port.
func (h *Health) Register(e *echo.Echo) {
	e.GET("/healthz", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c *echo.Context) error {
		r, ok := h.Ready()
		if !ok {
			return c.JSON(http.StatusServiceUnavailable, r)
		}
		return c.JSON(http.StatusOK, r)
	})
}

// DefaultGCPercent is the GC target the binaries use unless GOGC is set.
// Switchboard allocates many short-lived JSON values per event; collecting
// less often measured as a throughput gain (sbbench: ingest ratio 0.47 at
// GOGC=200 vs 0.57 at 400 in back-to-back runs) for tens of MB of heap.
const DefaultGCPercent = 400

// DefaultMemoryLimit is the soft memory limit the binaries use unless
// GOMEMLIMIT is set. A high GOGC alone multiplies the heap under load (a
// live heap of 150 MB grew to 1 GB of RSS at GOGC=400); the limit makes the
// collector run sooner as the heap nears it, so the heap stays near the
// limit under load and GOGC's headroom only applies while it is small.
const DefaultMemoryLimit = 200 << 20

// TuneRuntime applies DefaultGCPercent and DefaultMemoryLimit when the
// environment does not choose (GOGC, GOMEMLIMIT).
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

// SecretBox returns the box for SecretKey, or nil (with a warning) when no
// key is configured and credential secrets are stored unsealed.
func (c Config) SecretBox(logger *slog.Logger) (*secrets.Box, error) {
	if c.SecretKey == "" {
		logger.Warn("SWITCHBOARD_SECRET_KEY is not set: credential secrets are stored unencrypted in KV")
		return nil, nil
	}
	key, err := secrets.ParseKey(c.SecretKey)
	if err != nil {
		return nil, err
	}
	return secrets.New(key)
}

package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/service"
	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
	"github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/ingress"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/scheduler"
)

// Role names, as `switchboard serve --role` takes them.
const (
	RoleHistory   = "history"
	RoleRouter    = "router"
	RoleLifecycle = "connection-lifecycle"
	RoleIngress   = "ingress"
	RoleScheduler = "scheduler"
)

// AllRoles is the --role value that runs every role.
const AllRoles = "all"

// roleSpec is one entry of the role list: a name and how to build the role
// from the process's shared dependencies.
type roleSpec struct {
	name  string
	build func(d *Deps, o *Options) (service.Role, error)
}

// roleList is the one list of Switchboard roles, in start order; Stop goes
// through it backwards. The read side starts first, so the history follows
// RUN_EVENTS before anything is produced; then the router, so triggers are
// consumed as soon as they can arrive; then the roles that take them in over
// HTTP. A new role (webhook-receiver, scheduler) is one entry here, placed
// before the roles whose output it consumes and after those it feeds.
func roleList() []roleSpec {
	return []roleSpec{
		{RoleHistory, buildHistory},
		{RoleRouter, buildRouter},
		{RoleScheduler, buildScheduler},
		{RoleLifecycle, buildLifecycle},
		{RoleIngress, buildIngress},
		{RoleWebhookReceiver, buildWebhookReceiver},
	}
}

// RoleNames lists every role, in start order.
func RoleNames() []string {
	var out []string
	for _, r := range roleList() {
		out = append(out, r.name)
	}
	return out
}

// ParseRoles reads a --role value: role names separated by commas, or
// "all". The result is in start order, without duplicates.
func ParseRoles(v string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			continue
		case n == AllRoles:
			return RoleNames(), nil
		case !slices.Contains(RoleNames(), n):
			return nil, fmt.Errorf("unknown role %q (roles: %s, or %s)", n, strings.Join(RoleNames(), ", "), AllRoles)
		}
		want[n] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no role given (roles: %s, or %s)", strings.Join(RoleNames(), ", "), AllRoles)
	}
	var out []string
	for _, n := range RoleNames() {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// HistoryFile is the history role's read model, in Options.DataDir.
const HistoryFile = "history.db"

func buildHistory(d *Deps, o *Options) (service.Role, error) {
	if o.DataDir == "" {
		return nil, fmt.Errorf("the %s role needs a data dir for its read model (SWITCHBOARD_DATA_DIR)", RoleHistory)
	}
	return history.New(history.Options{
		NC: d.NC, JS: d.JS, Catalog: d.Catalog, Access: d.Access, Logger: d.Logger, Triggers: d.Triggers,
		Path: filepath.Join(o.DataDir, HistoryFile),
	})
}

func buildRouter(d *Deps, o *Options) (service.Role, error) {
	svc, err := router.New(router.Options{
		NC: d.NC, JS: d.JS, Catalog: d.Catalog, Metrics: d.Metrics, Logger: d.Logger, Triggers: d.Triggers,
		Directory: d.Directory, Blobs: d.Blobs, HTTPClient: d.HTTPClient, Concurrency: o.Concurrency, RunStateTTL: o.Limits.RunStateTTL,
		DuplicateWindow: o.Limits.DuplicateWindow, TracerProvider: d.Tracing,
	})
	if err != nil {
		return nil, err
	}
	return routerRole{svc}, nil
}

// routerRole gives the router, which serves no HTTP routes of its own, the
// Role shape.
type routerRole struct{ *router.Service }

func (routerRole) Register(*echo.Echo) {}

func buildLifecycle(d *Deps, o *Options) (service.Role, error) {
	return lifecycle.New(lifecycle.Options{Catalog: d.Catalog, Directory: d.Directory, Access: d.Access, MaxBody: o.MaxBody, Logger: d.Logger,
		// Lifecycle events from the directory's changes, and the OAuth
		// flow: providers are called through the egress-guarded client, and
		// redirect back to the public URL (without one, the host the flow
		// was started at).
		JS: d.JS, Triggers: d.Triggers, HTTPClient: d.HTTPClient, PublicURL: os.Getenv(EnvPublicURL),
		// Webhook subscriptions give providers the receiver's URL on this
		// server; teardown tokens are sealed with the credentials' key.
		Subscriptions: lifecycle.SubscriptionOptions{HookBaseURL: hookBaseURL(o), Secrets: o.Secrets}})
}

// hookBaseURL is where providers reach this server's webhook routes:
// SWITCHBOARD_PUBLIC_URL, else the HTTP listen address (a dev setup), else
// "" when the port is only known once listening.
func hookBaseURL(o *Options) string {
	if v := os.Getenv(EnvPublicURL); v != "" {
		return v
	}
	host, port, err := net.SplitHostPort(o.HTTPAddr)
	if err != nil || port == "0" || port == "" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func buildIngress(d *Deps, o *Options) (service.Role, error) {
	return ingress.New(ingress.Options{
		NC: d.NC, JS: d.JS, Catalog: d.Catalog, Access: d.Access, Metrics: d.Metrics, Logger: d.Logger,
		MaxBody: o.MaxBody, Triggers: d.Triggers, IdempotencyTTL: o.Limits.IdempotencyTTL, Blobs: d.Blobs,
	})
}

func buildScheduler(d *Deps, o *Options) (service.Role, error) {
	return scheduler.New(scheduler.Options{
		JS: d.JS, Catalog: d.Catalog, Directory: d.Directory, Triggers: d.Triggers, Access: d.Access, Logger: d.Logger,
		// The schedule API's run counts come from the history role's
		// decision query wherever that role runs: in another process (split
		// mode) or this one, where the query is an in-process round trip.
		// The scheduler holds no read model of its own.
		Decisions: (&historyDecisions{nc: d.NC}).get,
	})
}

// decisionTimeout bounds one decision query: the history role answers from
// its local file. decisionQuiet is how long queries are skipped after one
// timed out.
const (
	decisionTimeout = 2 * time.Second
	decisionQuiet   = 10 * time.Second
)

// errHistoryQuiet answers the queries skipped after a timeout.
var errHistoryQuiet = errors.New("the history role did not answer a decision query lately; skipped")

// historyDecisions is the scheduler's Decisions over the history role's
// decision query (history.QueryDecision).
type historyDecisions struct {
	nc *nats.Conn
	// quietUntil (Unix nanoseconds) skips queries after one timed out: a
	// schedule view asks once per fired tick's event, and a history role
	// that is up but stuck would otherwise make it wait decisionTimeout for
	// each. The view then shows no counts, as when no history role runs
	// (which the server answers at once: no responders).
	quietUntil atomic.Int64
}

func (h *historyDecisions) get(project, eventID string) (*runs.Decision, error) {
	if time.Now().UnixNano() < h.quietUntil.Load() {
		return nil, errHistoryQuiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), decisionTimeout)
	defer cancel()
	d, err := history.QueryDecision(ctx, h.nc, project, eventID)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		h.quietUntil.Store(time.Now().Add(decisionQuiet).UnixNano())
	}
	return d, err
}

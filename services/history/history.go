// Package history is Switchboard's run-history role: it keeps the run
// history read model (pkg/history, a bbolt file fed from the RUN_EVENTS
// stream) and serves the query API over it — runs listed and fetched,
// trigger events with their decision records — and replays a run from the
// trigger that started it, or a stored trigger event as a new event.
//
// The read model is local to the process that runs this role; other roles
// (ingress replicas in particular) hold none. Any number of history
// replicas may run, each with its own file: they all follow the same stream.
package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/services/history/console"
)

// Name is the role's name.
const Name = "history"

// Options configure the history role.
type Options struct {
	// NC answers the executor's run-state questions and other roles'
	// decision queries (decision.go), and carries a replay's wait for the
	// router's decision.
	NC *nats.Conn
	JS jetstream.JetStream
	// Triggers publishes replays (the one trigger producer).
	Triggers *trigger.Publisher
	Catalog  *catalog.Catalog
	Access   *access.Checker
	// Path is the read model's bbolt file. It is created (with its
	// directory) when missing; losing it loses nothing, it is rebuilt from
	// RUN_EVENTS.
	Path   string
	Logger *slog.Logger
	// PublishTimeout bounds a replay's wait for JetStream's acknowledgement
	// and for the router's decision (default 10s).
	PublishTimeout time.Duration
	// PruneInterval is how often the read model drops what RUN_EVENTS no
	// longer holds (default readmodel.DefaultPruneInterval).
	PruneInterval time.Duration
}

// Service is the history role.
type Service struct {
	opts  Options
	log   *slog.Logger
	store *readmodel.Store
	stop  context.CancelFunc
	done  chan error
	// decisions serves the decision query (decision.go).
	decisions micro.Service
	// failed is why the follower stopped early (a file that cannot be
	// written); the role is then not ready.
	failed atomic.Pointer[error]
}

// New validates opts; Start opens the read model.
func New(opts Options) (*Service, error) {
	if opts.NC == nil || opts.JS == nil || opts.Triggers == nil || opts.Catalog == nil || opts.Access == nil || opts.Path == "" {
		return nil, errors.New("history: NC, JS, Triggers, Catalog, Access and Path are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	return &Service{opts: opts, log: opts.Logger.With("service", Name)}, nil
}

// Name is "history".
func (s *Service) Name() string { return Name }

// Start opens the read model and follows RUN_EVENTS from where the file
// left off. It returns once the file is open: queries answer from then on,
// from whatever the file holds while it catches up.
func (s *Service) Start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.opts.Path), 0o700); err != nil {
		return fmt.Errorf("history: data dir: %w", err)
	}
	store, err := readmodel.Open(ctx, readmodel.Options{
		Path: s.opts.Path, JS: s.opts.JS, Logger: s.opts.Logger, PruneInterval: s.opts.PruneInterval,
	})
	if err != nil {
		return err
	}
	// The follower outlives Start's ctx: it runs until Stop.
	bg, stop := context.WithCancel(context.Background())
	s.store, s.stop, s.done = store, stop, make(chan error, 1)
	if err := store.ServeRunState(bg, s.opts.NC); err != nil {
		stop()
		_ = store.Close()
		return err
	}
	if s.decisions, err = s.serveDecisions(); err != nil {
		stop()
		_ = store.Close()
		s.store = nil // nothing runs for Stop to wait for
		return err
	}
	go func() {
		err := store.Run(bg)
		if err != nil {
			// Only a file that cannot be written ends Run early; queries
			// keep answering from what it holds.
			s.log.Error("history: the read model stopped following RUN_EVENTS", "err", err)
			s.failed.Store(&err)
		}
		s.done <- err
	}()
	return nil
}

// Checks are the role's readiness checks: "history" fails while the read
// model is rebuilt from the stream (with its progress) and when it stopped
// following the stream.
func (s *Service) Checks() []service.Check {
	return []service.Check{{Name: Name, Probe: func() service.CheckResult {
		if s.store == nil {
			return service.CheckResult{Status: "starting"}
		}
		if err := s.failed.Load(); err != nil {
			return service.CheckResult{Status: "failed", Detail: (*err).Error()}
		}
		if rb, ok := s.store.Rebuilding(); ok {
			return service.CheckResult{Status: "rebuilding", Detail: rb}
		}
		return service.OK()
	}}}
}

// Store is the read model; nil before Start.
func (s *Service) Store() *readmodel.Store { return s.store }

// Register mounts the query and replay routes.
func (s *Service) Register(e *echo.Echo) {
	e.GET("/v1/projects/:p/runs", s.listRuns)
	e.GET("/v1/projects/:p/runs/:run", s.getRun)
	e.POST("/v1/projects/:p/runs/:run/replay", s.replayRun)
	e.GET("/v1/projects/:p/events/:event", s.getEvent)
	e.POST("/v1/projects/:p/events/:event/replay", s.replayEvent)
	e.POST("/v1/projects/:p/runs/replay", s.bulkReplay)
	e.GET("/v1/projects/:p/dead", s.listDead)
	e.POST("/v1/projects/:p/dead/:seq/replay", s.replayDead)
	// The console is static; it calls the routes above from the browser.
	page := echo.WrapHandler(console.Handler())
	e.GET(console.Path, page)
	e.GET(console.Path+"/*", page)
}

// Stop stops following the stream and closes the file cleanly, so the next
// Start resumes from it instead of rebuilding it.
func (s *Service) Stop(context.Context) error {
	if s.store == nil {
		return nil
	}
	// Queries stop before the file closes under them. One that cannot be
	// drained (the connection is going) fails a query, not the stop: what
	// Stop protects is the file.
	if err := s.decisions.Stop(); err != nil {
		s.log.Warn("history: stopping the decision query", "err", err)
	}
	s.stop()
	runErr := <-s.done
	if err := s.store.Close(); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// projectCaller authenticates a call on project p and checks p exists.
func (s *Service) projectCaller(c *echo.Context) (access.Principal, error) {
	return s.opts.Access.ExistingProject(c.Request(), c.Param("p"))
}

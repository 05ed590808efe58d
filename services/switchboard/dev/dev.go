// Package dev is `switchboard dev`: every Switchboard role in one process
// around an embedded nats-server, with project "dev" (its signing key, API
// key and operator token kept in the data dir) and the example documents
// applied. The process itself is built by the one composition root,
// services/switchboard/app; this package adds only what dev mode has on
// top. The end-to-end tests and the benchmark start it too.
package dev

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
	"github.com/switchboard-hq/switchboard/pkg/secrets"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	historyrole "github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

// Project is the project dev mode creates.
const Project = "dev"

// ExamplesListenerDefault is the listener address written in examples/
// (`switchboard echo-server` listens there by default).
const ExamplesListenerDefault = "127.0.0.1:9000"

// Files in the data dir.
const (
	APIKeyFile     = "dev-api-key"
	AdminTokenFile = "admin-token"
	SecretKeyFile  = "secret-key"
)

// Options configure a dev system.
type Options struct {
	DataDir string
	// HTTPAddr serves every API ("127.0.0.1:0" picks a port).
	HTTPAddr string
	// NATSAddr is where the embedded NATS also listens for outside clients;
	// empty keeps it in-process only.
	NATSAddr string
	// ExamplesDir holds documents applied to the dev project at start;
	// empty skips them (unless Examples is set).
	ExamplesDir string
	// Examples, when set, holds the documents instead of ExamplesDir
	// (`switchboard dev` passes the embedded examples.FS, so it applies them
	// outside the repository root too).
	Examples fs.FS
	// ExamplesListener is the host:port the examples' http steps call
	// instead of ExamplesListenerDefault (where they are written to post),
	// so a machine whose port 9000 is taken runs the walk-through without
	// edited copies of the examples; empty keeps the default.
	ExamplesListener string
	// APIKey fixes the dev API key (SWITCHBOARD_DEV_API_KEY); empty keeps
	// the one in the data dir or mints one.
	APIKey string
	// AdminToken fixes the operator token; empty keeps or mints one.
	AdminToken string
	// SecretKey (base64, 32 bytes) seals credential secrets; empty keeps
	// or mints one in the data dir.
	SecretKey string
	// AllowPrivate lets http steps call private networks; loopback is
	// always allowed in dev mode so the quick start can call a local listener.
	AllowPrivate bool
	MaxBody      int64
	Concurrency  int
	Limits       broker.Limits
	Logger       *slog.Logger
	// PprofAddr, when set, serves Go's runtime profiles there.
	PprofAddr string
	// AdminAddr, when set, serves /metrics (and, with AdminPprof, the
	// runtime profiles) there; empty serves no admin listener.
	AdminAddr  string
	AdminPprof bool
	// HTTPLimits bound how long clients may take over requests (zero
	// values: httpx's defaults).
	HTTPLimits httpx.ServerOptions
}

// System is a running dev system.
type System struct {
	Options    Options
	HTTPAddr   string
	NATSURL    string
	APIKey     string
	AdminToken string
	SigningKey *rsa.PrivateKey
	Catalog    *catalog.Catalog
	History    *history.Store
	NC         *nats.Conn
	JS         jetstream.JetStream
	Metrics    *metrics.Metrics
	// App is the process the composition root built: every role.
	App *app.App

	ns *broker.Embedded
}

// Start brings the whole system up and returns once it serves.
func Start(ctx context.Context, opts Options) (_ *System, err error) {
	if opts.DataDir == "" {
		return nil, errors.New("dev: data dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:8080"
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("dev: data dir: %w", err)
	}
	s := &System{Options: opts}
	defer func() {
		if err != nil {
			s.Stop(context.Background())
		}
	}()
	if s.ns, err = broker.StartEmbedded(broker.EmbeddedOptions{DataDir: opts.DataDir, ListenAddr: opts.NATSAddr}); err != nil {
		return nil, err
	}
	s.NATSURL = s.ns.ClientURL()
	box, err := s.secretBox()
	if err != nil {
		return nil, err
	}
	// The admin token is read (or minted) before the process is built: the
	// access checker the roles share is made with it.
	if s.AdminToken, err = secretFile(filepath.Join(opts.DataDir, AdminTokenFile), opts.AdminToken, func() (string, error) {
		k, err := auth.GenerateAPIKey()
		return "adm_" + strings.TrimPrefix(k, "sk_"), err
	}); err != nil {
		return nil, err
	}
	if s.App, err = app.Start(ctx, app.Options{
		Name:    "switchboard-dev",
		Connect: s.ns.Connect,
		// The read model lives beside the NATS store in the data dir.
		DataDir:    opts.DataDir,
		HTTPAddr:   opts.HTTPAddr,
		AdminToken: s.AdminToken,
		Secrets:    box,
		MaxBody:    opts.MaxBody,
		// Loopback always: the quick start's listener is on 127.0.0.1.
		AllowLoopback: true,
		AllowPrivate:  opts.AllowPrivate,
		Concurrency:   opts.Concurrency,
		Limits:        opts.Limits,
		// Nothing balances traffic to a dev process: stop at once.
		DrainDelay: 0,
		PprofAddr:  opts.PprofAddr,
		AdminAddr:  opts.AdminAddr,
		AdminPprof: opts.AdminPprof,
		HTTPLimits: opts.HTTPLimits,
		Setup:      s.setup,
		Logger:     opts.Logger,
	}); err != nil {
		return nil, err
	}
	a := s.App
	s.HTTPAddr, s.NC, s.JS, s.Catalog, s.Metrics = a.HTTPAddr(), a.NC, a.JS, a.Catalog, a.Metrics
	if r, ok := a.Role(app.RoleHistory); ok {
		s.History = r.(*historyrole.Service).Store()
	}
	return s, nil
}

// setup runs between the shared dependencies and the first role: project
// dev exists, with its keys, and the examples are applied before anything
// serves.
func (s *System) setup(ctx context.Context, d *app.Deps) error {
	s.Catalog = d.Catalog
	if err := s.setupProject(ctx); err != nil {
		return err
	}
	switch {
	case s.Options.Examples != nil:
		return s.applyExamples(ctx, s.Options.Examples, "embedded")
	case s.Options.ExamplesDir != "":
		return s.applyExamples(ctx, os.DirFS(s.Options.ExamplesDir), s.Options.ExamplesDir)
	}
	return nil
}

// secretBox seals credential secrets with Options.SecretKey, or with a key
// kept in the data dir (created on first start).
func (s *System) secretBox() (*secrets.Box, error) {
	k, err := secretFile(filepath.Join(s.Options.DataDir, SecretKeyFile), s.Options.SecretKey, secrets.NewKey)
	if err != nil {
		return nil, err
	}
	key, err := secrets.ParseKey(k)
	if err != nil {
		return nil, fmt.Errorf("dev: secret key: %w", err)
	}
	return secrets.New(key)
}

// setupProject creates project dev with the data dir's signing key and API key.
func (s *System) setupProject(ctx context.Context) error {
	key, _, err := auth.LoadOrCreateSigningKey(s.Options.DataDir)
	if err != nil {
		return err
	}
	s.SigningKey = key
	if s.APIKey, err = secretFile(filepath.Join(s.Options.DataDir, APIKeyFile), s.Options.APIKey, auth.GenerateAPIKey); err != nil {
		return err
	}
	pub := auth.EncodePublicKeyPEM(&key.PublicKey)
	hash := auth.HashAPIKey(s.APIKey)
	if p, ok := s.Catalog.Project(Project); ok && hasKey(p, hash) && len(p.UserTokenKeys) == 1 && p.UserTokenKeys[0] == pub {
		return nil // warm start: nothing to write
	}
	_, rev, err := s.Catalog.UpdateProject(ctx, Project, func(p *catalog.Project) error {
		p.Name = "Development"
		p.UserTokenKeys = []string{pub}
		if !hasKey(p, hash) {
			p.APIKeys = append(p.APIKeys, catalog.APIKey{ID: "dev", Hash: hash, Prefix: s.APIKey[:10], CreatedAt: time.Now().UTC()})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.Catalog.WaitRevision(ctx, rev)
}

func hasKey(p *catalog.Project, hash string) bool {
	for _, k := range p.APIKeys {
		if k.Hash == hash {
			return true
		}
	}
	return false
}

// secretFile returns fixed if set (and records it), else the file's
// contents, else a new value from gen written to the file.
func secretFile(path, fixed string, gen func() (string, error)) (string, error) {
	if fixed == "" {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		v, err := gen()
		if err != nil {
			return "", err
		}
		fixed = v
	}
	if err := os.WriteFile(path, []byte(fixed+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev: write %s: %w", path, err)
	}
	return fixed, nil
}

// applyExamples applies every top-level .yaml/.yml/.json file of fsys to
// project dev in one apply, and logs what it applied: a newcomer whose
// walk-through finds no workflow sees at once whether any were applied.
// from names the source in the log.
func (s *System) applyExamples(ctx context.Context, fsys fs.FS, from string) error {
	entries, err := fs.ReadDir(fsys, ".")
	if errors.Is(err, fs.ErrNotExist) {
		s.Options.Logger.Warn("dev: no examples applied: the directory does not exist", "examples", from)
		return nil
	}
	if err != nil {
		return fmt.Errorf("dev: examples: %w", err)
	}
	var all []workflow.Object
	var files, docs []string
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return fmt.Errorf("dev: examples: %w", err)
		}
		if l := s.Options.ExamplesListener; l != "" && l != ExamplesListenerDefault {
			b = bytes.ReplaceAll(b, []byte(ExamplesListenerDefault), []byte(l))
		}
		objs, err := workflow.Parse(b, Project)
		if err != nil {
			return fmt.Errorf("dev: example %s: %w", e.Name(), err)
		}
		files = append(files, e.Name())
		for _, o := range objs {
			docs = append(docs, o.DocKind()+" "+o.DocName())
		}
		all = append(all, objs...)
	}
	if len(all) == 0 {
		s.Options.Logger.Info("dev: no examples applied: no documents", "examples", from)
		return nil
	}
	rev, err := s.Catalog.Apply(ctx, all)
	if err != nil {
		return err
	}
	if err := s.Catalog.WaitRevision(ctx, rev); err != nil {
		return err
	}
	s.Options.Logger.Info("dev: applied examples", "examples", from, "files", files, "documents", docs)
	return nil
}

// Stop shuts the process down in the root's order (HTTP intake, the roles
// in reverse start order — in-flight runs finish or are abandoned for
// redelivery —, the read model closed, NATS drained), then stops the
// embedded server.
func (s *System) Stop(ctx context.Context) {
	if s.App != nil {
		if err := s.App.Stop(ctx); err != nil {
			s.Options.Logger.Warn("dev: stop", "err", err)
		}
	}
	if s.ns != nil {
		s.ns.Shutdown()
	}
}

// Token mints a user token for user in the dev project.
func (s *System) Token(user string, ttl time.Duration) (string, error) {
	return auth.MintUserToken(s.SigningKey, Project, user, ttl, time.Now())
}

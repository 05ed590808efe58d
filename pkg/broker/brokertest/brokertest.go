// Package brokertest is the one place tests get a real NATS: an embedded
// nats-server with JetStream, an in-process connection to it, every
// Switchboard stream and bucket provisioned, and (if asked) a started
// catalog or directory, all torn down when the test ends.
//
// Tests across the modules used to copy this setup; keeping it here means a
// change to how the broker starts or provisions reaches every test at once,
// and the teardown order is right in one place. It is a normal package, not a
// _test one, so that every module's tests can import it; production code
// must not.
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// setupTimeout bounds provisioning; a healthy embedded server needs far less.
const setupTimeout = 30 * time.Second

// Server is a running embedded nats-server with one in-process client
// connection and its JetStream handle. The streams and KV buckets exist.
type Server struct {
	Embedded *broker.Embedded
	NC       *nats.Conn
	JS       jetstream.JetStream
}

// Start starts an embedded nats-server that accepts in-process connections
// only, on a fresh t.TempDir(), connects to it and provisions it with the
// default limits. At cleanup the connection is closed, then the server shut
// down. It fails the test on any error.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, broker.EmbeddedOptions{})
}

// StartWith is Start with server options: set ListenAddr (for example
// "127.0.0.1:0") for a server that outside clients and processes can reach at
// Embedded.ClientURL(). An empty DataDir means a fresh t.TempDir().
func StartWith(t testing.TB, opts broker.EmbeddedOptions) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	e, err := broker.StartEmbedded(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the connection closes before the
	// server shuts down.
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect("brokertest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := broker.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := broker.Provision(ctx, js, broker.Limits{}); err != nil {
		t.Fatal(err)
	}
	return &Server{Embedded: e, NC: nc, JS: js}
}

// Catalog opens a catalog on js and starts it; it follows the catalog bucket
// until the test ends.
func Catalog(t testing.TB, js jetstream.JetStream) *catalog.Catalog {
	t.Helper()
	return CatalogWith(t, catalog.Options{JS: js})
}

// CatalogWith is Catalog with options, for a test that wants the catalog's
// log lines (opts.Logger). opts.JS is required.
func CatalogWith(t testing.TB, opts catalog.Options) *catalog.Catalog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := catalog.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// Directory opens a directory on js and starts it; it follows the
// directory bucket until the test ends.
func Directory(t testing.TB, js jetstream.JetStream) *directory.Directory {
	t.Helper()
	return DirectoryWith(t, directory.Options{JS: js})
}

// DirectoryWith is Directory with options (a Secrets box, a cache size).
// opts.JS is required.
func DirectoryWith(t testing.TB, opts directory.Options) *directory.Directory {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d, err := directory.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

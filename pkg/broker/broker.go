// Package broker connects Switchboard to NATS: it starts an embedded
// nats-server with JetStream when asked to, connects clients, and creates the
// streams and KV buckets every service relies on.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EmbeddedOptions configure an embedded nats-server.
type EmbeddedOptions struct {
	// DataDir holds the JetStream store (DataDir/nats).
	DataDir string
	// ListenAddr is host:port for NATS clients; empty means in-process
	// connections only. Port 0 or -1 picks a random port.
	ListenAddr string
	// Name identifies the server in logs.
	Name string
	// Logger receives the server's log lines; nil keeps the server quiet.
	Logger *slog.Logger
	// MaxPayload is the largest message the server accepts, headers
	// included. Zero keeps the stock nats-server limit (1 MB), so that dev
	// mode and tests hit the same limit a production server has and no size
	// budget can pass here only to fail there; set it only to mirror a
	// server configured with a different max_payload.
	MaxPayload int32
}

// Embedded is a running in-process nats-server.
type Embedded struct {
	Server *server.Server
}

// StartEmbedded starts a nats-server with JetStream and waits until it accepts
// connections.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.DataDir == "" {
		return nil, errors.New("broker: embedded server needs a data dir")
	}
	name := opts.Name
	if name == "" {
		name = "switchboard"
	}
	so := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   filepath.Join(opts.DataDir, "nats"),
		// Without NoSigs the server traps SIGINT and calls os.Exit itself.
		NoSigs:     true,
		NoLog:      opts.Logger == nil,
		MaxPayload: opts.MaxPayload,
	}
	if opts.ListenAddr == "" {
		so.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(opts.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("broker: nats listen address %q: %w", opts.ListenAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("broker: nats listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		} else if err := portFree(opts.ListenAddr); err != nil {
			return nil, err
		}
		so.Host, so.Port = host, p
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("broker: new server: %w", err)
	}
	if opts.Logger != nil {
		ns.SetLoggerV2(slogAdapter{opts.Logger.With("component", "nats-server")}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("broker: embedded nats-server not ready after 30s")
	}
	return &Embedded{Server: ns}, nil
}

// portFree fails with the listen error (e.g. "address already in use")
// when addr cannot be bound. nats-server only logs that error from its
// accept loop and never becomes ready, so without this check a busy port
// costs the caller the whole readiness wait and a vague "not ready". The
// port is released at once; another process taking it in between still
// ends in the readiness timeout.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("broker: nats listen address %s: %w", addr, err)
	}
	return l.Close()
}

// ClientURL is the URL external clients connect to; empty when the server
// only accepts in-process connections.
func (e *Embedded) ClientURL() string {
	if e.Server.Addr() == nil {
		return ""
	}
	return e.Server.ClientURL()
}

// Connect opens an in-process client connection, without a reconnect
// buffer like Connect's.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.Server), nats.Name(name), nats.MaxReconnects(-1),
		nats.ReconnectBufSize(noReconnectBuffer))
	if err != nil {
		return nil, fmt.Errorf("broker: in-process connect: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

// noReconnectBuffer disables nats.go's reconnect buffer: while the
// connection is down, a publish fails at once (nats.ErrReconnectBufExceeded)
// instead of being kept and sent after the reconnect.
//
// Every publisher of this process waits for JetStream's ack and treats an
// error as "not done": ingress answers 503, a consumer handler leaves its
// message for redelivery, a dedupe claim stays pending for the retry. A
// buffered copy sent after the reconnect would contradict that answer —
// behind the caller's back, after its retry (hardening defect #2: a claim
// that landed after its 503 made the retry "replayed" for an event never
// stored; a publish that landed after its 503 ran beside the retry's). With
// no buffer, a publish either reached the server before the connection
// dropped or was never sent, so nothing is sent late, and a publish that
// failed at once is known not to be stored. Bytes not yet written when the
// connection drops are dropped by nats.go too (bindToNewConn), never
// resent.
//
// It is for the whole process connection, not one kept for ingress: the
// executor's checkpoints, RUNS publishes and acks have the same contract,
// subscriptions are re-sent by nats.go itself on reconnect, and one
// connection keeps one reconnect state for all roles. The price is that a
// process started while NATS is unreachable (RetryOnFailedConnect) fails
// its first requests at once rather than waiting in the buffer, so
// provisioning fails and the process exits to be restarted.
const noReconnectBuffer = -1

// Connect connects to an external NATS server or cluster, reconnecting in
// the background while it is unreachable, without a reconnect buffer (see
// noReconnectBuffer).
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectBufSize(noReconnectBuffer),
	)
	if err != nil {
		return nil, fmt.Errorf("broker: connect %s: %w", url, err)
	}
	return nc, nil
}

// WaitConnected returns once nc is connected, or ctx's error. Without a
// reconnect buffer (noReconnectBuffer) a process that starts before its
// NATS server would fail its first requests at once; it waits here instead,
// so a compose stack or a pod may start in any order.
func WaitConnected(ctx context.Context, nc *nats.Conn, log func(msg string, args ...any)) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	started, said := time.Now(), time.Now()
	for !nc.IsConnected() {
		if nc.IsClosed() {
			return fmt.Errorf("broker: connection closed before it connected: %w", nats.ErrConnectionClosed)
		}
		if log != nil && time.Since(said) >= 5*time.Second {
			said = time.Now()
			log("waiting for NATS", "servers", nc.Servers(), "waited", time.Since(started).Round(time.Second).String())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: cannot reach NATS at %s: %w", strings.Join(nc.Servers(), ", "), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Drain drains nc and waits until it is closed or ctx ends.
func Drain(ctx context.Context, nc *nats.Conn) {
	if nc == nil || nc.IsClosed() {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		nc.Close()
	}
}

// JetStream returns a JetStream handle for nc.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("broker: jetstream: %w", err)
	}
	return js, nil
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

package broker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestStartEmbeddedBusyPort: a NATS port another process holds fails at
// once with the listen error, not after the 30 s readiness wait.
func TestStartEmbeddedBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	e, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), ListenAddr: l.Addr().String()})
	if err == nil {
		e.Shutdown()
		t.Fatalf("StartEmbedded on busy %s succeeded", l.Addr())
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want it to say address already in use", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failed after %v, want at once", d)
	}
}

// TestWaitConnectedNamesTheURL: a NATS server that never answers is
// reported by its URL.
func TestWaitConnectedNamesTheURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	nc, err := Connect("nats://"+addr, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = WaitConnected(ctx, nc, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot reach NATS at nats://"+addr) {
		t.Fatalf("err = %v, want cannot reach NATS at nats://%s", err, addr)
	}
}

// TestProvisionWithoutJetStream: a NATS server without JetStream is named
// as such, not as a stream's timeout.
func TestProvisionWithoutJetStream(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Provision(ctx, js, Limits{})
	if err == nil || !strings.Contains(err.Error(), "has no JetStream") || !strings.Contains(err.Error(), ns.ClientURL()) {
		t.Fatalf("err = %v, want NATS at %s has no JetStream", err, ns.ClientURL())
	}
}

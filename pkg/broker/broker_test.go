package broker

import (
	"net"
	"strings"
	"testing"
	"time"
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

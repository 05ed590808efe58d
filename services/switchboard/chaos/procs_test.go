//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// binaries are the executables every scenario starts, built once per run.
type binaries struct {
	switchboard string
	natsServer  string
}

// buildBinaries builds cmd/switchboard and a stock nats-server (from the
// module this workspace pins) into dir. They are built here, not taken from
// ./bin, so the processes the suite kills and restarts are the code under
// test and nothing else can replace them mid-run. SWITCHBOARD_CHAOS_BIN
// names a switchboard binary to use instead (another build or release).
func buildBinaries(t *testing.T, dir string) binaries {
	t.Helper()
	b := binaries{switchboard: filepath.Join(dir, "switchboard"), natsServer: filepath.Join(dir, "nats-server")}
	builds := []struct{ out, pkg string }{{b.natsServer, "github.com/nats-io/nats-server/v2"}}
	if bin := os.Getenv("SWITCHBOARD_CHAOS_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		b.switchboard = abs
		t.Logf("switchboard binary from SWITCHBOARD_CHAOS_BIN: %s", abs)
	} else {
		builds = append(builds, struct{ out, pkg string }{b.switchboard, "github.com/switchboard-hq/switchboard/services/switchboard/cmd/switchboard"})
	}
	for _, bb := range builds {
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", bb.out, bb.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", bb.pkg, err, out)
		}
		t.Logf("built %s in %s", filepath.Base(bb.out), time.Since(start).Round(time.Millisecond))
	}
	return b
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
// A restarted process gets the same address again: Go listens with
// SO_REUSEADDR, so the killed process's TIME_WAIT sockets do not block it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one real process the suite starts, kills and restarts with the
// same command line, environment and log file.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string // output of every incarnation, appended
	// ready reports whether the process serves; waitReady polls it.
	ready func() error

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	starts int
	kills  int
}

// newProc describes a process and registers its cleanup: a last SIGTERM
// (SIGKILL after 15s) for whatever incarnation is running then.
func newProc(t *testing.T, name, bin string, args, env []string, logDir string, ready func() error) *proc {
	p := &proc{name: name, bin: bin, args: args, env: env, log: filepath.Join(logDir, name+".log"), ready: ready}
	t.Cleanup(p.stop)
	return p
}

// start starts a new incarnation; the previous one must have exited.
func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.starts++
	fmt.Fprintf(f, "\n==== chaos: start #%d of %s at %s\n", p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	// No admin listener: several processes would all bind its default port.
	cmd.Env = append(append(os.Environ(), "SWITCHBOARD_ADMIN_ADDR=off"), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.err = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		f.Close()
		p.err = err
		close(exited)
	}()
}

// kill sends SIGKILL — no drain, no flush, no deferred code — and waits
// until the process is gone, so a restart finds its ports and files free.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit within 10s of SIGKILL", p.name)
	}
	p.kills++
	t.Logf("kill -9 %s (pid %d)", p.name, p.cmd.Process.Pid)
}

// waitReady polls ready until it succeeds, failing fast when the process
// exits.
func (p *proc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	poll(t, timeout, p.name+" to be ready", func() (bool, string) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready: %v (log %s)", p.name, p.err, p.log)
		default:
		}
		if err := p.ready(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Logf("%s ready (start #%d) after %s", p.name, p.starts, time.Since(start).Round(time.Millisecond))
}

// stop ends the running incarnation, if any, gracefully when it can.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// httpReady is a ready check: GET http://addr/readyz answers 200.
func httpReady(addr string) func() error {
	c := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := c.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	}
}

// natsReady is a ready check: a client connects and JetStream answers.
func natsReady(url string) func() error {
	return func() error {
		nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = nc.RequestWithContext(ctx, "$JS.API.INFO", nil)
		return err
	}
}

// newNATSServer describes a stock `nats-server -js` on addr with its store
// in storeDir: the same flags on every restart, so it recovers that store.
func newNATSServer(t *testing.T, bin, addr, storeDir, logDir string) *proc {
	host, port, _ := net.SplitHostPort(addr)
	return newProc(t, "nats-server", bin, []string{"-js", "-sd", storeDir, "-a", host, "-p", port}, nil, logDir,
		natsReady("nats://"+addr))
}

// poll calls cond every 100ms until it is true or timeout passes, then
// fails the test with cond's last explanation.
func poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if !pollUntil(timeout, cond) {
		_, why := cond()
		t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
	}
}

// pollUntil calls cond every 100ms until it is true (true) or timeout
// passes (false).
func pollUntil(timeout time.Duration, cond func() (bool, string)) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok, _ := cond(); ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

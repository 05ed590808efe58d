package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/runs"
)

// splitProcesses is the microservice deployment shape: one image, one
// `switchboard serve --role …` process per part, each with its roles.
var splitProcesses = map[string][]string{
	"front":                {"ingress", "history"},
	"router":               {"router"},
	"connection-lifecycle": {"connection-lifecycle"},
}

// TestSplitMode runs the walk-through, then the bounded-record cases,
// against three `switchboard serve` processes — ingress with the run
// history, the router, and connection-lifecycle — built from
// cmd/switchboard and sharing one stock `nats-server -js` process (built
// from its module, default settings: max_payload 1 MB) on 127.0.0.1.
func TestSplitMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three processes")
	}
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "switchboard")
	build := exec.Command("go", "build", "-o", bin, "github.com/switchboard-hq/switchboard/services/switchboard/cmd/switchboard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the switchboard binary in %s", time.Since(start).Round(time.Millisecond))

	natsURL := startNATSServer(t)

	const adminToken = "adm_split_mode_test_token"
	common := []string{
		"SWITCHBOARD_NATS_URL=" + natsURL,
		"SWITCHBOARD_ADMIN_TOKEN=" + adminToken,
		"SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true",
		"SWITCHBOARD_SHUTDOWN_TIMEOUT=10s",
	}
	addrs := map[string]string{}
	var procs []*process
	for _, name := range slices.Sorted(maps.Keys(splitProcesses)) {
		addrs[name] = freeAddr(t)
		procs = append(procs, startProcess(t, name, bin, []string{"serve", "--role", strings.Join(splitProcesses[name], ",")}, addrs[name],
			append(slices.Clone(common),
				"SWITCHBOARD_HTTP_ADDR="+addrs[name],
				"SWITCHBOARD_DATA_DIR="+t.TempDir(),
				// Nothing balances traffic here: stop at once on SIGTERM.
				"SWITCHBOARD_DRAIN_DELAY=0s",
			)))
	}
	for _, p := range procs {
		p.waitReady(t)
	}
	t.Logf("three processes ready after %s", time.Since(start).Round(time.Millisecond))

	ing := newAPI(addrs["front"])
	lc := newAPI(addrs["connection-lifecycle"])
	rt := newAPI(addrs["router"])
	l := newListener(t)

	// Operator: the project with a user-token key of ours, and an API key.
	signer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ing.must(t, http.StatusOK, "PUT", "/v1/projects/dev", adminToken,
		map[string]any{"name": "Dev", "userTokenKeys": []string{auth.EncodePublicKeyPEM(&signer.PublicKey)}})
	var created struct{ Key string }
	ing.must(t, http.StatusCreated, "POST", "/v1/projects/dev/api-keys", adminToken, nil).decode(t, &created)
	key := created.Key

	ing.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, documents(l.URL))

	// The connection lifecycle service learns of the new project and key
	// through its catalog watch.
	eventually(t, 10*time.Second, "connection-lifecycle to accept the new API key", func() (bool, string) {
		r := lc.call(t, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{"plan": "pro"}})
		return r.Status == http.StatusOK, r.String()
	})
	lc.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1/credentials/c1", key,
		map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "tok-split"}})

	token, err := auth.MintUserToken(signer, "dev", "u1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var runIDs []string
	for i, path := range []string{"/v1/projects/dev/events?wait=routed", "/projects/dev/sdk/events/trigger?wait=routed"} {
		email := fmt.Sprintf("split%d@example.com", i)
		acc := accepted(t, ing.must(t, http.StatusAccepted, "POST", path, token,
			map[string]any{"name": eventName, "payload": map[string]any{"email": email}}))
		if len(acc.RunIDs) != 1 {
			d := getDecision(t, ing, key, acc.ID)
			t.Fatalf("%s: %+v, want one run; decision %+v", path, acc, d)
		}
		got := l.waitFor(t, "email", email, 1)[0]
		if got.Auth != "Bearer tok-split" || got.Body["owner"] != "u1" || got.Body["run"] != acc.RunIDs[0] || got.Body["event"] != acc.ID {
			t.Errorf("%s: listener got %+v", path, got)
		}
		runIDs = append(runIDs, acc.RunIDs[0])
		d := getDecision(t, ing, key, acc.ID)
		if len(d.Candidates) != 1 || d.Candidates[0].Outcome != runs.OutcomeRan || d.Candidates[0].RunID != acc.RunIDs[0] {
			t.Errorf("%s: decision %+v", path, d)
		}
	}

	var list runList
	eventually(t, 20*time.Second, "both runs succeeded in the ingress run list", func() (bool, string) {
		r := ing.call(t, "GET", "/v1/projects/dev/runs?workflow="+workflowID, key, nil)
		list = runList{}
		if r.Status != http.StatusOK {
			return false, r.String()
		}
		r.decode(t, &list)
		n := 0
		for _, run := range list.Runs {
			if slices.Contains(runIDs, run.ID) && run.Status == runs.StatusSucceeded {
				n++
			}
		}
		return n == len(runIDs), r.String()
	})
	for _, run := range list.Runs {
		if len(run.Steps) != 1 {
			t.Errorf("run %s has steps %+v", run.ID, run.Steps)
			continue
		}
		if out, _ := run.Steps[0].Output.(map[string]any); out["status"] != float64(200) {
			t.Errorf("run %s: step output %v, want status 200", run.ID, run.Steps[0].Output)
		}
	}

	// Each process serves only its roles' part.
	expectError(t, lc.call(t, "POST", "/v1/projects/dev/events", token, map[string]any{"name": eventName}), http.StatusNotFound, "not_found")
	expectError(t, ing.call(t, "PUT", "/v1/projects/dev/users/u9", key, map[string]any{}), http.StatusNotFound, "not_found")
	expectError(t, lc.call(t, "GET", "/v1/projects/dev/runs", key, nil), http.StatusNotFound, "not_found")
	expectError(t, rt.call(t, "GET", "/v1/projects/dev/runs", key, nil), http.StatusNotFound, "not_found")
	expectError(t, rt.call(t, "POST", "/v1/projects/dev/events", token, map[string]any{"name": eventName}), http.StatusNotFound, "not_found")
	// Every process has its own health probes (metrics are on each
	// process's admin listener, not on this port).
	for name, addr := range addrs {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := httpClient.Get("http://" + addr + path)
			if err != nil {
				t.Fatalf("%s %s: %v", name, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %s", name, path, resp.Status)
			}
		}
	}
	t.Logf("split mode walk-through done in %s", time.Since(start).Round(time.Millisecond))

	js, err := jetstream.New(rqConnect(t, natsURL))
	if err != nil {
		t.Fatal(err)
	}
	boundedCases(t, ing, key, token, js)
}

// startNATSServer builds nats-server from its module and runs it as a
// separate process with JetStream and nothing else changed from its
// defaults, on a free 127.0.0.1 port; it returns the client URL.
func startNATSServer(t *testing.T) string {
	t.Helper()
	bin := buildNATSServer(t)
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-js", "-sd", t.TempDir(), "-a", host, "-p", port)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", out.String())
		}
	})
	url := "nats://" + addr
	eventually(t, 20*time.Second, "nats-server to accept connections", func() (bool, string) {
		nc, err := nats.Connect(url)
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		if mp := nc.MaxPayload(); mp != 1<<20 {
			t.Fatalf("stock nats-server max_payload %d, want 1 MB", mp)
		}
		return true, ""
	})
	return url
}

// buildNATSServer builds the nats-server binary from its module into a
// temporary directory and returns its path.
func buildNATSServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a started switchboard process.
type process struct {
	name, addr string
	exited     chan struct{}
	err        error
}

// startProcess starts bin with args and with env added to ours. At cleanup
// it is sent SIGTERM and waited for (killed after 15s); its output is shown
// when the test failed or the process did not exit cleanly.
func startProcess(t *testing.T, name, bin string, args []string, addr string, env []string) *process {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	// No admin listener: several processes would all bind its default port.
	cmd.Env = append(append(os.Environ(), "SWITCHBOARD_ADMIN_ADDR=off"), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, addr: addr, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case <-p.exited:
			err = p.err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			err = fmt.Errorf("did not exit within 15s of SIGTERM; killed")
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil || t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return p
}

// waitReady polls /readyz until it answers 200, failing fast if the
// process exits.
func (p *process) waitReady(t testing.TB) {
	t.Helper()
	eventually(t, 30*time.Second, p.name+" /readyz", func() (bool, string) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready: %v", p.name, p.err)
		default:
		}
		resp, err := httpClient.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

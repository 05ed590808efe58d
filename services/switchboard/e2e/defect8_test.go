package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// readiness is a /readyz answer.
type readiness struct {
	status int
	Status string `json:"status"`
	Checks map[string]struct {
		Status string          `json:"status"`
		Detail json.RawMessage `json:"detail"`
	} `json:"checks"`
	raw string
}

func getReadyz(t *testing.T, addr string) readiness {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return readiness{raw: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := readiness{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &r)
	return r
}

// natsProcess is a nats-server process that can be killed and started
// again on the same port and store.
type natsProcess struct {
	bin, host, port, store string
	cmd                    *exec.Cmd
	out                    bytes.Buffer
}

func buildNATSProcess(t *testing.T) *natsProcess {
	t.Helper()
	bin := buildNATSServer(t)
	host, port, _ := net.SplitHostPort(freeAddr(t))
	p := &natsProcess{bin: bin, host: host, port: port, store: t.TempDir()}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *natsProcess) url() string { return "nats://" + net.JoinHostPort(p.host, p.port) }

func (p *natsProcess) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(p.bin, "-js", "-sd", p.store, "-a", p.host, "-p", p.port)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "nats-server to accept connections", func() (bool, string) {
		nc, err := nats.Connect(p.url())
		if err != nil {
			return false, err.Error()
		}
		nc.Close()
		return true, ""
	})
}

// kill ends the server the hard way, as a crash or an OOM kill would.
func (p *natsProcess) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// TestDefect8ReadyzFollowsNATS: /readyz answered 200 while nats-server was
// down, so nothing took the process out of rotation while every request
// that needs NATS failed. It follows the connection now, and names it.
func TestDefect8ReadyzFollowsNATS(t *testing.T) {
	ns := buildNATSProcess(t)
	ns.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Start(ctx, app.Options{
		NATSURL: ns.url(), HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	addr := a.HTTPAddr()
	if r := getReadyz(t, addr); r.status != http.StatusOK {
		t.Fatalf("/readyz after Start: %d %s", r.status, r.raw)
	}

	ns.kill()
	eventually(t, 5*time.Second, "/readyz to answer 503 naming nats", func() (bool, string) {
		r := getReadyz(t, addr)
		return r.status == http.StatusServiceUnavailable && r.Status == "not ready" &&
			r.Checks["nats"].Status != "" && r.Checks["nats"].Status != "ok", fmt.Sprintf("%d %s", r.status, r.raw)
	})

	ns.start(t)
	eventually(t, 20*time.Second, "/readyz to answer 200 again", func() (bool, string) {
		r := getReadyz(t, addr)
		return r.status == http.StatusOK && r.Checks["nats"].Status == "ok", fmt.Sprintf("%d %s", r.status, r.raw)
	})
}

// TestDefect8ReadyzDuringHistoryRebuild: after an unclean stop the run
// history is rebuilt from RUN_EVENTS, which takes minutes at 30 days of
// retention; meanwhile /readyz said 200 and runs not yet indexed were 404.
// Readiness says "rebuilding" with its progress until it is done, and the
// history answers 503 history_rebuilding instead of a 404 that is not true.
func TestDefect8ReadyzDuringHistoryRebuild(t *testing.T) {
	dir := t.TempDir()
	sys1, stop1 := startDev(t, dev.Options{DataDir: dir})
	key := sys1.APIKey

	// Enough history that its rebuild takes a while: run records as the
	// executor writes them.
	const n = 40000
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	created := time.Now().Add(-time.Hour)
	var lastID string
	var futs []jetstream.PubAckFuture
	for i := range n {
		run := runs.Run{ID: fmt.Sprintf("run_defect8_%06d", i), Project: dev.Project, Workflow: "wf", User: "u1",
			Status: runs.StatusSucceeded, CreatedAt: created.Add(time.Duration(i) * time.Millisecond)}
		data, err := json.Marshal(run)
		if err != nil {
			t.Fatal(err)
		}
		msg := &nats.Msg{Subject: subjects.RunHistory(dev.Project), Data: data, Header: nats.Header{runs.HeaderRecord: []string{runs.RecordRun}}}
		f, err := sys1.JS.PublishMsgAsync(msg)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
		lastID = run.ID
	}
	select {
	case <-sys1.JS.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing the history timed out")
	}
	var lastSeq uint64
	for _, f := range futs {
		select {
		case ack := <-f.Ok():
			lastSeq = max(lastSeq, ack.Sequence)
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	if err := sys1.History.WaitSeq(ctx, lastSeq); err != nil {
		t.Fatal(err)
	}
	a1 := newAPI(sys1.HTTPAddr)
	a1.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+lastID, key, nil)
	stop1()

	// The file as a crash leaves it: not marked clean.
	db, err := bolt.Open(filepath.Join(dir, app.HistoryFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("clean"), []byte{0}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	sys2, _ := startDev(t, dev.Options{DataDir: dir})
	a2 := newAPI(sys2.HTTPAddr)
	var sawRebuilding, sawRunRebuilding bool
	eventually(t, 60*time.Second, "the rebuild to finish and /readyz to answer 200", func() (bool, string) {
		r := getReadyz(t, sys2.HTTPAddr)
		switch {
		case r.status == http.StatusOK:
			return true, ""
		case r.status == http.StatusServiceUnavailable && r.Checks["history"].Status == "rebuilding":
			var rb struct {
				Reason          string
				Applied, Target uint64
			}
			if err := json.Unmarshal(r.Checks["history"].Detail, &rb); err != nil || rb.Reason != "unclean" || rb.Target < lastSeq {
				t.Fatalf("history check while rebuilding: %s", r.raw)
			}
			sawRebuilding = true
		default:
			t.Fatalf("/readyz during the rebuild: %d %s", r.status, r.raw)
		}
		// The newest run is the last to be indexed: while it is not, the
		// history says it is rebuilding rather than that the run is gone.
		switch resp := a2.call(t, "GET", "/v1/projects/dev/runs/"+lastID, key, nil); {
		case resp.Status == http.StatusServiceUnavailable && resp.errCode() == "history_rebuilding":
			sawRunRebuilding = true
		case resp.Status == http.StatusOK:
		default:
			t.Fatalf("a run during the rebuild: %s", resp)
		}
		return false, r.raw
	})
	if !sawRebuilding {
		t.Fatal("/readyz never said the history was rebuilding")
	}
	if !sawRunRebuilding {
		t.Error("no run query answered history_rebuilding during the rebuild")
	}
	a2.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs/"+lastID, key, nil)
	if r := getReadyz(t, sys2.HTTPAddr); r.status != http.StatusOK || r.Checks["history"].Status != "ok" || r.Checks["nats"].Status != "ok" {
		t.Fatalf("/readyz after the rebuild: %d %s", r.status, r.raw)
	}
}

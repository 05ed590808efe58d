package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

// jsCluster is three nats-servers in this process, routed to each other on
// 127.0.0.1: the production shape (deploy/k8s/overlays/prod) small enough
// for a test. A node can be shut down and started again on the same ports
// and store, as a pod restarts on its volume.
//
// With bin set the nodes are nats-server processes instead, and stop is
// SIGKILL: an in-process Shutdown hands its raft leaderships over first
// (as a lame-duck pod does), a crash does not, and the two take the
// cluster different times to recover from.
type jsCluster struct {
	t       *testing.T
	bin     string // nats-server binary; "" runs the nodes in process
	mu      sync.Mutex
	nodes   []*server.Server // in process: nil while a node is down
	procs   []*exec.Cmd      // processes: nil while a node is down
	clients []int            // client ports, fixed so the URLs stay valid
	routes  []int            // cluster ports
	monitor []int            // processes: monitoring ports (/connz)
	dirs    []string
}

func startJSCluster(t *testing.T, n int, bin string) *jsCluster {
	t.Helper()
	c := &jsCluster{t: t, bin: bin, nodes: make([]*server.Server, n), procs: make([]*exec.Cmd, n)}
	for i := range n {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		port, _ := strconv.Atoi(p)
		c.clients = append(c.clients, port)
		c.routes = append(c.routes, freeRoutePort(t, c.routes))
		_, m, _ := net.SplitHostPort(freeAddr(t))
		mp, _ := strconv.Atoi(m)
		c.monitor = append(c.monitor, mp)
		c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i)))
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	// The meta leader exists once JetStream answers account requests.
	nc := c.connect("cluster-check")
	js, _ := jetstream.New(nc)
	eventually(t, 30*time.Second, "the JetStream meta leader", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	nc.Close()
	return c
}

// freeRoutePort picks a cluster port outside Linux's ephemeral range
// (32768-60999), as nats-server's own cluster tests do: a route port taken
// by an outgoing connection between a shutdown and a restart would flake.
func freeRoutePort(t *testing.T, taken []int) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if slices.Contains(taken, p) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free route port in 20000-32000")
	return 0
}

func (c *jsCluster) name(i int) string { return fmt.Sprintf("n%d", i+1) }

func (c *jsCluster) start(i int) {
	c.t.Helper()
	var routes []*url.URL
	for _, p := range c.routes {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
	}
	if c.bin != "" {
		var rs []string
		for _, r := range routes {
			rs = append(rs, r.String())
		}
		cmd := exec.Command(c.bin, "-n", c.name(i), "-a", "127.0.0.1", "-p", strconv.Itoa(c.clients[i]),
			"-js", "-sd", c.dirs[i], "--cluster_name", "sb", "-m", strconv.Itoa(c.monitor[i]),
			"--cluster", "nats://127.0.0.1:"+strconv.Itoa(c.routes[i]), "--routes", strings.Join(rs, ","))
		if err := cmd.Start(); err != nil {
			c.t.Fatalf("node %s: %v", c.name(i), err)
		}
		c.mu.Lock()
		c.procs[i] = cmd
		c.mu.Unlock()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.clients[i]))
		eventually(c.t, 10*time.Second, "node "+c.name(i)+" to accept connections", func() (bool, string) {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false, err.Error()
			}
			conn.Close()
			return true, ""
		})
		return
	}
	s, err := server.NewServer(&server.Options{
		ServerName: c.name(i), Host: "127.0.0.1", Port: c.clients[i], NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: c.dirs[i],
		Cluster: server.ClusterOpts{Name: "sb", Host: "127.0.0.1", Port: c.routes[i]}, Routes: routes,
	})
	if err != nil {
		c.t.Fatalf("node %s: %v", c.name(i), err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("node %s not ready", c.name(i))
	}
	c.mu.Lock()
	c.nodes[i] = s
	c.mu.Unlock()
}

func (c *jsCluster) stop(i int) {
	c.mu.Lock()
	s, p := c.nodes[i], c.procs[i]
	c.nodes[i], c.procs[i] = nil, nil
	c.mu.Unlock()
	if p != nil {
		_ = p.Process.Kill() // SIGKILL: no goodbye, no leadership handed over
		_ = p.Wait()
	}
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (c *jsCluster) index(name string) int {
	for i := range c.nodes {
		if c.name(i) == name {
			return i
		}
	}
	c.t.Fatalf("no node %q", name)
	return -1
}

// clientOn names the node a client connection (by its nats.Name) is
// connected to, or "" when no live node has it.
func (c *jsCluster) clientOn(name string) string {
	for i := range c.nodes {
		c.mu.Lock()
		s, p := c.nodes[i], c.procs[i]
		c.mu.Unlock()
		var conns []*server.ConnInfo
		switch {
		case s != nil:
			if cz, err := s.Connz(&server.ConnzOptions{}); err == nil {
				conns = cz.Conns
			}
		case p != nil:
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(c.monitor[i]) + "/connz")
			if err != nil {
				continue
			}
			var cz server.Connz
			_ = json.NewDecoder(resp.Body).Decode(&cz)
			resp.Body.Close()
			conns = cz.Conns
		}
		for _, ci := range conns {
			if ci.Name == name {
				return c.name(i)
			}
		}
	}
	return ""
}

// urls is every node's client URL, as SWITCHBOARD_NATS_URL lists them.
func (c *jsCluster) urls() string {
	var u []string
	for _, p := range c.clients {
		u = append(u, "nats://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	return strings.Join(u, ",")
}

func (c *jsCluster) connect(name string) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.urls(), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	return nc
}

// streamLeader is the server leading a stream's replicas.
func streamLeader(js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("%s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}

// consumersDrained reports whether no consumer of TRIGGERS or RUNS has
// anything pending or unacknowledged: everything stored is processed.
func consumersDrained(js jetstream.JetStream) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, stream := range []string{subjects.StreamTriggers, subjects.StreamRuns} {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false, err.Error()
		}
		for ci := range s.ListConsumers(ctx).Info() {
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				return false, fmt.Sprintf("%s/%s: %d pending, %d unacknowledged", stream, ci.Name, ci.NumPending, ci.NumAckPending)
			}
		}
	}
	return true, ""
}

// allCurrent reports whether every stream (KV buckets included) has a
// leader and every replica current: a restarted node has caught up, so
// losing another node keeps every stream's quorum.
func allCurrent(js jetstream.JetStream, replicas int) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n := 0
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		n++
		cl := info.Cluster
		if cl == nil || cl.Leader == "" {
			return false, info.Config.Name + " has no leader"
		}
		if len(cl.Replicas) != replicas-1 {
			return false, fmt.Sprintf("%s has %d followers", info.Config.Name, len(cl.Replicas))
		}
		for _, r := range cl.Replicas {
			if !r.Current || r.Offline {
				return false, fmt.Sprintf("%s: replica %s not current", info.Config.Name, r.Name)
			}
		}
	}
	if err := lister.Err(); err != nil {
		return false, err.Error()
	}
	return n > 0, fmt.Sprintf("%d streams", n)
}

// clusterAck is one accepted App Event: its key, when its request started
// and when the 202 came back.
type clusterAck struct {
	k          string
	start, end time.Time
}

// TestClusterLeaderLoss: Switchboard on a 3-node JetStream cluster with
// every stream and bucket at R3 (broker.Provision, Limits.Replicas 3), App
// Events sent over HTTP throughout. The TRIGGERS stream leader is shut
// down, started again once publishes resumed, and when it has caught up the
// new leader — a second node — is shut down the same way; only one node is
// ever down, so a quorum of two remains. Every event answered 202 must run
// exactly once; the time from each loss to the first event accepted after
// it is logged (docs/reliability.md), not asserted.
func TestClusterLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster under load, nodes lost and restarted")
	}
	t.Run("shutdown", func(t *testing.T) { clusterLeaderLoss(t, "") })
	t.Run("sigkill", func(t *testing.T) {
		clusterLeaderLoss(t, buildNATSServer(t))
	})
}

// clusterLeaderLoss is TestClusterLeaderLoss on nodes in process (bin "",
// a lost node shuts down) or nats-server processes (a lost node is killed
// with SIGKILL).
func clusterLeaderLoss(t *testing.T, bin string) {
	begin := time.Now()
	cl := startJSCluster(t, 3, bin)
	t.Logf("cluster formed in %s", time.Since(begin).Round(time.Millisecond))

	const adminToken = "adm_cluster_test_token"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sys, err := app.Start(ctx, app.Options{
		Name: "cluster", NATSURL: cl.urls(), HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminToken: adminToken, AllowLoopback: true, Logger: testLogger(t),
		Limits: broker.Limits{Replicas: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = sys.Stop(ctx)
	})
	nc := cl.connect("cluster-monitor")
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every stream at R3 with current replicas", func() (bool, string) { return allCurrent(js, 3) })

	a := newAPI(sys.HTTPAddr())
	l := newListener(t)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev", adminToken, map[string]any{"name": "Dev"})
	var created struct{ Key string }
	a.must(t, http.StatusCreated, "POST", "/v1/projects/dev/api-keys", adminToken, nil).decode(t, &created)
	key := created.Key
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, `kind: AppEvent
name: Cluster Ping
---
kind: Workflow
id: cluster-evt
trigger: {type: app_event, event: Cluster Ping}
steps:
  - id: notify
    type: http
    method: POST
    url: `+l.URL+`/evt
    json: {k: "{{ trigger.payload.k }}", run: "{{ run.id }}"}
    retry: {attempts: 5, backoff: 100ms}
`)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{}})

	// Load: an App Event every 2.5 ms (400/s), each its own request, so a
	// request stuck on a lost node does not hold back the next ones and the
	// first 202 after a loss tells when publishing works again. No
	// Idempotency-Key and no retry: a 503 is the answer the test checks
	// (never run, or at most once when its outcome was unknown).
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		acks     []clusterAck
		refused  = map[string]string{} // key -> error code of a non-2xx answer
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	inflight := make(chan struct{}, 256)
	send := func(k string) {
		defer wg.Done()
		defer func() { <-inflight }()
		body, _ := json.Marshal(map[string]any{"name": "Cluster Ping", "payload": map[string]any{"k": k}})
		start := time.Now()
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := rqDo(cctx, "POST", a.base+"/v1/projects/dev/events", body,
			"Authorization", "Bearer "+key, "X-Switchboard-User", "u1")
		ccancel()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && r.Status == http.StatusAccepted:
			acks = append(acks, clusterAck{k: k, start: start, end: time.Now()})
		case err == nil:
			failures.Add(1)
			refused[k] = r.errCode()
		default:
			failures.Add(1)
			refused[k] = "transport: " + err.Error()
		}
	}
	var skipped atomic.Int64
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		pace := time.NewTicker(2500 * time.Microsecond)
		defer pace.Stop()
		for i := 0; !stop.Load(); i++ {
			<-pace.C
			select {
			case inflight <- struct{}{}:
				wg.Add(1)
				go send(fmt.Sprintf("e%d", i))
			default:
				skipped.Add(1) // 256 requests in flight: the rate drops rather than the memory grows
			}
		}
	}()
	accepted := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	// resumeAfter is the time from t0 to the first 202 of a request sent
	// after t0, or false while there is none.
	resumeAfter := func(t0 time.Time) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		best := time.Duration(-1)
		for _, ack := range acks {
			if ack.start.After(t0) && (best < 0 || ack.end.Sub(t0) < best) {
				best = ack.end.Sub(t0)
			}
		}
		return best, best >= 0
	}

	type loss struct {
		node            string
		resume, rejoin  time.Duration
		failedMeanwhile int64
	}
	var losses []loss
	for round := range 2 {
		before := accepted()
		eventually(t, 30*time.Second, "events accepted before the loss", func() (bool, string) {
			return accepted() >= before+200, fmt.Sprintf("%d accepted", accepted()-before)
		})
		var leader string
		eventually(t, 10*time.Second, "the TRIGGERS stream leader", func() (bool, string) {
			var err error
			leader, err = streamLeader(js, subjects.StreamTriggers)
			return err == nil, fmt.Sprint(err)
		})
		if round > 0 && leader == losses[0].node {
			t.Logf("round %d: the restarted node %s leads TRIGGERS again", round+1, leader)
		}
		f0 := failures.Load()
		i := cl.index(leader)
		appWas := cl.clientOn("cluster")
		killedAt := time.Now()
		cl.stop(i)
		var resume time.Duration
		eventually(t, 30*time.Second, "publishes to resume after the leader loss", func() (bool, string) {
			var ok bool
			resume, ok = resumeAfter(killedAt)
			return ok, fmt.Sprintf("nothing accepted since the loss %s ago", time.Since(killedAt).Round(time.Millisecond))
		})
		failed := failures.Load() - f0
		// The process reconnects to the other URLs on its own: where is it now?
		var appNow string
		eventually(t, 10*time.Second, "the process's NATS connection on a live node", func() (bool, string) {
			appNow = cl.clientOn("cluster")
			return appNow != "", "not connected to any node"
		})
		// Keep the node down a while under load, then restart it on its
		// store and wait until it has caught up on every stream.
		down := accepted()
		eventually(t, 30*time.Second, "events accepted with one node down", func() (bool, string) {
			return accepted() >= down+200, fmt.Sprintf("%d accepted", accepted()-down)
		})
		restartAt := time.Now()
		cl.start(i)
		eventually(t, 60*time.Second, "the restarted node to catch up on every stream", func() (bool, string) { return allCurrent(js, 3) })
		losses = append(losses, loss{node: leader, resume: resume, rejoin: time.Since(restartAt), failedMeanwhile: failed})
		t.Logf("loss %d: TRIGGERS leader %s lost at %s (the process was connected to %s, then to %s); first event accepted %s later (%d calls failed meanwhile); restarted, current again after %s",
			round+1, leader, killedAt.Sub(begin).Round(time.Millisecond), appWas, appNow, resume.Round(time.Millisecond), failed, time.Since(restartAt).Round(time.Millisecond))
	}
	after := accepted()
	eventually(t, 30*time.Second, "events accepted after the last restart", func() (bool, string) {
		return accepted() >= after+100, fmt.Sprintf("%d accepted", accepted()-after)
	})
	stop.Store(true)
	<-dispatched
	wg.Wait()

	// Everything stored is processed: no consumer has anything pending or
	// unacknowledged (deliveries in flight on a lost node come back after
	// the consumers' AckWait).
	eventually(t, 90*time.Second, "TRIGGERS and RUNS consumers to drain", func() (bool, string) { return consumersDrained(js) })

	// What ran: distinct run ids per key at the listener.
	ran := map[string]map[string]bool{}
	calls, perKey := 0, map[string]int{}
	for _, r := range l.all() {
		k, _ := r.Body["k"].(string)
		run, _ := r.Body["run"].(string)
		if ran[k] == nil {
			ran[k] = map[string]bool{}
		}
		ran[k][run] = true
		calls++
		perKey[k]++
	}
	// Step calls repeated within one run: its checkpoint could not be
	// stored while a stream had no leader, so the step ran again.
	repeated, most := 0, 0
	for _, n := range perKey {
		if n > 1 {
			repeated++
		}
		most = max(most, n)
	}
	var lost, twice, refusedRan, refusedTwice int
	for _, ack := range acks {
		switch n := len(ran[ack.k]); {
		case n == 0:
			lost++
			t.Errorf("event %s was accepted (202) and never ran", ack.k)
		case n > 1:
			twice++
			t.Errorf("event %s ran %d times: %v", ack.k, n, ran[ack.k])
		}
	}
	codes := map[string]int{}
	for k, code := range refused {
		codes[code]++
		if n := len(ran[k]); n > 0 {
			refusedRan++
			if n > 1 {
				refusedTwice++
				t.Errorf("refused event %s (%s) ran %d times", k, code, n)
			}
			if code != "outcome_unknown" && !strings.HasPrefix(code, "transport") {
				t.Errorf("event %s was refused as %s, not stored, yet it ran", k, code)
			}
		}
	}
	var resumes []string
	for _, l := range losses {
		resumes = append(resumes, l.resume.Round(time.Millisecond).String())
	}
	t.Logf("RESULT: %d events accepted, %d lost, %d ran twice; resume after each leader loss: %s; %d calls refused (%v), %d of them ran (once each: %t); %d listener calls (%d events' step called more than once within their one run, at most %d times); %d sends skipped at 256 in flight; %s in all",
		len(acks), lost, twice, strings.Join(resumes, ", "), len(refused), codes, refusedRan, refusedTwice == 0, calls, repeated, most, skipped.Load(), time.Since(begin).Round(time.Millisecond))
}

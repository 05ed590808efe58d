package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

// outageDocs: a request-triggered workflow and an App Event workflow, each
// posting the caller's key (or nonce) and its run id to the listener, so
// the listener sees every run that executed.
func outageDocs(listener string) string {
	return `kind: Workflow
id: outage-req
trigger: {type: request}
steps:
  - id: notify
    type: http
    method: POST
    url: ` + listener + `/req
    json: {k: "{{ trigger.request.body.k }}", run: "{{ run.id }}"}
    retry: {attempts: 5, backoff: 100ms}
---
kind: AppEvent
name: Outage Ping
---
kind: Workflow
id: outage-evt
trigger: {type: app_event, event: Outage Ping}
steps:
  - id: notify
    type: http
    method: POST
    url: ` + listener + `/evt
    json: {k: "{{ trigger.payload.k }}", run: "{{ run.id }}"}
    retry: {attempts: 5, backoff: 100ms}
`
}

// outageNATS is a nats-server process that the test kills with SIGKILL and
// starts again on the same port and store directory.
type outageNATS struct {
	t         *testing.T
	bin, dir  string
	host, prt string
	mu        sync.Mutex
	cmd       *exec.Cmd
	out       bytes.Buffer
}

func startOutageNATS(t *testing.T) *outageNATS {
	t.Helper()
	n := &outageNATS{t: t, bin: buildNATSServer(t), dir: t.TempDir()}
	n.host, n.prt, _ = net.SplitHostPort(freeAddr(t))
	n.start()
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.cmd != nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("nats-server output:\n%s", n.out.String())
		}
	})
	return n
}

func (n *outageNATS) url() string { return "nats://" + net.JoinHostPort(n.host, n.prt) }

// start runs the server and waits until JetStream answers.
func (n *outageNATS) start() {
	n.t.Helper()
	n.mu.Lock()
	n.cmd = exec.Command(n.bin, "-js", "-sd", n.dir, "-a", n.host, "-p", n.prt)
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	err := n.cmd.Start()
	n.mu.Unlock()
	if err != nil {
		n.t.Fatal(err)
	}
	eventually(n.t, 20*time.Second, "nats-server with JetStream to accept connections", func() (bool, string) {
		nc, err := nats.Connect(n.url())
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// kill sends SIGKILL: no flush, no goodbye to the clients.
func (n *outageNATS) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// outageAnswer is the last answer one caller got for one key.
type outageAnswer struct {
	kind    string // "req", "evt" (with a key), "plain" (no key)
	k       string
	status  int
	code    string
	runID   string // as answered (request triggers)
	eventID string
	tries   int
}

// TestDefect2IdempotencyKeyDuringNATSOutage: Idempotency-Key callers that
// retry each key until they get a 2xx, while nats-server is killed with
// SIGKILL mid-calls and started again on the same store. Every key must
// have run exactly once — none lost (a replayed 202 for an event never
// stored), none twice (a publish that timed out, then landed from the
// client's reconnect buffer beside the retry's event). Callers without a
// key are told 503 either "not stored" (then it must never run) or
// "outcome unknown" with the event id (then it may run, once).
func TestDefect2IdempotencyKeyDuringNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server and kills it")
	}
	begin := time.Now()
	ns := startOutageNATS(t)
	const adminToken = "adm_outage_test_token"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := app.Start(ctx, app.Options{
		Name: "outage", NATSURL: ns.url(), HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminToken: adminToken, AllowLoopback: true, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = sys.Stop(ctx)
	})
	a := newAPI(sys.HTTPAddr())
	l := newListener(t)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev", adminToken, map[string]any{"name": "Dev"})
	var created struct{ Key string }
	a.must(t, http.StatusCreated, "POST", "/v1/projects/dev/api-keys", adminToken, nil).decode(t, &created)
	key := created.Key
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, outageDocs(l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{}})

	// Callers: request triggers with a key, App Events with a key, App
	// Events without one. Each keyed caller retries its key until a 2xx.
	workers := []string{"req", "req", "req", "req", "evt", "evt", "plain", "plain"}
	var (
		stop     atomic.Bool
		done     atomic.Int64                         // keys answered 2xx
		failures atomic.Int64                         // failed calls (5xx or transport)
		lastFail = make([]atomic.Int64, len(workers)) // per worker, unix nanos
		mu       sync.Mutex
		answers  []outageAnswer
		wg       sync.WaitGroup
	)
	for w, kind := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				ans := outageAnswer{kind: kind, k: fmt.Sprintf("%s-w%d-%d", kind, w, i)}
				url, hdr := a.base+"/v1/projects/dev/events", []string{"Authorization", "Bearer " + key, "X-Switchboard-User", "u1"}
				body, _ := json.Marshal(map[string]any{"name": "Outage Ping", "payload": map[string]any{"k": ans.k}})
				switch kind {
				case "req":
					url = a.base + "/v1/projects/dev/workflows/outage-req/trigger"
					body, _ = json.Marshal(map[string]any{"k": ans.k})
					hdr = append(hdr, "Idempotency-Key", ans.k)
				case "evt":
					hdr = append(hdr, "Idempotency-Key", ans.k)
				}
				for {
					ans.tries++
					cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
					r, err := rqDo(cctx, "POST", url, body, hdr...)
					ccancel()
					if err == nil {
						ans.status, ans.code = r.Status, r.errCode()
						var ids struct{ ID, RunID, EventID string }
						_ = json.Unmarshal(r.Body, &ids)
						ans.runID, ans.eventID = ids.RunID, ids.EventID
						if ids.ID != "" {
							ans.eventID = ids.ID
						}
						if ans.code == "outcome_unknown" {
							var e apiError
							_ = json.Unmarshal(r.Body, &e)
							var d struct{ EventID string }
							_ = json.Unmarshal(e.Error.Details, &d)
							ans.eventID = d.EventID
						}
					}
					if err == nil && r.Status < 300 {
						done.Add(1)
						break
					}
					failures.Add(1)
					lastFail[w].Store(time.Now().UnixNano())
					// A caller without a key does not retry: its answer is
					// what the test checks.
					if kind == "plain" || (err == nil && r.Status < 500) || stop.Load() && ans.tries > 200 {
						break
					}
					time.Sleep(20 * time.Millisecond) // the caller's retry pace
				}
				if ans.status >= 300 {
					time.Sleep(20 * time.Millisecond) // the next plain event, at the same pace
				}
				mu.Lock()
				answers = append(answers, ans)
				mu.Unlock()
			}
		}()
	}

	// The first outage is a bounce — restarted as soon as the process is
	// gone — so calls in flight lose their acks and their retries meet
	// events that may be stored. The second lasts until every caller saw a
	// call fail: the calls in flight at the kill time out, and what a
	// client buffered meanwhile is flushed on the reconnect after its
	// callers were answered. (The bounce comes first because deliveries in
	// flight at a kill come back only after the consumers' AckWait, 30 s,
	// which bounds the test's length from the last kill on.)
	const kills = 2
	for k := range kills {
		long := k == kills-1
		before := done.Load()
		eventually(t, 20*time.Second, "keys to be answered before the kill", func() (bool, string) {
			return done.Load() >= before+30, fmt.Sprintf("%d answered", done.Load()-before)
		})
		f0 := failures.Load()
		ns.kill()
		killedAt := time.Now()
		// Keep the server down until every caller has had a call fail —
		// the ones in flight at the kill once their claim or publish timed
		// out — so that whatever a client buffered meanwhile is flushed on
		// the reconnect, after the callers were answered.
		eventually(t, 20*time.Second, "every caller to see a failed call during the outage", func() (bool, string) {
			if !long {
				return true, ""
			}
			waiting := 0
			for w := range lastFail {
				if lastFail[w].Load() < killedAt.UnixNano() {
					waiting++
				}
			}
			return waiting == 0, fmt.Sprintf("%d callers without a failure yet", waiting)
		})
		ns.start()
		t.Logf("kill %d at %s: nats-server down for %s, %d failed calls meanwhile", k+1, killedAt.Sub(begin).Round(time.Millisecond),
			time.Since(killedAt).Round(time.Millisecond), failures.Load()-f0)
	}
	after := done.Load()
	eventually(t, 30*time.Second, "keys to be answered after the last restart", func() (bool, string) {
		return done.Load() >= after+30, fmt.Sprintf("%d answered", done.Load()-after)
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("callers done at %s", time.Since(begin).Round(time.Millisecond))

	// Let every stored trigger and run be processed: the router's and the
	// executors' consumers have nothing pending or unacknowledged.
	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "TRIGGERS and RUNS consumers to drain", func() (bool, string) { return consumersDrained(js) })

	t.Logf("consumers drained at %s", time.Since(begin).Round(time.Millisecond))

	// What ran: distinct run ids per key at the listener. (One run may call
	// the listener twice if its step was re-executed after a lost
	// checkpoint; that is not an event stored twice.)
	ran := map[string]map[string]bool{}
	for _, r := range l.all() {
		k, _ := r.Body["k"].(string)
		run, _ := r.Body["run"].(string)
		if ran[k] == nil {
			ran[k] = map[string]bool{}
		}
		ran[k][run] = true
	}
	var keys, lost, twice, wrongID, plain, plainRefused, plainUnknown, refusedRan, unknownRan, unknownTwice, noID, tries int
	for _, ans := range answers {
		n := len(ran[ans.k])
		tries += ans.tries
		switch {
		case ans.kind == "plain":
			plain++
			switch {
			case ans.status < 300:
				if n != 1 {
					t.Errorf("event %s without key answered %d ran %d times", ans.k, ans.status, n)
				}
			case ans.code == "outcome_unknown":
				plainUnknown++
				if ans.eventID == "" {
					noID++
				}
				if n > 0 {
					unknownRan++
				}
				if n > 1 {
					unknownTwice++
				}
			default:
				plainRefused++
				if n > 0 {
					refusedRan++
					t.Errorf("event %s without key: answered %d %s (%s tries) yet it ran", ans.k, ans.status, ans.code, fmt.Sprint(ans.tries))
				}
			}
		case ans.status < 300:
			keys++
			switch {
			case n == 0:
				lost++
				t.Errorf("key %s (%s) answered %d after %d tries never ran", ans.k, ans.kind, ans.status, ans.tries)
			case n > 1:
				twice++
				t.Errorf("key %s (%s) ran %d times: %v", ans.k, ans.kind, n, ran[ans.k])
			case ans.kind == "req" && !ran[ans.k][ans.runID]:
				wrongID++
				t.Errorf("key %s answered run %s, but run %v ran", ans.k, ans.runID, ran[ans.k])
			}
		default:
			t.Errorf("key %s (%s) gave up after %d tries: %d %s", ans.k, ans.kind, ans.tries, ans.status, ans.code)
		}
	}
	if noID > 0 {
		t.Errorf("%d outcome_unknown answers without the event id", noID)
	}
	t.Logf("%d keys (%d calls), %d kills: %d lost, %d ran twice, %d answered another run id; "+
		"%d events without key: %d refused (%d of them ran), %d outcome unknown (%d ran, %d twice); %s",
		keys, tries, kills, lost, twice, wrongID, plain, plainRefused, refusedRan, plainUnknown, unknownRan, unknownTwice,
		time.Since(begin).Round(time.Millisecond))
}

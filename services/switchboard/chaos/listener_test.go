//go:build chaos

package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// delivery is one request a workflow step made to the listener. The body
// is templated by the workflow (see documents): the step's name, the run
// id, the event id and the payload id, which is also the Idempotency-Key
// where the scenario sends one.
type delivery struct {
	Step  string    `json:"step"`
	Run   string    `json:"run"`
	Event string    `json:"event"`
	Key   string    `json:"key"`
	Auth  string    `json:"-"`
	At    time.Time `json:"at"`
}

// listener is the real HTTP server on 127.0.0.1 the workflows' http steps
// post to. It records every delivery, retries and duplicates included, and
// always answers 200: the suite wants every failure to come from a crash,
// never from the listener. It answers after hold, as a remote API would:
// without that latency a run takes a few milliseconds and a kill almost
// never finds one in flight.
type listener struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []delivery
	last time.Time
	bad  int // bodies that were not a delivery
}

// listenerHold is how long the listener takes to answer each delivery.
const listenerHold = 100 * time.Millisecond

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		raw, _ := io.ReadAll(r.Body)
		var d delivery
		err := json.Unmarshal(raw, &d)
		d.At, d.Auth = at, r.Header.Get("Authorization")
		l.mu.Lock()
		if err != nil || d.Run == "" || d.Step == "" {
			l.bad++
		} else {
			l.got = append(l.got, d)
		}
		l.last = at
		l.mu.Unlock()
		// The remote API's latency (see listener), not a synchronization.
		time.Sleep(listenerHold)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

// deliveries returns a copy of every delivery so far.
func (l *listener) deliveries() []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]delivery(nil), l.got...)
}

// quietFor reports whether nothing arrived for at least d.
func (l *listener) quietFor(d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.last) >= d
}

func (l *listener) malformed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bad
}

// ---- the workflow ------------------------------------------------------------

const (
	eventName  = "Chaos Tick"
	workflowID = "chaos-two-steps"
	project    = "dev"
	user       = "u1"
	credToken  = "tok-chaos"
)

// steps are the workflow's steps in order. Two of them, so that a run
// resumed after a crash (second step again) can be told from a finished
// run executed again (a step after the succeeded snapshot).
func steps() []string { return []string{"first", "second"} }

// documents declares the event, a bearer integration and the two-step
// workflow posting {step, run, event, key} to the listener.
func documents(url string) string {
	var b strings.Builder
	b.WriteString(`kind: AppEvent
name: ` + eventName + `
schema:
  type: object
  required: [id]
  properties:
    id: {type: string}
---
kind: Integration
id: chaos
name: Chaos listener
auth: {type: bearer}
---
kind: Workflow
id: ` + workflowID + `
integration: chaos
enabledByDefault: true
trigger: {type: app_event, event: ` + eventName + `}
steps:
`)
	for _, s := range steps() {
		fmt.Fprintf(&b, `  - id: %[1]s
    type: http
    method: POST
    url: %[2]s/deliver/%[1]s
    auth: credential
    json:
      step: %[1]s
      run: "{{ run.id }}"
      event: "{{ trigger.id }}"
      key: "{{ trigger.payload.id }}"
    retry: {attempts: 5, backoff: 200ms}
`, s, url)
	}
	return b.String()
}

// ---- the API -----------------------------------------------------------------

// api calls one Switchboard HTTP address. It never fails the test itself:
// the load generators run on their own goroutines and count errors.
type api struct {
	base   string
	client *http.Client
}

func newAPI(addr string) api {
	// A short timeout: a request to a process that was just killed must
	// not hold a load generator for long.
	return api{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
}

// call sends body (a string as is, anything else as JSON) with token as
// bearer and hdr as extra header pairs.
func (a api) call(method, path, token string, body any, hdr ...string) (int, []byte, error) {
	st, raw, _, err := a.callH(method, path, token, body, hdr...)
	return st, raw, err
}

// callH is call, also returning the answer's header.
func (a api) callH(method, path, token string, body any, hdr ...string) (int, []byte, http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp.Header, err
}

// must calls and fails the test unless the answer is want; out, if set,
// receives the JSON body.
func (a api) must(t *testing.T, want int, method, path, token string, body, out any, hdr ...string) {
	t.Helper()
	st, raw, err := a.call(method, path, token, body, hdr...)
	if err != nil || st != want {
		t.Fatalf("%s %s: %d %s %v, want %d", method, path, st, raw, err, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

// setupTenant applies the documents and connects user u1 with credential
// c1, whose token the http steps send (checked at the listener).
func setupTenant(t *testing.T, a api, key, listenerURL string) {
	t.Helper()
	a.must(t, http.StatusOK, "POST", "/v1/projects/"+project+"/apply", key, documents(listenerURL), nil)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/"+project+"/users/"+user, key, map[string]any{"metadata": map[string]any{}}, nil)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/"+project+"/users/"+user+"/credentials/c1", key,
		map[string]any{"integration": "chaos", "secret": map[string]any{"accessToken": credToken}}, nil)
}

// warmUp sends an event with ?wait=routed until one is routed to one run,
// so the load starts on a system that routes (a router whose catalog still
// missed the workflow would make every event look lost). The accepted
// warm-up event is recorded in res and checked like the others.
func warmUp(t *testing.T, a api, key, scenario string, res *loadResult) {
	t.Helper()
	n := 0
	poll(t, 20*time.Second, "a warm-up event routed to one run", func() (bool, string) {
		n++
		id := fmt.Sprintf("%s-warmup-%d", scenario, n)
		st, raw, err := a.call("POST", "/v1/projects/"+project+"/events?wait=routed", key,
			map[string]any{"name": eventName, "user": user, "payload": map[string]any{"id": id}})
		if err != nil {
			return false, err.Error()
		}
		var acc struct {
			ID     string   `json:"id"`
			RunIDs []string `json:"runIds"`
		}
		_ = json.Unmarshal(raw, &acc)
		if st != http.StatusAccepted || len(acc.RunIDs) != 1 {
			return false, fmt.Sprintf("%d %s", st, raw)
		}
		res.record(-1, id, st, acc.ID, false, nil)
		return true, ""
	})
}

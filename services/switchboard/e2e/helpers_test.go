package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/testlog"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// ---- logging ---------------------------------------------------------------

// testLogger sends warnings and errors to the test log until the test ends.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// ---- dev system ------------------------------------------------------------

// startDev starts a dev system on a fresh temp dir (unless opts.DataDir is
// set) with HTTP on a random 127.0.0.1 port, and stops it at cleanup. stop
// stops it earlier (once).
func startDev(t testing.TB, opts dev.Options) (sys *dev.System, stop func()) {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	sys, err = dev.Start(ctx, opts)
	if err != nil {
		t.Fatalf("dev.Start: %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { stopDev(sys) }) }
	t.Cleanup(stop)
	return sys, stop
}

func stopDev(sys *dev.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys.Stop(ctx)
}

// ---- HTTP client -----------------------------------------------------------

var httpClient = &http.Client{Timeout: 30 * time.Second}

// api calls one Switchboard HTTP endpoint set.
type api struct {
	base string // http://host:port
}

func newAPI(addr string) api { return api{base: "http://" + addr} }

// response is what a call returned.
type response struct {
	Status int
	Body   []byte
	Header http.Header
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// decode unmarshals the body into v, failing the test if it is not JSON.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %d is not the expected JSON (%v): %s", r.Status, err, r.Body)
	}
}

// errCode is the response's error code ("" when the body is not an error).
func (r response) errCode() string {
	var e apiError
	if json.Unmarshal(r.Body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

type apiError struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Field   string          `json:"field"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

// call sends method path with token as bearer (none when empty). body may
// be nil, a string, []byte, an io.Reader (sent as is, chunked) or any value
// (sent as JSON). hdr holds extra header name/value pairs.
func (a api) call(t testing.TB, method, path, token string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	length := int64(-1)
	switch b := body.(type) {
	case nil:
		length = 0
	case string:
		rd, length = strings.NewReader(b), int64(len(b))
	case []byte:
		rd, length = bytes.NewReader(b), int64(len(b))
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd, length = bytes.NewReader(j), int64(len(j))
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.ContentLength = length
	if length > 0 || length == -1 {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Status: resp.StatusCode, Body: raw, Header: resp.Header}
}

// must calls and fails the test unless the status is want.
func (a api) must(t testing.TB, want int, method, path, token string, body any, hdr ...string) response {
	t.Helper()
	r := a.call(t, method, path, token, body, hdr...)
	if r.Status != want {
		t.Fatalf("%s %s: got %s, want status %d", method, path, r, want)
	}
	return r
}

// expectError checks status and error code of r.
func expectError(t testing.TB, r response, status int, code string) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("got %s, want a JSON error body (%v)", r, err)
	}
	if r.Status != status || e.Error.Code != code {
		t.Fatalf("got %s, want %d with code %q", r, status, code)
	}
	if e.Error.Message == "" {
		t.Errorf("error %q has no message: %s", code, r.Body)
	}
	return e
}

// ---- polling ---------------------------------------------------------------

// eventually polls cond every 20ms until it returns true or timeout passes,
// then fails with cond's last explanation.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- the listener the workflows call ----------------------------------------

// received is one request the listener got.
type received struct {
	Path string
	Auth string
	Body map[string]any
	Raw  string
}

// listener is the local HTTP server the test workflows post to. It answers
// 200 with a small JSON body.
type listener struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newListener(t testing.TB) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rec := received{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Raw: string(raw)}
		_ = json.Unmarshal(raw, &rec.Body)
		l.mu.Lock()
		l.reqs = append(l.reqs, rec)
		n := len(l.reqs)
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"contact-%d","ok":true}`, n)
	}))
	t.Cleanup(l.Close)
	return l
}

// all returns a copy of every request so far.
func (l *listener) all() []received {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]received(nil), l.reqs...)
}

// matching returns the requests whose JSON body has field == value.
func (l *listener) matching(field, value string) []received {
	var out []received
	for _, r := range l.all() {
		if v, _ := r.Body[field].(string); v == value {
			out = append(out, r)
		}
	}
	return out
}

// waitFor waits until n requests have body field == value, and returns them.
func (l *listener) waitFor(t testing.TB, field, value string, n int) []received {
	t.Helper()
	var got []received
	eventually(t, 20*time.Second, fmt.Sprintf("%d request(s) with %s=%q at the listener", n, field, value), func() (bool, string) {
		got = l.matching(field, value)
		return len(got) >= n, fmt.Sprintf("have %d; all requests: %+v", len(got), l.all())
	})
	return got
}

// ---- documents ---------------------------------------------------------------

const (
	eventName  = "Contact Created"
	workflowID = "contact-to-crm"
)

// documents is the walk-through's apply body: an app event with a schema, a
// bearer integration, and a workflow posting a templated body to url with
// the credential's token.
func documents(url string) string {
	return `kind: AppEvent
name: Contact Created
schema:
  type: object
  required: [email]
  properties:
    email: {type: string}
---
kind: Integration
id: crm
name: Example CRM
auth: {type: bearer}
---
kind: Workflow
id: contact-to-crm
integration: crm
enabledByDefault: true
trigger: {type: app_event, event: Contact Created}
steps:
  - id: create
    type: http
    method: POST
    url: ` + url + `/contacts
    auth: credential
    json:
      email: "{{ trigger.payload.email }}"
      owner: "{{ user.id }}"
      run: "{{ run.id }}"
      event: "{{ trigger.id }}"
    retry: {attempts: 3, backoff: 100ms}
`
}

// ---- runs and decisions ------------------------------------------------------

type runList struct {
	Runs       []runs.Run `json:"runs"`
	NextCursor string     `json:"nextCursor"`
}

// getDecision polls GET /events/{id} until the decision record is there.
func getDecision(t testing.TB, a api, key, eventID string) runs.Decision {
	t.Helper()
	var d runs.Decision
	eventually(t, 20*time.Second, "decision record of "+eventID, func() (bool, string) {
		r := a.call(t, "GET", "/v1/projects/dev/events/"+eventID, key, nil)
		if r.Status != http.StatusOK {
			return false, r.String()
		}
		r.decode(t, &d)
		return true, ""
	})
	return d
}

// waitRun polls GET /runs/{id} until the run reaches a final status.
func waitRun(t testing.TB, a api, key, runID string) runs.Run {
	t.Helper()
	var run runs.Run
	eventually(t, 20*time.Second, "run "+runID+" to finish", func() (bool, string) {
		r := a.call(t, "GET", "/v1/projects/dev/runs/"+runID, key, nil)
		if r.Status != http.StatusOK {
			return false, r.String()
		}
		run = runs.Run{}
		r.decode(t, &run)
		return run.Status.Terminal(), r.String()
	})
	return run
}

// streamMsgs is the number of messages stored in stream name.
func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State.Msgs
}

// eventAccepted is the 202 body of the events API.
type eventAccepted struct {
	ID     string   `json:"id"`
	Status string   `json:"status"`
	RunIDs []string `json:"runIds"`
}

// setupWalkthrough applies the documents against l and connects u1/c1.
func setupWalkthrough(t testing.TB, a api, key string, l *listener) {
	t.Helper()
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, documents(l.URL))
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{"plan": "pro"}})
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1/credentials/c1", key,
		map[string]any{"integration": "crm", "secret": map[string]any{"accessToken": "tok-c1"}})
}

// accepted decodes a 202 answer of the events API.
func accepted(t testing.TB, r response) eventAccepted {
	t.Helper()
	var acc eventAccepted
	r.decode(t, &acc)
	if acc.ID == "" {
		t.Fatalf("202 without an event id: %s", r)
	}
	return acc
}

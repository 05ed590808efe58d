package e2e

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/egress"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/services/router"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// ---- raw HTTP, safe from any goroutine ----------------------------------------

// rqClient is shared by the request-trigger tests; it keeps enough idle
// connections for the concurrent ones.
var rqClient = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second},
}

// rqDo sends one request and returns its answer without touching testing.T,
// so goroutines may call it. hdr holds header name/value pairs; a body with
// no Content-Type in hdr is sent as application/json.
func rqDo(ctx context.Context, method, url string, body []byte, hdr ...string) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, err
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rqClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Body: raw, Header: resp.Header}, nil
}

// rqCall is rqDo failing the test on a transport error.
func rqCall(t testing.TB, method, url string, body []byte, hdr ...string) response {
	t.Helper()
	r, err := rqDo(context.Background(), method, url, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// rqJSON marshals v.
func rqJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rqObject decodes a JSON object body.
func rqObject(t testing.TB, r response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object (%v): %s", r.Status, err, r.Body)
	}
	return m
}

// rqMultipart builds a multipart/form-data body: fields as plain parts and
// files as name -> (filename, content type, data).
type rqFile struct {
	Field, Filename, ContentType string
	Data                         []byte
}

func rqMultipart(t testing.TB, fields [][2]string, files ...rqFile) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, f.Field, f.Filename))
		h.Set("Content-Type", f.ContentType)
		p, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), buf.Bytes()
}

// ---- run history ----------------------------------------------------------------

// rqListRuns lists the runs of workflow w.
func rqListRuns(t testing.TB, a api, key, w string) []runs.Run {
	t.Helper()
	var list runList
	a.must(t, http.StatusOK, "GET", "/v1/projects/dev/runs?limit=500&workflow="+w, key, nil).decode(t, &list)
	return list.Runs
}

// rqWaitRunStatus polls GET path (a run URL) until the run is final.
func rqWaitRunAt(t testing.TB, a api, key, path string) runs.Run {
	t.Helper()
	var run runs.Run
	eventually(t, 20*time.Second, "run at "+path+" to finish", func() (bool, string) {
		r := a.call(t, "GET", path, key, nil)
		if r.Status != http.StatusOK {
			return false, r.String()
		}
		run = runs.Run{}
		r.decode(t, &run)
		return run.Status.Terminal(), r.String()
	})
	return run
}

// rqStepCount counts the recorded steps with id.
func rqStepCount(run runs.Run, id string) int {
	n := 0
	for _, s := range run.Steps {
		if s.ID == id {
			n++
		}
	}
	return n
}

// rqDecisions reads every decision record of project dev from RUN_EVENTS.
func rqDecisions(t testing.TB, js jetstream.JetStream) []runs.Decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		t.Fatalf("stream %s: %v", subjects.StreamRunEvents, err)
	}
	filter := subjects.Decisions(dev.Project)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	var out []runs.Decision
	for uint64(len(out)) < total {
		batch, err := c.Fetch(int(total)-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch decisions: %v", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var d runs.Decision
			if err := json.Unmarshal(m.Data(), &d); err != nil {
				t.Fatalf("decision record is not JSON: %v", err)
			}
			out = append(out, d)
		}
		if got == 0 {
			break
		}
	}
	return out
}

// rqWaitDecision waits until a decision record of workflow w (a request
// trigger names its workflow) has a candidate skipped for reason.
func rqWaitDecision(t testing.TB, js jetstream.JetStream, w, reason string) runs.Decision {
	t.Helper()
	var found runs.Decision
	eventually(t, 10*time.Second, fmt.Sprintf("a decision record of %s with reason %s", w, reason), func() (bool, string) {
		ds := rqDecisions(t, js)
		for _, d := range ds {
			if d.Name != w {
				continue
			}
			for _, c := range d.Candidates {
				if c.Reason == reason && c.Outcome == runs.OutcomeSkipped {
					found = d
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d decision records, none matching", len(ds))
	})
	return found
}

// rqSubjectMsgs counts the messages stored on one subject of a stream.
func rqSubjectMsgs(t testing.TB, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Subjects[subject]
}

// rqSetup applies docs and creates user u1, on a dev-like API.
func rqSetup(t testing.TB, a api, key, docs string) {
	t.Helper()
	a.must(t, http.StatusOK, "POST", "/v1/projects/dev/apply", key, docs)
	a.must(t, http.StatusOK, "PUT", "/v1/projects/dev/users/u1", key, map[string]any{"metadata": map[string]any{"plan": "pro"}})
}

// rqConnect opens an outside NATS connection, closed at cleanup.
func rqConnect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	if url == "" {
		t.Fatal("the system has no NATS client URL (set NATSAddr)")
	}
	nc, err := nats.Connect(url, nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ---- a system composed by hand --------------------------------------------------

// rqStack is one NATS server with project dev on it, where a test starts
// routers and front-end processes one by one, so it can stop and start
// routers and run several ingress instances on one NATS.
type rqStack struct {
	t       testing.TB
	dir     string
	ns      *broker.Embedded
	nc      *nats.Conn
	js      jetstream.JetStream
	cat     *catalog.Catalog
	users   *directory.Directory
	apiKey  string
	signing *rsa.PrivateKey

	mu       sync.Mutex
	catalogs []*catalog.Catalog // every catalog copy, the stack's first
}

// rqStartStack starts an embedded NATS (listening on 127.0.0.1 for outside
// clients), provisions it, and creates project dev with an API key and
// signing key. No router and no front end yet.
func rqStartStack(t testing.TB) *rqStack {
	t.Helper()
	log := testLogger(t)
	s := &rqStack{t: t, dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := brokertest.StartWith(t, broker.EmbeddedOptions{DataDir: s.dir, ListenAddr: "127.0.0.1:0"})
	s.ns, s.nc, s.js = srv.Embedded, srv.NC, srv.JS
	// Registered after StartWith, so it runs before the connection is closed
	// and the server shut down.
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		broker.Drain(dctx, s.nc)
		dcancel()
	})
	s.cat = brokertest.CatalogWith(t, catalog.Options{JS: s.js, Logger: log})
	s.catalogs = []*catalog.Catalog{s.cat}
	s.users = brokertest.DirectoryWith(t, directory.Options{JS: s.js, Logger: log})
	var err error
	if s.signing, _, err = auth.LoadOrCreateSigningKey(s.dir); err != nil {
		t.Fatal(err)
	}
	if s.apiKey, err = auth.GenerateAPIKey(); err != nil {
		t.Fatal(err)
	}
	_, rev, err := s.cat.UpdateProject(ctx, dev.Project, func(p *catalog.Project) error {
		p.Name = "Request tests"
		p.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&s.signing.PublicKey)}
		p.APIKeys = append(p.APIKeys, catalog.APIKey{ID: "rq", Hash: auth.HashAPIKey(s.apiKey), Prefix: s.apiKey[:10], CreatedAt: time.Now().UTC()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err = s.cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	return s
}

// token mints a user token of project dev.
func (s *rqStack) token(user string) string {
	s.t.Helper()
	tok, err := auth.MintUserToken(s.signing, dev.Project, user, time.Hour, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// rqRouter is a started router with an idempotent stop.
type rqRouter struct {
	svc  *router.Service
	once sync.Once
}

// stop stops the router, waiting for in-flight runs until ctx ends.
func (r *rqRouter) stop(ctx context.Context) {
	r.once.Do(func() { _ = r.svc.Stop(ctx) })
}

// startRouter starts a router (router + executor) on the stack's connection
// and catalog; it is stopped at cleanup unless stopped before.
func (s *rqStack) startRouter(t testing.TB, opts router.Options) *rqRouter {
	t.Helper()
	opts.NC, opts.JS, opts.Catalog, opts.Directory = s.nc, s.js, s.cat, s.users
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if opts.Triggers, err = trigger.New(ctx, trigger.Options{JS: s.js, Budgets: wire.FromConn(s.nc)}); err != nil {
		t.Fatal(err)
	}
	if opts.Blobs, err = blob.Open(ctx, blob.Options{JS: s.js, Budgets: wire.FromConn(s.nc)}); err != nil {
		t.Fatal(err)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = egress.NewClient(egress.Options{AllowLoopback: true})
	}
	svc, err := router.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := &rqRouter{svc: svc}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.stop(ctx)
	})
	return r
}

// startIngress starts one more front-end process the way `switchboard
// serve --role ingress,connection-lifecycle,history` does, through the one
// composition root: its own NATS connection, catalog copy, read model and
// HTTP server. It returns the API on it.
func (s *rqStack) startIngress(t testing.TB, maxBody int64) api {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.mu.Lock()
	name := fmt.Sprintf("rq-ingress-%d", len(s.catalogs))
	s.mu.Unlock()
	a, err := app.Start(ctx, app.Options{
		Roles: []string{app.RoleIngress, app.RoleLifecycle, app.RoleHistory},
		Name:  name, NATSURL: s.ns.ClientURL(), HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		MaxBody: maxBody, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("%s: stop: %v", name, err)
		}
	})
	s.mu.Lock()
	s.catalogs = append(s.catalogs, a.Catalog)
	s.mu.Unlock()
	return newAPI(a.HTTPAddr())
}

// syncCatalogs waits until every catalog copy has caught up with the
// newest revision any of them has seen, so a document applied through one
// ingress is known to all of them (and to the router).
func (s *rqStack) syncCatalogs(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cats := append([]*catalog.Catalog(nil), s.catalogs...)
	s.mu.Unlock()
	var rev uint64
	for _, c := range cats {
		rev = max(rev, c.Revision())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range cats {
		if err := c.WaitRevision(ctx, rev); err != nil {
			t.Fatalf("catalog copy did not reach revision %d: %v", rev, err)
		}
	}
}

// rqCounter is a goroutine-safe counter with a channel signalled on the
// first increment.
type rqCounter struct {
	mu    sync.Mutex
	n     int
	first chan struct{}
}

func newRqCounter() *rqCounter { return &rqCounter{first: make(chan struct{})} }

func (c *rqCounter) inc() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n == 1 {
		close(c.first)
	}
	return c.n
}

func (c *rqCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// rqWaitChan waits for ch or fails after d.
func rqWaitChan(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// rqNormalize passes v through JSON (numbers become float64, structs maps).
func rqNormalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	return out
}

// rqJSONEqual compares two values as JSON.
func rqJSONEqual(a, b any) bool { return reflect.DeepEqual(rqNormalize(a), rqNormalize(b)) }

package receiver_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/verify"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

const (
	project = "acme"
	apiKey  = "sk_test_receiver_key_0123456789"
	// maxBody is the receiver's cap in these tests.
	maxBody = 64 << 10
)

// env is a receiver on a real embedded NATS and a real HTTP server on
// 127.0.0.1, with the catalog, directory and trigger publisher it uses in
// production.
type env struct {
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:port
	js   jetstream.JetStream
	cat  *catalog.Catalog
	dir  *directory.Directory
	now  func() time.Time
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with extra routes on the same server (benchmarks).
func newEnvWith(t *testing.T, extra func(*echo.Echo, *nats.Conn), bodyCap ...int64) *env {
	t.Helper()
	srv := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cat := brokertest.Catalog(t, srv.JS)
	dir := brokertest.Directory(t, srv.JS)
	_, rev, err := cat.UpdateProject(ctx, project, func(p *catalog.Project) error {
		p.ID = project
		p.APIKeys = []catalog.APIKey{{ID: "k", Hash: auth.HashAPIKey(apiKey), Prefix: "sk_test"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	dedupe, err := srv.JS.KeyValue(ctx, subjects.BucketDedupe)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trigger.New(ctx, trigger.Options{JS: srv.JS, Dedupe: dedupe})
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	hs, err := httpx.NewServer(httpx.ServerOptions{Addr: "127.0.0.1:0", Handler: e, BodyTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + hs.Addr()
	svc, err := receiver.New(receiver.Options{
		Catalog: cat, Directory: dir, Access: access.New(access.Options{Catalog: cat}), Triggers: pub, JS: srv.JS,
		PublicBaseURL: base, MaxBody: append(bodyCap, maxBody)[0],
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(e)
	if extra != nil {
		extra(e, srv.NC)
	}
	go func() { _ = hs.Serve() }()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = hs.Shutdown(sctx)
	})
	return &env{t: t, ctx: ctx, base: base, js: srv.JS, cat: cat, dir: dir, now: time.Now}
}

// apply applies YAML documents to the project.
func (e *env) apply(docs string) {
	e.t.Helper()
	objs, err := workflow.Parse([]byte(docs), project)
	if err != nil {
		e.t.Fatal(err)
	}
	rev, err := e.cat.Apply(e.ctx, objs)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.cat.WaitRevision(e.ctx, rev); err != nil {
		e.t.Fatal(err)
	}
}

// secrets sets an integration's app-level secrets through the API.
func (e *env) secrets(integration string, secrets ...directory.WebhookSecret) {
	e.t.Helper()
	b, _ := json.Marshal(receiver.SecretsRequest{Secrets: secrets})
	req, _ := http.NewRequest(http.MethodPut, e.base+"/v1/projects/"+project+"/integrations/"+integration+"/webhook-secrets", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	res := e.do(req)
	if res.status != http.StatusOK {
		e.t.Fatalf("PUT webhook-secrets: %d %s", res.status, res.body)
	}
	if strings.Contains(res.body, secrets[0].Value) && len(secrets[0].Value) > 0 {
		e.t.Fatalf("the secrets API echoed a secret value: %s", res.body)
	}
}

// credential connects a credential and returns it (with its token).
func (e *env) credential(user, id, integration, account string, fn func(*directory.Credential)) *directory.Credential {
	e.t.Helper()
	cr, _, err := e.dir.UpdateCredential(e.ctx, project, user, id, func(cr *directory.Credential, _ bool) error {
		cr.Integration, cr.ProviderAccountID = integration, account
		if fn != nil {
			fn(cr)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return cr
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req.WithContext(e.ctx))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
		e.t.Fatalf("%s %s answered %d: %s", req.Method, req.URL.Path, res.StatusCode, b)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

// hook builds a delivery to path (relative to /v1/hooks/acme/).
func (e *env) hook(method, path, ctype, body string, header ...string) *http.Request {
	req, err := http.NewRequest(method, e.base+"/v1/hooks/"+project+"/"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// sign signs req like the preset's provider, with our signer (the
// verifier never uses it).
func (e *env) sign(req *http.Request, preset, secret string, at time.Time) *http.Request {
	e.t.Helper()
	s, err := verify.NewSigner(verify.Spec{Preset: preset}, verify.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	vr := verify.Request{Method: req.Method, URL: req.URL.String(), Header: req.Header, Body: body}
	if err := s.Sign(&vr, verify.Secret{Value: secret}, at); err != nil {
		e.t.Fatal(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return req
}

// stored returns the INTEGRATION triggers in TRIGGERS, in order.
func (e *env) stored() []*sbv1.TriggerEvent {
	e.t.Helper()
	st, err := e.js.Stream(e.ctx, subjects.StreamTriggers)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*sbv1.TriggerEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(e.ctx, seq)
		if err != nil || !(strings.HasPrefix(m.Subject, "sb.trigger."+project+".integration.") ||
			strings.HasPrefix(m.Subject, "sb.trigger."+project+".api_resource.")) {
			continue
		}
		ev, err := envelope.Decode(m.Data, m.Header.Get("Content-Type"))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// answer decodes an accepted delivery's answer.
func answer(t *testing.T, r response) receiver.Answer {
	t.Helper()
	var a receiver.Answer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("answer %d %q: %v", r.status, r.body, err)
	}
	return a
}

// errCode is the code of an API error answer.
func errCode(r response) string {
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(r.body), &body)
	return body.Error.Code
}

func hmacHex(secret, content string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(content))
	return hex.EncodeToString(m.Sum(nil))
}

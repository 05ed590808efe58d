package lifecycle_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// eventEnv is a NATS server with a catalog declaring integration hubspot
// (required setting portalId, optional color) and a directory; replicas of
// the lifecycle role are started on their own connections.
type eventEnv struct {
	srv     *brokertest.Server
	cat     *catalog.Catalog
	dir     *directory.Directory
	key     string // API key of project proj
	signing *rsa.PrivateKey
}

const hubspotManifest = `
kind: Integration
id: hubspot
auth: {type: bearer}
settings:
  - {key: portalId, type: string, required: true}
  - {key: color, type: string}
`

func newEventEnv(t *testing.T) *eventEnv {
	t.Helper()
	ctx := t.Context()
	srv := brokertest.Start(t)
	cat := brokertest.Catalog(t, srv.JS)
	key, err := auth.GenerateAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	signing, _, err := auth.LoadOrCreateSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.UpdateProject(ctx, "proj", func(pr *catalog.Project) error {
		pr.APIKeys = append(pr.APIKeys, catalog.APIKey{ID: "k1", Hash: auth.HashAPIKey(key), Prefix: key[:8]})
		pr.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&signing.PublicKey)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	objs, err := workflow.Parse([]byte(hubspotManifest), "proj")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := cat.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	return &eventEnv{srv: srv, cat: cat, dir: brokertest.Directory(t, srv.JS), key: key, signing: signing}
}

// replica starts a lifecycle role on its own connection, as another
// process would; fault (may be nil) gets the connection so it can kill it.
func (e *eventEnv) replica(t *testing.T, name string, fault func(nc *nats.Conn, stage string) error) *lifecycle.Service {
	t.Helper()
	return e.replicaWith(t, name, fault, nil)
}

// replicaWith is replica with edit applied to its Options.
func (e *eventEnv) replicaWith(t *testing.T, name string, fault func(nc *nats.Conn, stage string) error, edit func(*lifecycle.Options)) *lifecycle.Service {
	t.Helper()
	nc, err := e.srv.Embedded.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dedupe, err := js.KeyValue(t.Context(), subjects.BucketDedupe)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trigger.New(t.Context(), trigger.Options{JS: js, Budgets: wire.FromConn(nc), Dedupe: dedupe})
	if err != nil {
		t.Fatal(err)
	}
	opts := lifecycle.Options{Catalog: e.cat, Directory: e.dir, Access: access.New(access.Options{Catalog: e.cat}),
		Logger: slog.New(slog.DiscardHandler), JS: js, Triggers: pub, DeriveAckWait: time.Second}
	if fault != nil {
		lifecycle.SetFault(&opts, func(stage string) error { return fault(nc, stage) })
	}
	if edit != nil {
		edit(&opts)
	}
	svc, err := lifecycle.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	return svc
}

// events returns every lifecycle trigger event stored for project proj.
func (e *eventEnv) events(t *testing.T) []*sbv1.TriggerEvent {
	t.Helper()
	return storedTriggers(t, e.srv,
		"sb.trigger.proj."+subjects.KindIntegrationEnabled+".>", "sb.trigger.proj."+subjects.KindLifecycle+".>")
}

// storedTriggers reads every trigger event TRIGGERS holds on the filters,
// in order.
func storedTriggers(t *testing.T, srv *brokertest.Server, filters ...string) []*sbv1.TriggerEvent {
	t.Helper()
	ctx := t.Context()
	cons, err := srv.JS.OrderedConsumer(ctx, subjects.StreamTriggers, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*sbv1.TriggerEvent
	for pending := info.NumPending; pending > 0; pending-- {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev sbv1.TriggerEvent
		if err := proto.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, &ev)
	}
	return out
}

// settled waits until every user's last record revision has been derived
// and no outbox is left: then no event of those changes is still to come.
func (e *eventEnv) settled(t *testing.T, users ...string) {
	t.Helper()
	ctx := t.Context()
	kv, err := e.srv.JS.KeyValue(ctx, subjects.BucketLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	dirKV, err := e.srv.JS.KeyValue(ctx, subjects.BucketDirectory)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, u := range users {
		key := directory.RecordKey("proj", u)
		for {
			var want uint64
			if ent, err := dirKV.Get(ctx, key); err == nil {
				want = ent.Revision()
			} else if ent, err := dirKV.GetRevision(ctx, key, 0); err == nil {
				want = ent.Revision()
			}
			var st struct {
				Rev    uint64            `json:"rev"`
				Outbox []json.RawMessage `json:"outbox"`
			}
			if ent, err := kv.Get(ctx, "d."+key); err == nil {
				_ = json.Unmarshal(ent.Value(), &st)
			}
			if want > 0 && st.Rev >= want && len(st.Outbox) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: derived rev %d (outbox %d), record rev %d", u, st.Rev, len(st.Outbox), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func names(evs []*sbv1.TriggerEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.User+"/"+ev.Credential+":"+ev.Name)
	}
	return out
}

func connect(t *testing.T, dir *directory.Directory, user, cred string, edit func(*directory.Credential)) uint64 {
	t.Helper()
	_, rev, err := dir.UpdateCredential(t.Context(), "proj", user, cred, func(c *directory.Credential, _ bool) error {
		c.Integration = "hubspot"
		c.ProviderAccountID = "acct-" + user
		if edit != nil {
			edit(c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestLifecycleEventsFromChanges walks one credential through its
// lifecycle with directory writes (not HTTP) and checks the events the
// role derives from the stored changes.
func TestLifecycleEventsFromChanges(t *testing.T) {
	e := newEventEnv(t)
	e.replica(t, "r1", nil)
	dir := e.dir
	ctx := t.Context()

	connect(t, dir, "u1", "c1", func(c *directory.Credential) { c.Secret = map[string]any{"accessToken": "a"}; c.HasSecret = true })
	e.settled(t, "u1")
	if got := names(e.events(t)); len(got) != 0 {
		t.Fatalf("connected without the required setting: %v", got)
	}
	connect(t, dir, "u1", "c1", func(c *directory.Credential) { c.Settings = map[string]any{"portalId": "42"} })
	e.settled(t, "u1")
	evs := e.events(t)
	want := []string{"u1/c1:settings.updated", "u1/c1:integration.enabled"}
	if got := names(evs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	en := evs[1]
	var p lifecycle.Payload
	if err := json.Unmarshal(en.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if en.Kind != sbv1.Kind_INTEGRATION_ENABLED || en.Integration != "hubspot" || en.GetLifecycle().GetEvent() != "integration.enabled" ||
		p.CredentialID != "c1" || p.ProviderAccountID != "acct-u1" || p.Settings["portalId"] != "42" || p.User.ID != "u1" {
		t.Fatalf("enabled event %v payload %+v", en, p)
	}

	connect(t, dir, "u1", "c1", func(c *directory.Credential) { c.Status = directory.CredentialInvalid })
	connect(t, dir, "u1", "c1", func(c *directory.Credential) {
		c.Status = directory.CredentialValid
		c.Secret = map[string]any{"accessToken": "b"}
	})
	e.settled(t, "u1")
	if _, err := dir.DeleteCredential(ctx, "proj", "u1", "c1"); err != nil {
		t.Fatal(err)
	}
	e.settled(t, "u1")
	got := names(e.events(t))[2:]
	// INVALID then VALID may be coalesced when the consumer is behind (the
	// bucket keeps one record per user); either way it ends enabled again.
	want1 := []string{"u1/c1:credential.invalid", "u1/c1:integration.enabled", "u1/c1:integration.disabled"}
	want2 := []string{"u1/c1:credential.refreshed", "u1/c1:integration.disabled"}
	if fmt.Sprint(got) != fmt.Sprint(want1) && fmt.Sprint(got) != fmt.Sprint(want2) {
		t.Fatalf("events %v, want %v (or coalesced %v)", got, want1, want2)
	}
}

// TestLifecycleReplicaCrash kills a lifecycle replica (closes its NATS
// connection) at each step between a credential write and its event, then
// starts another replica: the Integration Enabled event is stored exactly
// once, and so its run (whose id is derived from the event id) starts once.
func TestLifecycleReplicaCrash(t *testing.T) {
	for _, stage := range []string{lifecycle.StageBeforeState, lifecycle.StageAfterState, lifecycle.StageAfterPublish} {
		t.Run(stage, func(t *testing.T) {
			e := newEventEnv(t)
			killed := make(chan struct{})
			var once sync.Once
			e.replica(t, "doomed", func(nc *nats.Conn, s string) error {
				if s != stage {
					return nil
				}
				once.Do(func() { nc.Close(); close(killed) })
				return errors.New("killed")
			})
			connect(t, e.dir, "u1", "c1", func(c *directory.Credential) { c.Settings = map[string]any{"portalId": "42"} })
			select {
			case <-killed:
			case <-time.After(20 * time.Second):
				t.Fatal("the replica never reached " + stage)
			}
			e.replica(t, "survivor", nil)
			e.settled(t, "u1")
			evs := e.events(t)
			if got := names(evs); fmt.Sprint(got) != "[u1/c1:integration.enabled]" {
				t.Fatalf("events %v, want exactly one integration.enabled", got)
			}
		})
	}
}

// TestLifecycleReplicasShareChanges runs two replicas on many users written
// concurrently: each user's Integration Enabled is published once.
func TestLifecycleReplicasShareChanges(t *testing.T) {
	e := newEventEnv(t)
	e.replica(t, "r1", nil)
	e.replica(t, "r2", nil)
	const n = 40
	var users []string
	var wg sync.WaitGroup
	for i := range n {
		u := fmt.Sprintf("u%02d", i)
		users = append(users, u)
		wg.Go(func() {
			connect(t, e.dir, u, "c1", nil)
			connect(t, e.dir, u, "c1", func(c *directory.Credential) { c.Settings = map[string]any{"portalId": "1"} })
			connect(t, e.dir, u, "c1", func(c *directory.Credential) { c.Settings = map[string]any{"portalId": "1", "color": "x"} })
		})
	}
	wg.Wait()
	e.settled(t, users...)
	count := map[string]int{}
	for _, ev := range e.events(t) {
		if ev.Name == workflow.EventIntegrationEnabled {
			count[ev.User]++
		}
	}
	for _, u := range users {
		if count[u] != 1 {
			t.Errorf("%s: %d integration.enabled events, want 1", u, count[u])
		}
	}
}

// serve mounts svc's routes on a test HTTP server.
func (e *eventEnv) serve(t *testing.T, svc *lifecycle.Service) *env {
	t.Helper()
	ec := httpx.NewEcho(slog.New(slog.DiscardHandler))
	svc.Register(ec)
	srv := httptest.NewServer(ec)
	t.Cleanup(srv.Close)
	return &env{srv: srv, cat: e.cat, dir: e.dir, key: e.key}
}

// TestSettingsCompleteIntegrationEnabled goes through the HTTP API: a
// credential connected without its required setting is not enabled; a
// settings update with wrong types is refused listing every field; the
// required setting saved enables it; DELETE disables it.
func TestSettingsCompleteIntegrationEnabled(t *testing.T) {
	e := newEventEnv(t)
	h := e.serve(t, e.replica(t, "r1", nil))
	const cred = "/v1/projects/proj/users/u1/credentials/c1"
	if r := h.do(t, "PUT", cred, e.key, `{"integration":"hubspot","providerAccountId":"acct-1","secret":{"accessToken":"t"}}`); r.status != 200 {
		t.Fatalf("connect: %d %s", r.status, r.body)
	}
	e.settled(t, "u1")
	if got := names(e.events(t)); len(got) != 0 {
		t.Fatalf("events before the required setting: %v", got)
	}
	tests := []struct {
		name, method, body string
		status             int
		code               string
		fields             []string
	}{
		{"wrong types listed", "PUT", `{"portalId": 42, "color": true, "free": 1}`, 400, "invalid_settings", []string{"settings.color", "settings.portalId"}},
		{"not an object", "PUT", `[1]`, 400, "invalid_json", nil},
		{"optional only", "PUT", `{"color": "red"}`, 200, "", nil},
		{"merge in the required one", "PATCH", `{"portalId": "42"}`, 200, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(t, tt.method, cred+"/settings", e.key, tt.body)
			if r.status != tt.status || r.errorCode(t) != tt.code {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tt.fields != nil {
				var eb struct {
					Error struct {
						Details struct {
							Fields []lifecycle.SettingProblem `json:"fields"`
						} `json:"details"`
					} `json:"error"`
				}
				_ = json.Unmarshal(r.body, &eb)
				var got []string
				for _, f := range eb.Error.Details.Fields {
					got = append(got, f.Field)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
					t.Fatalf("fields %v, want %v (%s)", got, tt.fields, r.body)
				}
			}
		})
	}
	e.settled(t, "u1")
	c, err := e.dir.Credential(t.Context(), "proj", "u1", "c1")
	if err != nil || c.Settings["color"] != "red" || c.Settings["portalId"] != "42" {
		t.Fatalf("stored settings %v (%v)", c, err)
	}
	if r := h.do(t, "DELETE", cred, e.key, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	e.settled(t, "u1")
	got := names(e.events(t))
	// The optional setting and the merge may be coalesced into one change.
	want := "u1/c1:settings.updated u1/c1:integration.enabled u1/c1:integration.disabled"
	if s := strings.Join(got, " "); s != want && s != "u1/c1:settings.updated "+want {
		t.Fatalf("events %v, want [settings.updated] %s", got, want)
	}
	if r := h.do(t, "PUT", cred+"/settings", e.key, `{}`); r.status != 404 {
		t.Fatalf("settings of a removed credential: %d %s", r.status, r.body)
	}
}

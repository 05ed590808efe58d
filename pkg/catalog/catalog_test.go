package catalog_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// ---- fixtures -------------------------------------------------------------

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t testing.TB, c *catalog.Catalog, rev uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
}

func parse(t testing.TB, project, docs string) []workflow.Object {
	t.Helper()
	objs, err := workflow.Parse([]byte(docs), project)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return objs
}

func apply(t testing.TB, c *catalog.Catalog, project, docs string) uint64 {
	t.Helper()
	rev, err := c.Apply(ctxT(t), parse(t, project, docs))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wait(t, c, rev)
	return rev
}

func ids(ws []*workflow.Workflow) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, w.ID)
	}
	return out
}

const docs = `
kind: AppEvent
name: Contact Created
schema: {type: object}
---
kind: AppEvent
name: order.paid
---
kind: Integration
id: crm
auth: {type: bearer}
---
kind: Workflow
id: b-sync
integration: crm
trigger: {type: app_event, event: Contact Created}
steps: [{id: s, type: http, url: "http://x/{{ user.id }}"}]
---
kind: Workflow
id: a-sync
trigger: {type: app_event, event: Contact Created}
steps: [{id: s, type: emit, event: order.paid}]
---
kind: Workflow
id: paid
enabledByDefault: false
trigger: {type: app_event, event: order.paid}
steps: [{id: s, type: emit, event: x}]
---
kind: Workflow
id: hook
trigger: {type: request, methods: [GET], timeout: 5s}
steps: [{id: r, type: response, status: 201}]
`

// ---- tests ----------------------------------------------------------------

func TestApplyThenRead(t *testing.T) {
	c := brokertest.Catalog(t, brokertest.Start(t).JS)
	if c.Revision() != 0 {
		t.Errorf("empty catalog Revision = %d", c.Revision())
	}
	rev := apply(t, c, "acme", docs)
	if rev == 0 || c.Revision() < rev {
		t.Fatalf("rev = %d, Revision = %d", rev, c.Revision())
	}

	if got := ids(c.Workflows("acme")); !reflect.DeepEqual(got, []string{"a-sync", "b-sync", "hook", "paid"}) {
		t.Errorf("Workflows = %v", got)
	}
	w, ok := c.Workflow("acme", "hook")
	if !ok {
		t.Fatal("Workflow(hook) missing")
	}
	// Documents loaded from KV are compiled again.
	if w.RequestTimeout() != 5*time.Second || !w.AllowsMethod("GET") || w.AllowsMethod("POST") || !w.HasResponseStep() {
		t.Errorf("hook = %+v", w)
	}
	if st, err := w.Steps[0].StatusTemplate().Eval(nil); err != nil || st != 201.0 {
		t.Errorf("hook status template = %v, %v", st, err)
	}
	if w, _ := c.Workflow("acme", "b-sync"); w.Steps[0].URLTemplate() == nil || w.Integration != "crm" {
		t.Errorf("b-sync = %+v", w)
	}
	if w, _ := c.Workflow("acme", "paid"); w.IsEnabledByDefault() {
		t.Error("paid is enabled by default")
	}
	if got := ids(c.WorkflowsForEvent("acme", "Contact Created")); !reflect.DeepEqual(got, []string{"a-sync", "b-sync"}) {
		t.Errorf("WorkflowsForEvent(Contact Created) = %v", got)
	}
	if got := ids(c.WorkflowsForEvent("acme", "order.paid")); !reflect.DeepEqual(got, []string{"paid"}) {
		t.Errorf("WorkflowsForEvent(order.paid) = %v", got)
	}
	if got := c.WorkflowsForEvent("acme", "nope"); len(got) != 0 {
		t.Errorf("WorkflowsForEvent(nope) = %v", ids(got))
	}
	ev, ok := c.AppEvent("acme", "Contact Created")
	if !ok || ev.Name != "Contact Created" || ev.Schema == nil {
		t.Errorf("AppEvent = %+v, %v", ev, ok)
	}
	if p := ev.ValidatePayload([]byte(`{"a":1}`)); p != nil {
		t.Errorf("schema compiled from KV rejects a valid payload: %v", p)
	}
	if _, ok := c.AppEvent("acme", "order.paid"); !ok {
		t.Error("AppEvent(order.paid) missing")
	}
	if in, ok := c.Integration("acme", "crm"); !ok || in.Auth.Type != "bearer" {
		t.Errorf("Integration = %+v, %v", in, ok)
	}
	// Other projects are isolated.
	if _, ok := c.Workflow("other", "hook"); ok {
		t.Error("Workflow found in another project")
	}
	if got := c.Workflows("other"); got != nil {
		t.Errorf("Workflows(other) = %v", ids(got))
	}
	if _, ok := c.AppEvent("other", "order.paid"); ok {
		t.Error("AppEvent found in another project")
	}
	if _, ok := c.Integration("other", "crm"); ok {
		t.Error("Integration found in another project")
	}
	if _, ok := c.Project("acme"); ok {
		t.Error("Project(acme) exists though never created")
	}
}

func TestWorkflowsForEventIndex(t *testing.T) {
	c := brokertest.Catalog(t, brokertest.Start(t).JS)
	apply(t, c, "acme", docs)

	steps := []struct {
		name string
		do   func() uint64
		want map[string][]string
	}{
		{"move a-sync to order.paid", func() uint64 {
			return apply(t, c, "acme", "kind: Workflow\nid: a-sync\ntrigger: {type: app_event, event: order.paid}\nsteps: [{id: s, type: emit, event: x}]\n")
		}, map[string][]string{"Contact Created": {"b-sync"}, "order.paid": {"a-sync", "paid"}}},
		{"turn paid into a request workflow", func() uint64 {
			return apply(t, c, "acme", "kind: Workflow\nid: paid\ntrigger: {type: request}\nsteps: [{id: s, type: emit, event: x}]\n")
		}, map[string][]string{"Contact Created": {"b-sync"}, "order.paid": {"a-sync"}}},
		{"delete b-sync", func() uint64 {
			rev, err := c.DeleteWorkflow(ctxT(t), "acme", "b-sync")
			if err != nil {
				t.Fatal(err)
			}
			return rev
		}, map[string][]string{"Contact Created": {}, "order.paid": {"a-sync"}}},
		{"add c-new", func() uint64 {
			return apply(t, c, "acme", "kind: Workflow\nid: c-new\ntrigger: {type: app_event, event: Contact Created}\nsteps: [{id: s, type: emit, event: x}]\n")
		}, map[string][]string{"Contact Created": {"c-new"}, "order.paid": {"a-sync"}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			wait(t, c, s.do())
			for ev, want := range s.want {
				if got := ids(c.WorkflowsForEvent("acme", ev)); !reflect.DeepEqual(got, want) {
					t.Errorf("WorkflowsForEvent(%q) = %v, want %v", ev, got, want)
				}
			}
		})
	}
	if _, ok := c.Workflow("acme", "b-sync"); ok {
		t.Error("deleted workflow still readable")
	}
	if _, err := c.DeleteWorkflow(ctxT(t), "acme", "b-sync"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("second delete = %v, want ErrNotFound", err)
	}
	if _, err := c.DeleteWorkflow(ctxT(t), "acme", "never"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("delete of unknown = %v, want ErrNotFound", err)
	}
	// A deleted workflow can be applied again.
	apply(t, c, "acme", "kind: Workflow\nid: b-sync\ntrigger: {type: app_event, event: Contact Created}\nsteps: [{id: s, type: emit, event: x}]\n")
	if got := ids(c.WorkflowsForEvent("acme", "Contact Created")); !reflect.DeepEqual(got, []string{"b-sync", "c-new"}) {
		t.Errorf("after re-apply = %v", got)
	}
}

var rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

func TestProjectKeys(t *testing.T) {
	c := brokertest.Catalog(t, brokertest.Start(t).JS)
	ctx := ctxT(t)
	k := rsaKeys()
	apiKey, err := auth.GenerateAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	hash := auth.HashAPIKey(apiKey)
	setProject := func(p string, fn func(*catalog.Project)) {
		t.Helper()
		_, rev, err := c.UpdateProject(ctx, p, func(pr *catalog.Project) error { fn(pr); return nil })
		if err != nil {
			t.Fatal(err)
		}
		wait(t, c, rev)
	}
	setProject("acme", func(p *catalog.Project) {
		p.Name = "Acme"
		p.APIKeys = []catalog.APIKey{{ID: "k1", Hash: hash, Prefix: apiKey[:6]}}
		p.UserTokenKeys = []string{auth.EncodePublicKeyPEM(&k[0].PublicKey)}
	})
	p, ok := c.Project("acme")
	if !ok || p.Name != "Acme" || p.ID != "acme" {
		t.Fatalf("Project = %+v, %v", p, ok)
	}
	if owner, ok := c.ProjectForAPIKey(hash); !ok || owner != "acme" {
		t.Errorf("ProjectForAPIKey = %q, %v", owner, ok)
	}
	if _, ok := c.ProjectForAPIKey(auth.HashAPIKey(apiKey + "x")); ok {
		t.Error("unknown key hash resolved")
	}
	if _, ok := c.ProjectForAPIKey(apiKey); ok {
		t.Error("the raw key (not its hash) resolved")
	}
	keys, id1 := c.UserTokenKeys("acme")
	if len(keys) != 1 || !keys[0].Equal(&k[0].PublicKey) || id1 == "" {
		t.Fatalf("UserTokenKeys = %v, %q", keys, id1)
	}

	// Add a second key: the set id changes.
	setProject("acme", func(p *catalog.Project) {
		p.UserTokenKeys = append(p.UserTokenKeys, auth.EncodePublicKeyPEM(&k[1].PublicKey))
	})
	keys, id2 := c.UserTokenKeys("acme")
	if len(keys) != 2 || id2 == id1 {
		t.Errorf("after adding a key: %d keys, id %q (was %q)", len(keys), id2, id1)
	}
	// Retire the first: changes again, and differs from the one-key set of k[0].
	setProject("acme", func(p *catalog.Project) { p.UserTokenKeys = p.UserTokenKeys[1:] })
	keys, id3 := c.UserTokenKeys("acme")
	if len(keys) != 1 || !keys[0].Equal(&k[1].PublicKey) || id3 == id2 || id3 == id1 {
		t.Errorf("after retiring: keys %v, id %q (ids before %q, %q)", keys, id3, id1, id2)
	}
	// A bad PEM is skipped, the good key stays.
	setProject("acme", func(p *catalog.Project) { p.UserTokenKeys = append(p.UserTokenKeys, "not a pem") })
	if keys, id4 := c.UserTokenKeys("acme"); len(keys) != 1 || id4 != id3 {
		t.Errorf("with a bad PEM: %d keys, id %q want %q", len(keys), id4, id3)
	}
	if keys, id := c.UserTokenKeys("nope"); keys != nil || id != "" {
		t.Errorf("UserTokenKeys(nope) = %v, %q", keys, id)
	}

	// Removing the API key removes its lookup.
	setProject("acme", func(p *catalog.Project) { p.APIKeys = nil })
	if _, ok := c.ProjectForAPIKey(hash); ok {
		t.Error("removed API key still resolves")
	}
	// UpdateProject keeps CreatedAt and moves UpdatedAt.
	p2, _ := c.Project("acme")
	if !p2.CreatedAt.Equal(p.CreatedAt) || !p2.UpdatedAt.After(p.UpdatedAt) && !p2.UpdatedAt.Equal(p.UpdatedAt) {
		t.Errorf("timestamps: created %v -> %v, updated %v -> %v", p.CreatedAt, p2.CreatedAt, p.UpdatedAt, p2.UpdatedAt)
	}
}

func TestSecondInstanceSeesSameState(t *testing.T) {
	js := brokertest.Start(t).JS
	c1 := brokertest.Catalog(t, js)
	ctx := ctxT(t)
	apply(t, c1, "acme", docs)
	if _, err := c1.DeleteWorkflow(ctx, "acme", "hook"); err != nil {
		t.Fatal(err)
	}
	_, rev, err := c1.UpdateProject(ctx, "acme", func(p *catalog.Project) error {
		p.APIKeys = []catalog.APIKey{{ID: "k", Hash: "h1"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c1, rev)

	c2 := brokertest.Catalog(t, js) // watches from scratch
	wait(t, c2, rev)
	if c2.Revision() != c1.Revision() {
		t.Errorf("Revision: second %d, first %d", c2.Revision(), c1.Revision())
	}
	compare := func(name string, a, b any) {
		t.Helper()
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s differs:\nfirst  %s\nsecond %s", name, ja, jb)
		}
	}
	compare("Workflows", ids(c1.Workflows("acme")), ids(c2.Workflows("acme")))
	compare("WorkflowsForEvent", ids(c1.WorkflowsForEvent("acme", "Contact Created")), ids(c2.WorkflowsForEvent("acme", "Contact Created")))
	if _, ok := c2.Workflow("acme", "hook"); ok {
		t.Error("second instance sees the deleted workflow")
	}
	p1, _ := c1.Project("acme")
	p2, _ := c2.Project("acme")
	compare("Project", p1, p2)
	if owner, ok := c2.ProjectForAPIKey("h1"); !ok || owner != "acme" {
		t.Errorf("second ProjectForAPIKey = %q, %v", owner, ok)
	}
	ev, ok := c2.AppEvent("acme", "Contact Created")
	if !ok || ev.Schema == nil {
		t.Errorf("second AppEvent = %+v", ev)
	}

	// Both keep following: a write through the second shows in the first.
	rev = apply(t, c2, "acme", "kind: Workflow\nid: late\ntrigger: {type: app_event, event: Contact Created}\nsteps: [{id: s, type: emit, event: x}]\n")
	wait(t, c1, rev)
	if got := ids(c1.WorkflowsForEvent("acme", "Contact Created")); !reflect.DeepEqual(got, []string{"a-sync", "b-sync", "late"}) {
		t.Errorf("first after second's write = %v", got)
	}
}

func TestUnreadableValueIsSkipped(t *testing.T) {
	js := brokertest.Start(t).JS
	ctx := ctxT(t)
	kv, err := js.KeyValue(ctx, subjects.BucketCatalog)
	if err != nil {
		t.Fatal(err)
	}
	// Garbage present before the catalog starts.
	if _, err := kv.Put(ctx, "w.acme.early", []byte("\x00\xffnot json")); err != nil {
		t.Fatal(err)
	}
	c := brokertest.Catalog(t, js)
	if _, ok := c.Workflow("acme", "early"); ok {
		t.Error("garbage workflow loaded")
	}
	// Garbage arriving through the watch, for several kinds of keys.
	var rev uint64
	for _, key := range []string{"w.acme.x", "e.acme.x", "i.acme.x", "u.acme.x", "c.acme.x.y", "p.acme", "w.acme.too.many", "zzz", "q.acme.x"} {
		if rev, err = kv.Put(ctx, key, []byte("{garbage")); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, c, rev)
	if _, ok := c.Workflow("acme", "x"); ok {
		t.Error("garbage workflow x loaded")
	}
	if _, ok := c.Project("acme"); ok {
		t.Error("garbage project loaded")
	}
	// The watch still works: valid writes after the garbage are applied.
	apply(t, c, "acme", docs)
	if got := ids(c.WorkflowsForEvent("acme", "Contact Created")); !reflect.DeepEqual(got, []string{"a-sync", "b-sync"}) {
		t.Errorf("WorkflowsForEvent after garbage = %v", got)
	}
}

// TestGarbageOverValidWorkflow: when a stored workflow is overwritten by an
// unreadable value, the by-id map and the by-event index must agree.
func TestGarbageOverValidWorkflow(t *testing.T) {
	js := brokertest.Start(t).JS
	ctx := ctxT(t)
	c := brokertest.Catalog(t, js)
	apply(t, c, "acme", docs)
	kv, err := js.KeyValue(ctx, subjects.BucketCatalog)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "w.acme.a-sync", []byte("garbage"))
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, rev)
	_, inMap := c.Workflow("acme", "a-sync")
	inIndex := false
	for _, w := range c.WorkflowsForEvent("acme", "Contact Created") {
		inIndex = inIndex || w.ID == "a-sync"
	}
	if inMap != inIndex {
		t.Errorf("Workflow(a-sync) found = %v but in WorkflowsForEvent = %v", inMap, inIndex)
	}
}

func TestWaitRevisionTimesOut(t *testing.T) {
	c := brokertest.Catalog(t, brokertest.Start(t).JS)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.WaitRevision(ctx, 1_000_000); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitRevision = %v, want DeadlineExceeded", err)
	}
	if err := c.WaitRevision(context.Background(), 0); err != nil {
		t.Errorf("WaitRevision(0) = %v", err)
	}
}

func TestOpenWithoutBucket(t *testing.T) {
	js := brokertest.Start(t).JS
	if err := js.DeleteKeyValue(ctxT(t), subjects.BucketCatalog); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Open(ctxT(t), catalog.Options{JS: js}); err == nil {
		t.Error("Open succeeded without the catalog bucket")
	}
}

// TestApplyIdenticalWritesNothing: re-applying the same documents writes
// no entry (the catalog's revision stays where it was) and returns a
// revision WaitRevision accepts; a changed document is written.
func TestApplyIdenticalWritesNothing(t *testing.T) {
	c := brokertest.Catalog(t, brokertest.Start(t).JS)
	first := apply(t, c, "acme", docs)
	before := c.Revision()
	again, err := c.Apply(ctxT(t), parse(t, "acme", docs))
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, again)
	if again > before {
		t.Fatalf("identical apply returned revision %d, after %d: it wrote", again, before)
	}
	// A write after it is the very next revision: nothing was written in
	// between.
	changed := strings.Replace(docs, "timeout: 5s", "timeout: 6s", 1)
	rev := apply(t, c, "acme", changed)
	if rev != before+1 {
		t.Fatalf("one changed document: revision %d, want %d (first apply at %d)", rev, before+1, first)
	}
	if w, _ := c.Workflow("acme", "hook"); w.RequestTimeout() != 6*time.Second {
		t.Fatalf("hook timeout = %v after the change", w.RequestTimeout())
	}
}

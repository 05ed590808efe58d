// Package catalog is Switchboard's configuration — projects, app event
// declarations, workflows, integrations — stored in a JetStream KV bucket,
// with an in-memory copy kept current by a watch so routing never waits on
// storage. Config is small, so every process keeps all of it; connected
// users and credentials, which grow with the customer's user base, live in
// pkg/directory instead.
//
// Values handed out by the Catalog are shared and must not be modified.
package catalog

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/watermark"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// ErrNotFound is returned for a missing object.
var ErrNotFound = errors.New("not found")

// Key prefixes in the bucket. Free-form ids (user, credential, event name)
// go through subjects.Token so any string is a valid key.
const (
	prefixProject     = "p"
	prefixWorkflow    = "w"
	prefixEvent       = "e"
	prefixIntegration = "i"
)

func projectKey(p string) string        { return prefixProject + "." + p }
func workflowKey(p, w string) string    { return prefixWorkflow + "." + p + "." + w }
func eventKey(p, name string) string    { return prefixEvent + "." + p + "." + subjects.Token(name) }
func integrationKey(p, i string) string { return prefixIntegration + "." + p + "." + i }

// Options configure a Catalog.
type Options struct {
	JS     jetstream.JetStream
	Logger *slog.Logger
}

// Catalog is the KV-backed catalog with its in-memory copy.
type Catalog struct {
	kv     jetstream.KeyValue
	logger *slog.Logger

	mu       sync.RWMutex
	projects map[string]*projectState
	apiKeys  map[string]string // key hash -> project
	rev      watermark.Mark    // the last KV revision reflected in memory
	ready    bool
	// projectsChanged is closed when a project is created or deleted.
	projectsChanged chan struct{}
}

type projectState struct {
	project      *Project
	keys         []*rsa.PublicKey
	keySetID     string
	workflows    map[string]*workflow.Workflow
	byEvent      map[string][]*workflow.Workflow
	events       map[string]*workflow.AppEvent
	integrations map[string]*workflow.Integration
}

// Open binds the catalog bucket; call Start to load it and follow changes.
func Open(ctx context.Context, opts Options) (*Catalog, error) {
	kv, err := opts.JS.KeyValue(ctx, subjects.BucketCatalog)
	if err != nil {
		return nil, fmt.Errorf("catalog: bucket %s: %w", subjects.BucketCatalog, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Catalog{
		kv:       kv,
		logger:   logger,
		projects: map[string]*projectState{},
		apiKeys:  map[string]string{},
	}, nil
}

// Start loads the current contents and keeps following changes until ctx
// ends. It returns once the initial contents are loaded.
func (c *Catalog) Start(ctx context.Context) error {
	w, err := c.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("catalog: watch: %w", err)
	}
	initial := make(chan struct{})
	go func() {
		defer func() { _ = w.Stop() }()
		once := sync.Once{}
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					c.mu.Lock()
					c.ready = true
					c.mu.Unlock()
					once.Do(func() { close(initial) })
					continue
				}
				c.apply(e)
			}
		}
	}()
	select {
	case <-initial:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Revision is the last KV revision reflected in memory.
func (c *Catalog) Revision() uint64 { return c.rev.Load() }

// WaitRevision blocks until the in-memory copy reflects rev (so a writer
// reads its own writes, and a consumer sees the catalog its publisher saw).
func (c *Catalog) WaitRevision(ctx context.Context, rev uint64) error {
	if err := c.rev.Wait(ctx, rev, nil); err != nil {
		return fmt.Errorf("catalog: waiting for revision %d (at %d): %w", rev, c.rev.Load(), err)
	}
	return nil
}

func (c *Catalog) apply(e jetstream.KeyValueEntry) {
	// The revision moves only after the entry is in memory (and the lock is
	// released), so whoever WaitRevision wakes reads the new state.
	defer c.rev.Advance(e.Revision())
	c.mu.Lock()
	defer c.mu.Unlock()
	deleted := e.Operation() != jetstream.KeyValuePut
	parts := strings.Split(e.Key(), ".")
	if len(parts) < 2 {
		return
	}
	ps := c.projectState(parts[1])
	if err := c.applyKey(ps, parts, e.Value(), deleted); err != nil {
		c.logger.Warn("catalog: skipping unreadable entry", "key", e.Key(), "err", err)
	}
}

func (c *Catalog) projectState(p string) *projectState {
	ps, ok := c.projects[p]
	if !ok {
		ps = &projectState{
			workflows:    map[string]*workflow.Workflow{},
			byEvent:      map[string][]*workflow.Workflow{},
			events:       map[string]*workflow.AppEvent{},
			integrations: map[string]*workflow.Integration{},
		}
		c.projects[p] = ps
	}
	return ps
}

// applyKey updates one entry. Lock held.
func (c *Catalog) applyKey(ps *projectState, parts []string, value []byte, deleted bool) error {
	switch parts[0] {
	case prefixProject:
		if (ps.project == nil) != deleted {
			c.noteProjectChange()
		}
		if ps.project != nil {
			for _, k := range ps.project.APIKeys {
				delete(c.apiKeys, k.Hash)
			}
		}
		ps.project, ps.keys, ps.keySetID = nil, nil, ""
		if deleted {
			return nil
		}
		var p Project
		if err := json.Unmarshal(value, &p); err != nil {
			return err
		}
		ps.project = &p
		for _, k := range p.APIKeys {
			c.apiKeys[k.Hash] = p.ID
		}
		for _, pem := range p.UserTokenKeys {
			k, err := auth.ParsePublicKeyPEM([]byte(pem))
			if err != nil {
				c.logger.Warn("catalog: bad user token key", "project", p.ID, "err", err)
				continue
			}
			ps.keys = append(ps.keys, k)
			ps.keySetID += auth.KeyID(k)
		}
	case prefixWorkflow:
		if len(parts) != 3 {
			return fmt.Errorf("bad workflow key")
		}
		// Reindex however this ends, so the event index never keeps a
		// workflow the by-id map no longer has.
		defer ps.reindex()
		return replaceObject(ps.workflows, parts[2], workflow.KindWorkflow, value, deleted)
	case prefixEvent:
		if len(parts) != 3 {
			return fmt.Errorf("bad event key")
		}
		if deleted {
			for name := range ps.events {
				if subjects.Token(name) == parts[2] {
					delete(ps.events, name)
				}
			}
			return nil
		}
		obj, err := workflow.Decode(workflow.KindAppEvent, value)
		if err != nil {
			return err
		}
		ev := obj.(*workflow.AppEvent)
		ps.events[ev.Name] = ev
	case prefixIntegration:
		if len(parts) != 3 {
			return fmt.Errorf("bad integration key")
		}
		return replaceObject(ps.integrations, parts[2], workflow.KindIntegration, value, deleted)
	}
	return nil
}

// replaceObject replaces the object stored under the key id in m: it is
// removed and, unless the entry was deleted, decoded from value (a kind
// document) and stored under its name. Lock held.
func replaceObject[T workflow.Object](m map[string]T, id, kind string, value []byte, deleted bool) error {
	delete(m, id)
	if deleted {
		return nil
	}
	obj, err := workflow.Decode(kind, value)
	if err != nil {
		return err
	}
	m[obj.DocName()] = obj.(T)
	return nil
}

// reindex rebuilds the event -> workflows index. Lock held.
func (ps *projectState) reindex() {
	idx := map[string][]*workflow.Workflow{}
	for _, w := range ps.workflows {
		if w.Trigger.Type == workflow.TriggerAppEvent {
			idx[w.Trigger.Event] = append(idx[w.Trigger.Event], w)
		}
	}
	for _, ws := range idx {
		sort.Slice(ws, func(i, j int) bool { return ws[i].ID < ws[j].ID })
	}
	ps.byEvent = idx
}

// Read side.

// view runs f on project p's state under the read lock; the zero value
// when the project is unknown. Every getter goes through it.
func view[T any](c *Catalog, p string, f func(*projectState) T) T {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ps := c.projects[p]
	if ps == nil {
		var zero T
		return zero
	}
	return f(ps)
}

// found turns a map lookup of a pointer into the (value, ok) getters return.
func found[T any](v *T) (*T, bool) { return v, v != nil }

// Project returns project p.
func (c *Catalog) Project(p string) (*Project, bool) {
	return found(view(c, p, func(ps *projectState) *Project { return ps.project }))
}

// ProjectForAPIKey returns the project an API key (by hash) belongs to.
func (c *Catalog) ProjectForAPIKey(hash string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.apiKeys[hash]
	return p, ok
}

// UserTokenKeys returns the keys that verify user tokens of project p and an
// id that changes whenever the set does (for token caches).
func (c *Catalog) UserTokenKeys(p string) ([]*rsa.PublicKey, string) {
	type keySet struct {
		keys []*rsa.PublicKey
		id   string
	}
	ks := view(c, p, func(ps *projectState) keySet { return keySet{ps.keys, ps.keySetID} })
	return ks.keys, ks.id
}

// Workflow returns workflow w of project p.
func (c *Catalog) Workflow(p, w string) (*workflow.Workflow, bool) {
	return found(view(c, p, func(ps *projectState) *workflow.Workflow { return ps.workflows[w] }))
}

// Workflows lists project p's workflows by id.
func (c *Catalog) Workflows(p string) []*workflow.Workflow {
	return view(c, p, func(ps *projectState) []*workflow.Workflow {
		return sortedValues(ps.workflows, func(w *workflow.Workflow) string { return w.ID })
	})
}

// WorkflowsForEvent lists the workflows an app event named name triggers.
func (c *Catalog) WorkflowsForEvent(p, name string) []*workflow.Workflow {
	return view(c, p, func(ps *projectState) []*workflow.Workflow { return ps.byEvent[name] })
}

// AppEvent returns the declaration of event name in project p.
func (c *Catalog) AppEvent(p, name string) (*workflow.AppEvent, bool) {
	return found(view(c, p, func(ps *projectState) *workflow.AppEvent { return ps.events[name] }))
}

// Integration returns integration id of project p: the project's own
// document, or else the built-in manifest of that id (pkg/manifest), which
// every project has without applying anything.
func (c *Catalog) Integration(p, id string) (*workflow.Integration, bool) {
	if in, ok := found(view(c, p, func(ps *projectState) *workflow.Integration { return ps.integrations[id] })); ok {
		return in, true
	}
	return workflow.BuiltinIntegration(p, id)
}

// sortedValues returns m's values ordered by key(v).
func sortedValues[V any](m map[string]V, key func(V) string) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

package consume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// GroupOptions configure a Group.
type GroupOptions struct {
	// Slots is the budget every member draws from; required. Its Size is
	// how many handlers run at once across all keys.
	Slots *Slots
	// Consumer returns the options of key's consumer, typically a shared
	// template with a per-key Durable and FilterSubjects (for example
	// "executor-<project>" on "sb.run.<project>.>"); required. Slots is
	// set by the group. Keep Name the same for every key unless per-key
	// metric series are wanted: counters are labelled by Name.
	// A zero Concurrency means the whole budget (Slots.Size).
	//
	// Each member fetches up to its Concurrency messages ahead, and those
	// wait for a slot with their AckWait running (only the one at the head
	// of a member's line is kept alive). With many busy keys on a full
	// budget, lower Concurrency or raise AckWait so that keys × Concurrency
	// messages are handled within one AckWait, or they are redelivered
	// while still waiting.
	Consumer func(key string) Options
	// DeleteOnRemove deletes the key's durable consumer on the server when
	// the key is removed. Off by default: other processes running the same
	// group still use it, and a key that comes back resumes where it left
	// off. Turn it on only where Remove means the key is gone for good
	// (a deleted project) and this process is the one deciding that.
	DeleteOnRemove bool
}

// Group runs one Consumer per key (for example one per project), all
// drawing from one Slots, so that a key with a large backlog cannot starve
// the others: a waiting message of a quiet key gets the next free slot.
// Its methods are safe for concurrent use.
type Group struct {
	js      jetstream.JetStream
	opts    GroupOptions
	mu      sync.Mutex
	members map[string]*Consumer
	closed  bool
}

// NewGroup returns an empty Group; Add starts consumers.
func NewGroup(js jetstream.JetStream, opts GroupOptions) (*Group, error) {
	switch {
	case js == nil:
		return nil, errors.New("consume: group: JetStream is required")
	case opts.Slots == nil:
		return nil, errors.New("consume: group: Slots is required")
	case opts.Consumer == nil:
		return nil, errors.New("consume: group: Consumer is required")
	}
	return &Group{js: js, opts: opts, members: map[string]*Consumer{}}, nil
}

// Add starts key's consumer; adding a key that is already there does
// nothing.
func (g *Group) Add(ctx context.Context, key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("consume: group: add %q: group stopped", key)
	}
	if _, ok := g.members[key]; ok {
		return nil
	}
	opts := g.opts.Consumer(key)
	opts.Slots = g.opts.Slots
	if opts.Concurrency <= 0 {
		opts.Concurrency = g.opts.Slots.Size()
	}
	c, err := Start(ctx, g.js, opts)
	if err != nil {
		return fmt.Errorf("consume: group: add %q: %w", key, err)
	}
	g.members[key] = c
	return nil
}

// Remove stops key's consumer as Consumer.Stop does (ctx bounds the wait
// for its in-flight handlers) and, with DeleteOnRemove, deletes its durable.
// Removing an unknown key does nothing.
func (g *Group) Remove(ctx context.Context, key string) error {
	g.mu.Lock()
	c, ok := g.members[key]
	delete(g.members, key)
	g.mu.Unlock()
	if !ok {
		return nil
	}
	err := c.Stop(ctx)
	if g.opts.DeleteOnRemove {
		if derr := g.js.DeleteConsumer(ctx, c.opts.Stream, c.opts.Durable); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
			err = errors.Join(err, fmt.Errorf("consume: group: delete consumer %s: %w", c.opts.Durable, derr))
		}
	}
	return err
}

// Keys returns the keys running now, sorted.
func (g *Group) Keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	keys := make([]string, 0, len(g.members))
	for k := range g.members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Stop stops every member at once (as Consumer.Stop, sharing ctx) and
// refuses later Adds. Durables are kept whatever DeleteOnRemove says: a
// process shutting down is not a key going away.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	members := g.members
	g.members = map[string]*Consumer{}
	g.mu.Unlock()
	errs := make(chan error, len(members))
	for _, c := range members {
		go func() { errs <- c.Stop(ctx) }()
	}
	var all []error
	for range members {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

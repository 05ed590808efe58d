package consume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/consume"
)

func (e *env) group(t testing.TB, slots *consume.Slots, deleteOnRemove bool, h func(key string) consume.Handler) *consume.Group {
	t.Helper()
	g, err := consume.NewGroup(e.js, consume.GroupOptions{
		Slots:          slots,
		DeleteOnRemove: deleteOnRemove,
		Consumer: func(key string) consume.Options {
			return consume.Options{
				Name: "fair", Durable: "fair-" + key, Stream: workStream,
				FilterSubjects: []string{"work.fair." + key},
				DeadLetter:     consume.DeadLetterTo(e.js, deadSubject),
				Handler:        h(key),
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = g.Stop(ctx)
	})
	return g
}

// TestGroupFairness: busy keys have a backlog of 5,000 each, key b one
// message; with four shared slots b's message must not wait for the
// backlogs. The assertion is on order (how much of the backlog was done when
// b ran), not on time. With one busy key its own Concurrency (the whole
// budget) keeps its next message off the shared queue; with three, their
// messages wait for slots alongside b's. The exact grant order is pinned
// by TestSlotsRoundRobin; this is the end-to-end property.
func TestGroupFairness(t *testing.T) {
	cases := []struct {
		name string
		busy []string
	}{
		{name: "one busy key", busy: []string{"a"}},
		{name: "three busy keys", busy: []string{"a1", "a2", "a3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			const backlog = 5000
			total := int64(backlog * len(tc.busy))
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			for i := range backlog {
				for _, k := range tc.busy {
					if _, err := e.js.PublishAsync("work.fair."+k, fmt.Appendf(nil, "%s%d", k, i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			select {
			case <-e.js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishing the backlog timed out")
			}
			e.publish(t, "work.fair.b", "b")

			var handledBusy atomic.Int64
			busyWhenB := atomic.Int64{}
			busyWhenB.Store(-1)
			slots := consume.NewSlots(4)
			g := e.group(t, slots, false, func(key string) consume.Handler {
				return func(context.Context, jetstream.Msg) error {
					time.Sleep(time.Millisecond) // the work
					if key == "b" {
						busyWhenB.Store(handledBusy.Load())
					} else {
						handledBusy.Add(1)
					}
					return nil
				}
			})
			for _, k := range tc.busy {
				if err := g.Add(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			// Every slot is taken and queues wait behind them before b shows up.
			eventually(t, "busy keys busy", func() bool { return handledBusy.Load() >= 8 })
			if err := g.Add(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "key b handled", func() bool { return busyWhenB.Load() >= 0 })
			if got := busyWhenB.Load(); got >= total/2 {
				t.Fatalf("b was handled after %d of %d backlog messages; want it ahead of the backlog", got, total)
			}
			t.Logf("b handled after %d of %d backlog messages", busyWhenB.Load(), total)
			if n := slots.InUse(); n > slots.Size() {
				t.Fatalf("%d slots in use, budget %d", n, slots.Size())
			}
		})
	}
}

func TestGroupMembership(t *testing.T) {
	cases := []struct {
		name           string
		deleteOnRemove bool
		wantKept       bool
	}{
		{name: "remove keeps the durable", wantKept: true},
		{name: "remove deletes the durable", deleteOnRemove: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			var handled atomic.Int32
			g := e.group(t, consume.NewSlots(2), tc.deleteOnRemove, func(string) consume.Handler {
				return func(context.Context, jetstream.Msg) error { handled.Add(1); return nil }
			})
			for _, k := range []string{"y", "x", "y"} {
				if err := g.Add(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			if got := g.Keys(); !slices.Equal(got, []string{"x", "y"}) {
				t.Fatalf("Keys = %v, want [x y]", got)
			}
			seq := e.publish(t, "work.fair.x", "1")
			e.waitSettled(t, "fair-x", seq)
			if err := g.Remove(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			if err := g.Remove(ctx, "never-added"); err != nil {
				t.Fatal(err)
			}
			if got := g.Keys(); !slices.Equal(got, []string{"y"}) {
				t.Fatalf("Keys after Remove = %v, want [y]", got)
			}
			_, err := e.consumerInfo("fair-x")
			switch {
			case tc.wantKept && err != nil:
				t.Fatalf("durable gone after Remove: %v", err)
			case !tc.wantKept && !errors.Is(err, jetstream.ErrConsumerNotFound):
				t.Fatalf("durable after Remove with DeleteOnRemove: err = %v, want not found", err)
			}
			if err := g.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := g.Add(ctx, "z"); err == nil {
				t.Fatal("Add after Stop succeeded")
			}
			if _, err := e.consumerInfo("fair-y"); err != nil {
				t.Fatalf("Stop must keep durables: %v", err)
			}
		})
	}
}

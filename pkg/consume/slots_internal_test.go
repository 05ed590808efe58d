package consume

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func (s *Slots) waiters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.waiting {
		n += len(l.waiters)
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlotsRoundRobin: lane a queues three waiters before lane b queues
// one; freed slots go a, b, a, a: b waits for one grant, not for a's queue.
func TestSlotsRoundRobin(t *testing.T) {
	cases := []struct {
		name  string
		queue []string // lanes in the order their waiters arrive
		want  []string // grant order
	}{
		{name: "quiet lane jumps a backlog", queue: []string{"a", "a", "a", "b"}, want: []string{"a", "b", "a", "a"}},
		{name: "three lanes alternate", queue: []string{"a", "a", "b", "b", "c"}, want: []string{"a", "b", "c", "a", "b"}},
		{name: "one lane is fifo", queue: []string{"a", "a"}, want: []string{"a", "a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSlots(1)
			if !s.tryAcquire() {
				t.Fatal("empty budget refused a slot")
			}
			lanes := map[string]*lane{}
			granted := make(chan string, len(tc.queue))
			for i, name := range tc.queue {
				if lanes[name] == nil {
					lanes[name] = s.newLane()
				}
				go func() {
					if err := s.acquire(context.Background(), lanes[name]); err != nil {
						t.Error(err)
					}
					granted <- name
				}()
				waitUntil(t, "the waiter to queue", func() bool { return s.waiters() == i+1 })
			}
			var got []string
			for range tc.queue {
				s.release() // the holder finishes; the next waiter now holds it
				got = append(got, <-granted)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("grant order %v, want %v", got, tc.want)
			}
			s.release()
			if s.InUse() != 0 {
				t.Fatalf("InUse = %d after every release", s.InUse())
			}
		})
	}
}

func TestSlotsCancelledWaiter(t *testing.T) {
	s := NewSlots(1)
	if err := s.acquire(context.Background(), s.newLane()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.acquire(ctx, s.newLane()) }()
	waitUntil(t, "the waiter to queue", func() bool { return s.waiters() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire = %v, want context.Canceled", err)
	}
	if s.waiters() != 0 {
		t.Fatal("cancelled waiter still queued")
	}
	s.release()
	if s.InUse() != 0 || !s.tryAcquire() {
		t.Fatal("slot leaked after a cancelled wait")
	}
}

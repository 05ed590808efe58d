package consume

import (
	"context"
	"slices"
	"sync"
)

// Slots is a concurrency budget shared by several consumers (each consumer
// is one lane): at most Size handlers run at once across all of them, and
// a freed slot goes to the lanes that are waiting in round-robin order.
// A lane that gets a slot and still has messages waiting goes to the back
// of the line, so a quiet lane's single message waits for at most one slot
// per other waiting lane, never behind a busy lane's backlog.
//
// Every grant is one message, so plain round-robin is already deficit
// round-robin with equal costs. Slots is safe for concurrent use; one value
// may serve any number of consumers and Groups.
type Slots struct {
	mu   sync.Mutex
	size int
	used int
	// waiting holds the lanes with at least one waiter, in serving order.
	waiting []*lane
}

// lane is one consumer's place in line.
type lane struct {
	waiters []chan struct{}
	queued  bool
}

// NewSlots returns a budget of n concurrent handlers (at least 1).
func NewSlots(n int) *Slots {
	return &Slots{size: max(n, 1)}
}

// Size is the budget.
func (s *Slots) Size() int { return s.size }

// InUse is how many slots are held right now.
func (s *Slots) InUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func (s *Slots) newLane() *lane { return &lane{} }

// tryAcquire takes a slot if one is free and nobody is waiting for it.
func (s *Slots) tryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A free slot while lanes wait cannot happen (release hands slots over
	// directly), but checking keeps a newcomer from ever jumping the line.
	if s.used < s.size && len(s.waiting) == 0 {
		s.used++
		return true
	}
	return false
}

// acquire waits for a slot for l until ctx ends.
func (s *Slots) acquire(ctx context.Context, l *lane) error {
	s.mu.Lock()
	if s.used < s.size && len(s.waiting) == 0 {
		s.used++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	if !l.queued {
		l.queued = true
		s.waiting = append(s.waiting, l)
	}
	s.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if i := slices.Index(l.waiters, ch); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
		if len(l.waiters) == 0 {
			l.queued = false
			s.waiting = slices.DeleteFunc(s.waiting, func(x *lane) bool { return x == l })
		}
		s.mu.Unlock()
		return ctx.Err()
	}
	s.mu.Unlock()
	// The slot was granted while ctx ended: pass it on rather than leak it.
	s.release()
	return ctx.Err()
}

// release frees a slot, handing it straight to the next waiting lane.
func (s *Slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) == 0 {
		s.used--
		return
	}
	l := s.waiting[0]
	s.waiting = slices.Delete(s.waiting, 0, 1)
	ch := l.waiters[0]
	l.waiters = slices.Delete(l.waiters, 0, 1)
	if len(l.waiters) > 0 {
		s.waiting = append(s.waiting, l)
	} else {
		l.queued = false
	}
	close(ch)
}

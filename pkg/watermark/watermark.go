// Package watermark is a monotonic position that readers can wait on: how
// far a follower (the catalog's KV watch, the read model's stream consumer)
// has got, so a writer can read its own writes.
package watermark

import (
	"context"
	"errors"
	"sync"
)

// ErrAborted is Wait's error when its abort channel closed.
var ErrAborted = errors.New("watermark: wait aborted")

// Mark is a position; the zero value is position 0, ready to use.
type Mark struct {
	mu      sync.Mutex
	v       uint64
	changed chan struct{} // closed and replaced whenever v moves
}

// Load returns the current position.
func (m *Mark) Load() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.v
}

// Advance moves the position to v if v is ahead, waking waiters.
func (m *Mark) Advance(v uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v > m.v {
		m.set(v)
	}
}

// Reset sets the position, also backwards (after a rebuild); waiters for a
// position still ahead keep waiting.
func (m *Mark) Reset(v uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set(v)
}

// set stores v and wakes waiters. Lock held.
func (m *Mark) set(v uint64) {
	m.v = v
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}

// Wait blocks until the position is at least v. It returns ctx's error, or
// abort's when abort is closed first (nil abort never fires); the error
// does not say where the mark was, callers add that.
func (m *Mark) Wait(ctx context.Context, v uint64, abort <-chan struct{}) error {
	for {
		m.mu.Lock()
		if m.v >= v {
			m.mu.Unlock()
			return nil
		}
		if m.changed == nil {
			m.changed = make(chan struct{})
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-abort:
			return ErrAborted
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

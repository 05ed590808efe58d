// Package testlog gives tests a slog logger that writes to the test's log.
// It is a normal package so that every module's tests can share it;
// production code must not import it.
package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a logger writing warnings and errors to t.Log. It stops
// writing once the test's cleanups have run — t.Log panics after the test
// ended, and a goroutine of the system under test may still log then.
// Call it before registering the cleanups that stop that system, so it is
// closed after them.
func New(t testing.TB) *slog.Logger {
	w := &writer{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type writer struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

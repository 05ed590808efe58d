package watermark_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/watermark"
)

func TestWait(t *testing.T) {
	var m watermark.Mark
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Wait(ctx, 0, nil); err != nil {
		t.Fatalf("waiting for the start position: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Wait(ctx, 5, nil) }()
	m.Advance(3)
	select {
	case err := <-done:
		t.Fatalf("woke at 3 for 5: %v", err)
	default:
	}
	m.Advance(2) // behind: ignored
	if m.Load() != 3 {
		t.Fatalf("Advance went backwards: %d", m.Load())
	}
	m.Advance(5)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m.Reset(1)
	if m.Load() != 1 {
		t.Fatalf("Reset: %d", m.Load())
	}

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if err := m.Wait(short, 9, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	abort := make(chan struct{})
	close(abort)
	if err := m.Wait(ctx, 9, abort); !errors.Is(err, watermark.ErrAborted) {
		t.Fatalf("err = %v, want ErrAborted", err)
	}
}

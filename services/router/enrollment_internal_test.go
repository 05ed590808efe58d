package router

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// blockingReader answers EnrollmentAll once released, counting reads.
type blockingReader struct {
	enrollmentReader // nil: only EnrollmentAll is called
	release          chan struct{}
	reads            atomic.Int32
}

func (b *blockingReader) EnrollmentAll(ctx context.Context, _, _, zone string, _ int) (directory.Page, bool, error) {
	b.reads.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
		return directory.Page{}, false, ctx.Err()
	}
	return directory.Page{Entries: []directory.Entry{{User: "u-" + zone}}}, true, nil
}

// Ticks asking for the same zone while its read is in flight share that
// read and its answer; another zone, or a call after the read returned,
// reads again (nothing is kept).
func TestSharedEnrollmentSharesReadsInFlight(t *testing.T) {
	r := &blockingReader{release: make(chan struct{})}
	s := newSharedEnrollment(r)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const callers = 10
	var wg sync.WaitGroup
	got := make([]directory.Page, callers)
	for i := range callers {
		wg.Go(func() {
			p, ok, err := s.EnrollmentAll(ctx, "p", "crm", "Europe/Berlin", 1000)
			if err != nil || !ok {
				t.Errorf("caller %d: ok %v, err %v", i, ok, err)
			}
			got[i] = p
		})
	}
	// Wait (with a deadline, no fixed sleep) until every other caller joined the first read.
	for {
		s.mu.Lock()
		c := s.calls[enrollmentKey{"p", "crm", "Europe/Berlin", 1000}]
		joined := int32(0)
		if c != nil {
			joined = c.joined.Load()
		}
		s.mu.Unlock()
		if joined == callers-1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d callers joined the read", joined, callers-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(r.release)
	wg.Wait()
	if n := r.reads.Load(); n != 1 {
		t.Errorf("%d reads for %d callers of one zone, want 1", n, callers)
	}
	for i, p := range got {
		if len(p.Entries) != 1 || p.Entries[0].User != "u-Europe/Berlin" {
			t.Errorf("caller %d got %+v", i, p)
		}
	}
	for _, zone := range []string{"Europe/Berlin", "Asia/Tokyo"} {
		if _, _, err := s.EnrollmentAll(ctx, "p", "crm", zone, 1000); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.reads.Load(); n != 3 {
		t.Errorf("%d reads after two more calls, want 3 (a returned read is not kept)", n)
	}
}

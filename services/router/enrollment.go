package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// sharedEnrollment is the schedule decider's view of the enrollment index:
// a whole-zone read (EnrollmentAll) is made once for every tick asking for
// the same zone while it is in flight. A thousand workflows ticking in one
// small zone at the same second are otherwise a thousand identical reads
// of three server round trips each, which is most of what a burst of small
// ticks costs the server. A caller joining a read in flight gets that
// read's answer: an entry written meanwhile may be missing from it, as it
// may from any read racing a write (pkg/directory Enrollment). Nothing is
// kept once the read returns.
//
// A large zone's walk (Enrollment pages) goes through connections of its
// own when the router opened some (Options.WalkConns): the server answers
// one connection's direct gets one at a time, in that connection's read
// loop, so the shards of a large tick walking through the router's one
// connection wait for each other there, and for every publish of the runs
// they make.
type sharedEnrollment struct {
	enrollmentReader

	mu    sync.Mutex
	calls map[enrollmentKey]*enrollmentCall

	walkers atomic.Pointer[[]*directory.Directory]
	next    atomic.Uint32
	conns   []*nats.Conn
}

// enrollmentReader is what sharedEnrollment reads through
// (*directory.Directory).
type enrollmentReader interface {
	Enrollment(ctx context.Context, p, integration, zone string, shard int, after string, limit int) (directory.Page, error)
	EnrollmentAll(ctx context.Context, p, integration, zone string, limit int) (directory.Page, bool, error)
	Zones(ctx context.Context, p, integration string) ([]string, error)
}

type enrollmentKey struct {
	project, integration, zone string
	limit                      int
}

type enrollmentCall struct {
	done   chan struct{}
	joined atomic.Int32 // callers waiting for this read besides the first
	page   directory.Page
	ok     bool
	err    error
}

func newSharedEnrollment(d enrollmentReader) *sharedEnrollment {
	return &sharedEnrollment{enrollmentReader: d, calls: map[enrollmentKey]*enrollmentCall{}}
}

func (s *sharedEnrollment) EnrollmentAll(ctx context.Context, p, integration, zone string, limit int) (directory.Page, bool, error) {
	k := enrollmentKey{p, integration, zone, limit}
	s.mu.Lock()
	if c, ok := s.calls[k]; ok {
		c.joined.Add(1)
		s.mu.Unlock()
		select {
		case <-c.done:
			// The page is shared: the decider only reads its entries.
			return c.page, c.ok, c.err
		case <-ctx.Done():
			return directory.Page{}, false, ctx.Err()
		}
	}
	c := &enrollmentCall{done: make(chan struct{})}
	s.calls[k] = c
	s.mu.Unlock()
	c.page, c.ok, c.err = s.enrollmentReader.EnrollmentAll(ctx, p, integration, zone, limit)
	s.mu.Lock()
	delete(s.calls, k)
	s.mu.Unlock()
	close(c.done)
	return c.page, c.ok, c.err
}

// Enrollment reads one page of a walk, through the next walk connection.
func (s *sharedEnrollment) Enrollment(ctx context.Context, p, integration, zone string, shard int, after string, limit int) (directory.Page, error) {
	if w := s.walkers.Load(); w != nil && len(*w) > 0 {
		return (*w)[int(s.next.Add(1))%len(*w)].Enrollment(ctx, p, integration, zone, shard, after, limit)
	}
	return s.enrollmentReader.Enrollment(ctx, p, integration, zone, shard, after, limit)
}

// openWalkers opens n connections like nc (same servers, credentials and
// options) and a directory reader on each for the walks.
func (s *sharedEnrollment) openWalkers(ctx context.Context, nc *nats.Conn, n int) error {
	var dirs []*directory.Directory
	for i := range n {
		o := nc.Opts
		o.Name = fmt.Sprintf("%s-walk-%d", o.Name, i)
		// The router's handlers are for the router's connection.
		o.ClosedCB, o.DisconnectedErrCB, o.ReconnectedCB, o.AsyncErrorCB = nil, nil, nil, nil
		c, err := o.Connect()
		if err != nil {
			return fmt.Errorf("router: walk connection: %w", err)
		}
		s.conns = append(s.conns, c)
		js, err := jetstream.New(c)
		if err != nil {
			return fmt.Errorf("router: walk connection: %w", err)
		}
		// Reads only, never started: no watch and no cache of its own.
		d, err := directory.Open(ctx, directory.Options{JS: js, CacheSize: -1})
		if err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	s.walkers.Store(&dirs)
	return nil
}

// close closes the walk connections (the routing that used them is over).
func (s *sharedEnrollment) close() {
	s.walkers.Store(nil)
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

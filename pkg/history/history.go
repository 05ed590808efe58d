// Package history is the local read model of run history: a bbolt file fed
// from the RUN_EVENTS stream.
//
// RUN_EVENTS carries two kinds of records, told apart by the Sb-Record header
// (or, without it, by the subject's fourth token):
//
//	sb.history.<project>.run.<runId>          JSON runs.Run snapshot
//	sb.history.<project>.decision.<eventId>   JSON runs.Decision
//
// The stream is the source of truth. The file only caches a projection of it
// plus the last applied stream sequence, written in the same transaction as
// the records; losing or deleting the file loses nothing, the next Run
// rebuilds it from the stream. It also forgets what the stream forgets: a
// periodic pass (Prune) deletes every run and decision whose newest record
// the stream no longer holds — aged out past RUN_EVENTS' MaxAge, or removed
// by any other limit — so the history never outlives its retention.
//
// Layout (every key component is escaped so that it contains no 0x00 byte,
// which makes 0x00 an unambiguous separator and "<project>\x00" an exact
// prefix):
//
//	meta      "lastSeq" -> uint64, "version" -> uint64
//	runs      project \x00 ts \x00 runID   -> row (keys.go: small header + JSON)
//	run_ids   project \x00 runID           -> ts
//	decisions project \x00 eventID         -> seq + JSON runs.Decision
//	idx_wf    project \x00 workflow \x00 ts \x00 runID
//	idx_user  project \x00 user \x00 ts \x00 runID
//	by_seq    seq kind project \x00 id      (the newest stream sequence of each run and decision)
//
// ts is the run's first-seen CreatedAt as 8 order-preserving big-endian
// bytes. It never changes once a run is stored, so a run has exactly one
// entry per index and paging cursors stay valid while the run progresses.
// Rows are stored in time order, which makes the runs bucket itself the
// per-project index and keeps writes clustered: new and still-active runs
// are recent, so a batch of snapshots dirties a few pages at the tree's
// right edge rather than one random page per run. Only run_ids takes random
// inserts, one small entry per new run.
package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/watermark"
)

// Errors.
var (
	ErrNotFound   = errors.New("history: not found")
	ErrBadCursor  = errors.New("history: bad cursor")
	ErrBadFilter  = errors.New("history: bad filter")
	errClosed     = errors.New("history: store closed")
	errNoJS       = errors.New("history: no JetStream handle")
	errRunning    = errors.New("history: Run is already active")
	errConsumerGo = errors.New("history: consumer closed")
)

// schemaVersion is bumped when the file layout changes; a file with another
// version is wiped and rebuilt from the stream on Open.
const schemaVersion = 2

var (
	bucketMeta      = []byte("meta")
	bucketRuns      = []byte("runs")
	bucketRunIDs    = []byte("run_ids")
	bucketDecisions = []byte("decisions")
	bucketIdxWf     = []byte("idx_wf")
	bucketIdxUser   = []byte("idx_user")
	bucketBySeq     = []byte("by_seq")
	allBuckets      = [][]byte{bucketMeta, bucketRuns, bucketRunIDs, bucketDecisions, bucketIdxWf, bucketIdxUser, bucketBySeq}

	keyLastSeq = []byte("lastSeq")
	keyVersion = []byte("version")
	// keyClean is 1 only between a clean Close and the next Open. Commits
	// are not fsynced while the store is open (the file is a read model
	// the stream can rebuild), so a file found unclean is rebuilt.
	keyClean = []byte("clean")
)

// maxBatch is the most messages applied in one bbolt transaction.
const maxBatch = 500

// Options configure a Store.
type Options struct {
	// Path is the bbolt file; it is created when missing.
	Path string
	// JS is used by Run to follow RUN_EVENTS; Open works without it.
	JS jetstream.JetStream
	// PruneInterval is how often Run deletes what the stream no longer
	// holds (default DefaultPruneInterval). Retention is days, so the
	// pass only needs to be frequent next to that.
	PruneInterval time.Duration
	Logger        *slog.Logger
}

// DefaultPruneInterval is the default Options.PruneInterval.
const DefaultPruneInterval = time.Minute

// Store is the bbolt read model of run history. Reads are safe for
// concurrent use; Apply must not be called while Run is active.
type Store struct {
	db    *bolt.DB
	path  string
	js    jetstream.JetStream
	log   *slog.Logger
	prune time.Duration

	mu      sync.Mutex
	seq     watermark.Mark // last applied stream sequence
	closed  chan struct{}
	isShut  bool
	running bool
	cancel  context.CancelFunc // cancels the active Run
	runDone chan struct{}      // closed when the active Run returns

	// A rebuild from the stream in progress (rebuild.go).
	rebuilding atomic.Bool
	rbMu       sync.Mutex
	rb         rebuildState
}

// Open opens (or creates) the bbolt file. It does not start following the
// stream; call Run for that.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("history: no path")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		// Only one process may hold the file; don't wait forever for it.
		Timeout: 5 * time.Second,
		// The freelist is rebuilt on open; not syncing it speeds up commits.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("history: open %s: %w", opts.Path, err)
	}
	var seq uint64
	var rebuild string // why the file starts over from the stream, if it does
	err = db.Update(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			switch v := m.Get(keyVersion); {
			case len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion:
				rebuild = RebuildLayout
				log.Warn("history: file layout changed, rebuilding from the stream", "path", opts.Path)
				if err := wipe(tx); err != nil {
					return err
				}
			case !bytes.Equal(m.Get(keyClean), []byte{1}):
				rebuild = RebuildUnclean
				log.Warn("history: file was not closed cleanly, rebuilding from the stream", "path", opts.Path)
				if err := wipe(tx); err != nil {
					return err
				}
			}
		}
		if err := ensureBuckets(tx); err != nil {
			return err
		}
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keyVersion, be64(schemaVersion)); err != nil {
			return err
		}
		if err := m.Put(keyClean, []byte{0}); err != nil {
			return err
		}
		if v := m.Get(keyLastSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("history: init %s: %w", opts.Path, err)
	}
	// The "unclean" mark above is synced; from here on commits are not:
	// two fsyncs per commit were what bounded ingest throughput, and a file
	// that may have lost writes is detected and rebuilt on the next Open.
	db.NoSync = true
	prune := opts.PruneInterval
	if prune <= 0 {
		prune = DefaultPruneInterval
	}
	st := &Store{db: db, path: opts.Path, js: opts.JS, log: log, prune: prune, closed: make(chan struct{})}
	st.seq.Reset(seq)
	if rebuild == "" && seq == 0 {
		rebuild = RebuildNewFile
	}
	if rebuild != "" {
		// Until the follower has applied what the stream held at this
		// point, the file is a partial history (Rebuilding). Knowing the
		// target now means an empty stream ends the "rebuild" before Open
		// returns, so a fresh process is not reported as rebuilding.
		st.startRebuild(rebuild, 0)
		st.learnRebuildTarget(ctx)
	}
	return st, nil
}

func ensureBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// wipe drops every bucket; lastSeq goes back to 0.
func wipe(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
	}
	if err := ensureBuckets(tx); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, be64(schemaVersion))
}

// Close stops an active Run, waits for it, and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.isShut {
		s.mu.Unlock()
		return nil
	}
	s.isShut = true
	close(s.closed)
	cancel, done := s.cancel, s.runDone
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	s.db.NoSync = false
	if err := s.db.Sync(); err != nil {
		s.db.Close()
		return fmt.Errorf("history: sync: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyClean, []byte{1})
	}); err != nil {
		s.db.Close()
		return fmt.Errorf("history: mark clean: %w", err)
	}
	return s.db.Close()
}

// LastSeq is the last RUN_EVENTS sequence applied to the file.
func (s *Store) LastSeq() uint64 { return s.seq.Load() }

// WaitSeq blocks until the stream sequence seq has been applied (or ctx ends,
// or the store is closed). Publishers use the PubAck sequence with it to read
// their own writes.
func (s *Store) WaitSeq(ctx context.Context, seq uint64) error {
	if err := s.seq.Wait(ctx, seq, s.closed); err != nil {
		if errors.Is(err, watermark.ErrAborted) {
			return errClosed
		}
		return err
	}
	return nil
}

// Run follows RUN_EVENTS from LastSeq()+1 with an ordered consumer and
// applies what arrives until ctx ends, then returns nil. Messages that arrive
// together are applied in one transaction (up to 500), together with the
// last applied sequence. Broken records are logged and skipped; lost
// connections and deleted consumers are retried. Every PruneInterval it
// also runs Prune. It returns an error only when the file cannot be written.
func (s *Store) Run(ctx context.Context) error {
	if s.js == nil {
		return errNoJS
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	switch {
	case s.isShut:
		s.mu.Unlock()
		return errClosed
	case s.running:
		s.mu.Unlock()
		return errRunning
	}
	done := make(chan struct{})
	s.running, s.cancel, s.runDone = true, cancel, done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running, s.cancel, s.runDone = false, nil, nil
		s.mu.Unlock()
		close(done)
	}()
	pruned := make(chan struct{})
	// Registered after the deferred close(done), so it runs first: Close
	// waits on done and must find the pruner gone too.
	defer func() {
		cancel()
		<-pruned
	}()
	go func() {
		defer close(pruned)
		s.pruneLoop(ctx)
	}()
	released := make(chan struct{})
	defer func() { <-released }()
	go func() {
		defer close(released)
		s.releaseLoop(ctx)
	}()

	backoff := 100 * time.Millisecond
	for {
		applied, err := s.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fe fatalError
		if errors.As(err, &fe) {
			return fe.err
		}
		if applied {
			backoff = 100 * time.Millisecond
		}
		s.log.Warn("history: following RUN_EVENTS failed, retrying", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// fatalError marks errors of the file itself, which retrying cannot fix.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// follow runs one ordered consumer until it fails or ctx ends. applied
// reports whether any message was applied.
// batchLinger is how long a batch waits for more records after its first.
const batchLinger = 10 * time.Millisecond

func (s *Store) follow(ctx context.Context) (applied bool, err error) {
	if err := s.checkStream(ctx); err != nil {
		return false, err
	}
	last := s.LastSeq()
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if last > 0 {
		// When last+1 has aged out the server starts at the first message
		// still stored, which is all a read model can do.
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = last + 1
	}
	s.learnRebuildTarget(ctx)
	cons, err := s.js.OrderedConsumer(ctx, subjects.StreamRunEvents, cfg)
	if err != nil {
		return false, fmt.Errorf("ordered consumer: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	// Records are decoded in the consumer's goroutine, so JSON work overlaps
	// with the commit of the previous batch.
	recs := make(chan record, 2*maxBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r := decodeMsg(m)
		if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
			r.caughtUp = true
		}
		select {
		case recs <- r:
		case <-stop:
		}
	},
		jetstream.PullMaxMessages(2*maxBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.log.Debug("history: consumer", "err", err)
		}),
	)
	if err != nil {
		return false, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	s.log.Info("history: following RUN_EVENTS", "from", last+1)

	batch := make([]record, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return applied, ctx.Err()
		case <-cc.Closed():
			return applied, errConsumerGo
		case r := <-recs:
			batch = append(batch, r)
		}
		// Gather what arrives within a short linger: each commit writes
		// several pages whatever it holds, so fewer, larger transactions
		// cost far less per record. The read model lags by at most
		// batchLinger plus one commit.
		linger := time.NewTimer(batchLinger)
	collect:
		for len(batch) < maxBatch {
			select {
			case r := <-recs:
				batch = append(batch, r)
			case <-linger.C:
				break collect
			case <-ctx.Done():
				break collect
			}
		}
		linger.Stop()
		if err := s.applyBatch(batch); err != nil {
			return applied, fatalError{err}
		}
		applied = true
		s.progress(batch[len(batch)-1].caughtUp)
	}
}

// checkStream detects a stream that is behind the file, which means it was
// deleted and recreated: the file then describes records the stream no longer
// has, and its sequences mean something else. The file is wiped and rebuilt.
func (s *Store) checkStream(ctx context.Context) error {
	last := s.LastSeq()
	if last == 0 {
		return nil
	}
	st, err := s.js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return fmt.Errorf("stream %s: %w", subjects.StreamRunEvents, err)
	}
	info := st.CachedInfo()
	if info == nil || info.State.LastSeq >= last {
		return nil
	}
	s.log.Warn("history: stream is behind the file (recreated?), rebuilding",
		"fileSeq", last, "streamSeq", info.State.LastSeq)
	if err := s.db.Update(wipe); err != nil {
		return fatalError{err}
	}
	s.seq.Reset(0)
	s.startRebuild(RebuildRecreate, info.State.LastSeq)
	if info.State.Msgs == 0 {
		s.endRebuild()
	}
	return nil
}

// releaseInterval is how often the read model hands its file's resident
// pages back to the kernel (see releaseMapped).
const releaseInterval = 10 * time.Second

func (s *Store) releaseLoop(ctx context.Context) {
	t := time.NewTicker(releaseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := releaseMapped(s.path); err != nil {
				s.log.Debug("history: releasing mapped pages", "err", err)
			}
		}
	}
}

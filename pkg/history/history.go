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
// rebuilds it from the stream.
//
// Layout (every key component is escaped so that it contains no 0x00 byte,
// which makes 0x00 an unambiguous separator and "<project>\x00" an exact
// prefix):
//
//	meta        "lastSeq" -> uint64, "version" -> uint64
//	runs        project \x00 runID   -> row (see row.go)
//	decisions   project \x00 eventID -> JSON runs.Decision
//	idx_project project \x00 ts \x00 runID
//	idx_wf      project \x00 workflow \x00 ts \x00 runID
//	idx_user    project \x00 user \x00 ts \x00 runID
//
// ts is the run's first-seen CreatedAt as 8 order-preserving big-endian
// bytes. It never changes once a run is stored, so a run has exactly one
// entry per index and paging cursors stay valid while the run progresses.
package history

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
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
const schemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketRuns      = []byte("runs")
	bucketDecisions = []byte("decisions")
	bucketIdxProj   = []byte("idx_project")
	bucketIdxWf     = []byte("idx_wf")
	bucketIdxUser   = []byte("idx_user")
	allBuckets      = [][]byte{bucketMeta, bucketRuns, bucketDecisions, bucketIdxProj, bucketIdxWf, bucketIdxUser}

	keyLastSeq = []byte("lastSeq")
	keyVersion = []byte("version")
)

// maxBatch is the most messages applied in one bbolt transaction.
const maxBatch = 500

// Options configure a Store.
type Options struct {
	// Path is the bbolt file; it is created when missing.
	Path string
	// JS is used by Run to follow RUN_EVENTS; Open works without it.
	JS     jetstream.JetStream
	Logger *slog.Logger
}

// Store is the bbolt read model of run history. Reads are safe for
// concurrent use; Apply must not be called while Run is active.
type Store struct {
	db  *bolt.DB
	js  jetstream.JetStream
	log *slog.Logger

	mu      sync.Mutex
	seq     uint64        // last applied stream sequence
	seqCh   chan struct{} // closed and replaced whenever seq advances
	closed  chan struct{}
	isShut  bool
	running bool
	cancel  context.CancelFunc // cancels the active Run
	runDone chan struct{}      // closed when the active Run returns
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
	err = db.Update(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keyVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
				log.Warn("history: file layout changed, rebuilding from the stream", "path", opts.Path)
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
		if v := m.Get(keyLastSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("history: init %s: %w", opts.Path, err)
	}
	return &Store{
		db:     db,
		js:     opts.JS,
		log:    log,
		seq:    seq,
		seqCh:  make(chan struct{}),
		closed: make(chan struct{}),
	}, nil
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
	return ensureBuckets(tx)
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
	return s.db.Close()
}

// LastSeq is the last RUN_EVENTS sequence applied to the file.
func (s *Store) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// WaitSeq blocks until the stream sequence seq has been applied (or ctx ends,
// or the store is closed). Publishers use the PubAck sequence with it to read
// their own writes.
func (s *Store) WaitSeq(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		cur, ch := s.seq, s.seqCh
		s.mu.Unlock()
		if cur >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-s.closed:
			return errClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Store) setSeq(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.seq {
		s.seq = seq
		close(s.seqCh)
		s.seqCh = make(chan struct{})
	}
}

// resetSeq sets seq back (after a wipe); waiters keep waiting.
func (s *Store) resetSeq(seq uint64) {
	s.mu.Lock()
	s.seq = seq
	s.mu.Unlock()
}

// Run follows RUN_EVENTS from LastSeq()+1 with an ordered consumer and
// applies what arrives until ctx ends, then returns nil. Messages that arrive
// together are applied in one transaction (up to 500), together with the
// last applied sequence. Broken records are logged and skipped; lost
// connections and deleted consumers are retried. It returns an error only
// when the file cannot be written.
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
	cons, err := s.js.OrderedConsumer(ctx, subjects.StreamRunEvents, cfg)
	if err != nil {
		return false, fmt.Errorf("ordered consumer: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	msgs := make(chan jetstream.Msg, 2*maxBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
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
		case m := <-msgs:
			batch = appendMsg(batch, m)
		}
		// Take what else is already waiting without delaying the first
		// message: while a commit is in flight messages pile up in msgs, so
		// batches grow with the load and an idle stream costs no latency.
	collect:
		for len(batch) < maxBatch {
			select {
			case m := <-msgs:
				batch = appendMsg(batch, m)
			default:
				break collect
			}
		}
		if err := s.applyBatch(batch); err != nil {
			return applied, fatalError{err}
		}
		applied = true
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
	s.resetSeq(0)
	return nil
}

// record is one RUN_EVENTS message.
type record struct {
	seq     uint64
	subject string
	header  nats.Header
	data    []byte
}

func appendMsg(batch []record, m jetstream.Msg) []record {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	return append(batch, record{seq: seq, subject: m.Subject(), header: m.Headers(), data: m.Data()})
}

// Apply applies one RUN_EVENTS message in its own transaction. Messages at or
// below LastSeq are ignored, so re-applying is harmless; seq 0 applies
// without tracking a sequence. Malformed records are logged and skipped
// (nil error). Not for use while Run is active.
func (s *Store) Apply(seq uint64, subject string, header nats.Header, data []byte) error {
	return s.applyBatch([]record{{seq: seq, subject: subject, header: header, data: data}})
}

func (s *Store) applyBatch(batch []record) error {
	last := s.LastSeq()
	newLast := last
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		for i := range batch {
			r := &batch[i]
			if r.seq != 0 && r.seq <= newLast {
				continue
			}
			if err := s.applyTx(b, r); err != nil {
				return err
			}
			if r.seq > newLast {
				newLast = r.seq
			}
		}
		if newLast == last {
			return nil
		}
		return b.meta.Put(keyLastSeq, be64(newLast))
	})
	if err != nil {
		return fmt.Errorf("history: apply: %w", err)
	}
	s.setSeq(newLast)
	return nil
}

type buckets struct {
	meta, runs, decisions, idxProj, idxWf, idxUser *bolt.Bucket
}

func bucketsOf(tx *bolt.Tx) buckets {
	return buckets{
		meta:      tx.Bucket(bucketMeta),
		runs:      tx.Bucket(bucketRuns),
		decisions: tx.Bucket(bucketDecisions),
		idxProj:   tx.Bucket(bucketIdxProj),
		idxWf:     tx.Bucket(bucketIdxWf),
		idxUser:   tx.Bucket(bucketIdxUser),
	}
}

// subjectParts splits sb.history.<project>.<kind>.<id>; missing parts are "".
func subjectParts(subject string) (project, kind, id string) {
	parts := strings.SplitN(subject, ".", 5)
	if len(parts) < 3 || parts[0] != "sb" || parts[1] != "history" {
		return "", "", ""
	}
	project = parts[2]
	if len(parts) > 3 {
		kind = parts[3]
	}
	if len(parts) > 4 {
		id = parts[4]
	}
	return project, kind, id
}

// applyTx applies one record. Only errors of the file are returned; a record
// that cannot be understood is logged and skipped.
func (s *Store) applyTx(b buckets, r *record) error {
	project, kind, id := subjectParts(r.subject)
	if v := r.header.Get(runs.HeaderRecord); v != "" {
		kind = v
	}
	skip := func(reason string, err error) error {
		s.log.Warn("history: skipping record", "seq", r.seq, "subject", r.subject, "reason", reason, "err", err)
		return nil
	}
	switch kind {
	case runs.RecordRun:
		var run runs.Run
		if err := json.Unmarshal(r.data, &run); err != nil {
			return skip("malformed run", err)
		}
		data := r.data
		changed := false
		if run.ID == "" && id != "" {
			run.ID, changed = id, true
		}
		if project == "" {
			project = run.Project
		} else if run.Project != project {
			if run.Project != "" {
				s.log.Warn("history: run project differs from its subject; using the subject's",
					"seq", r.seq, "subject", r.subject, "project", run.Project)
			}
			run.Project, changed = project, true
		}
		if run.ID == "" || project == "" {
			return skip("run without id or project", nil)
		}
		if changed {
			var err error
			if data, err = json.Marshal(&run); err != nil {
				return skip("encode run", err)
			}
		}
		return putRun(b, &run, data)
	case runs.RecordDecision:
		var d runs.Decision
		if err := json.Unmarshal(r.data, &d); err != nil {
			return skip("malformed decision", err)
		}
		data := r.data
		changed := false
		if d.EventID == "" && id != "" {
			d.EventID, changed = id, true
		}
		if project == "" {
			project = d.Project
		} else if d.Project != project {
			d.Project, changed = project, true
		}
		if d.EventID == "" || project == "" {
			return skip("decision without event id or project", nil)
		}
		if changed {
			var err error
			if data, err = json.Marshal(&d); err != nil {
				return skip("encode decision", err)
			}
		}
		return putDecision(b, &d, data)
	default:
		return skip("unknown record kind "+kind, nil)
	}
}

// putRun stores a snapshot unless a newer one (higher Seq) is stored. The
// index time of an already stored run is kept.
func putRun(b buckets, run *runs.Run, data []byte) error {
	key := rowKey(run.Project, run.ID)
	ts := tsKey(run.CreatedAt)
	if old := b.runs.Get(key); old != nil {
		h, _, err := decodeRow(old)
		if err == nil {
			if int64(run.Seq) < h.seq {
				return nil // stale snapshot
			}
			ts = h.ts
			if h.workflow != run.Workflow || h.user != run.User {
				if err := deleteIndex(b, run.Project, run.ID, h); err != nil {
					return err
				}
			}
		}
		// A row that doesn't decode is simply replaced.
	}
	h := rowHeader{ts: ts, seq: int64(run.Seq), workflow: run.Workflow, user: run.User, status: string(run.Status)}
	if err := b.runs.Put(key, encodeRow(h, data)); err != nil {
		return err
	}
	return putIndex(b, run.Project, run.ID, h)
}

// putDecision stores a decision and a queued row for every run it started
// that has no row yet.
func putDecision(b buckets, d *runs.Decision, data []byte) error {
	if err := b.decisions.Put(rowKey(d.Project, d.EventID), data); err != nil {
		return err
	}
	for _, c := range d.Candidates {
		if c.Outcome != runs.OutcomeRan || c.RunID == "" {
			continue
		}
		if b.runs.Get(rowKey(d.Project, c.RunID)) != nil {
			continue
		}
		user := c.User
		if user == "" {
			user = d.User
		}
		run := runs.Run{
			ID:         c.RunID,
			Project:    d.Project,
			Workflow:   c.Workflow,
			User:       user,
			Credential: c.Credential,
			EventID:    d.EventID,
			Status:     runs.StatusQueued,
			Steps:      []runs.Step{},
			Trigger:    d.Trigger,
			CreatedAt:  d.ReceivedAt,
		}
		rd, err := json.Marshal(&run)
		if err != nil {
			return fmt.Errorf("encode queued run: %w", err)
		}
		if err := putRun(b, &run, rd); err != nil {
			return err
		}
	}
	return nil
}

func putIndex(b buckets, project, runID string, h rowHeader) error {
	if err := b.idxProj.Put(idxKey(project, "", false, h.ts, runID), nil); err != nil {
		return err
	}
	if h.workflow != "" {
		if err := b.idxWf.Put(idxKey(project, h.workflow, true, h.ts, runID), nil); err != nil {
			return err
		}
	}
	if h.user != "" {
		if err := b.idxUser.Put(idxKey(project, h.user, true, h.ts, runID), nil); err != nil {
			return err
		}
	}
	return nil
}

func deleteIndex(b buckets, project, runID string, h rowHeader) error {
	if h.workflow != "" {
		if err := b.idxWf.Delete(idxKey(project, h.workflow, true, h.ts, runID)); err != nil {
			return err
		}
	}
	if h.user != "" {
		if err := b.idxUser.Delete(idxKey(project, h.user, true, h.ts, runID)); err != nil {
			return err
		}
	}
	return nil
}

// GetRun returns the stored state of a run.
func (s *Store) GetRun(project, runID string) (*runs.Run, error) {
	var run *runs.Run
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRuns).Get(rowKey(project, runID))
		if v == nil {
			return ErrNotFound
		}
		var err error
		run, err = decodeRun(v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// GetDecision returns the decision record of a trigger event.
func (s *Store) GetDecision(project, eventID string) (*runs.Decision, error) {
	var d runs.Decision
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDecisions).Get(rowKey(project, eventID))
		if v == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("history: decode decision: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

func decodeRun(v []byte) (*runs.Run, error) {
	_, data, err := decodeRow(v)
	if err != nil {
		return nil, err
	}
	var run runs.Run
	if err := json.Unmarshal(data, &run); err != nil {
		return nil, fmt.Errorf("history: decode run: %w", err)
	}
	return &run, nil
}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

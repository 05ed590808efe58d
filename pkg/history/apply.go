package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// record is one decoded RUN_EVENTS message. Decoding needs no file access,
// so Run does it ahead of the transaction that applies the record.
type record struct {
	seq     uint64
	subject string
	kind    string // runs.RecordRun or runs.RecordDecision
	run     *runs.Run
	dec     *runs.Decision
	data    []byte // the JSON to store
	row     []byte // for a run: its encoded row, ts still to be set
	queued  []queued
	skip    string // why the record cannot be applied; "" if it can
	err     error  // with skip, the underlying error
	note    string // something worth a warning that doesn't stop the record
	// caughtUp: the consumer had nothing more pending after this record.
	caughtUp bool
}

// runIndex is the part of a run snapshot the read model indexes.
type runIndex struct {
	ID        string      `json:"id"`
	Project   string      `json:"project"`
	Workflow  string      `json:"workflow"`
	User      string      `json:"user"`
	Status    runs.Status `json:"status"`
	Seq       int         `json:"seq"`
	CreatedAt time.Time   `json:"createdAt"`
}

// queued is the row a decision creates for a run it started, unless the
// run has a row already.
type queued struct {
	run *runs.Run
	row []byte
}

func decodeMsg(m jetstream.Msg) record {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	return decodeRecord(seq, m.Subject(), m.Headers(), m.Data())
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

// decodeRecord parses one message. The subject's project is authoritative:
// it is what the stream is partitioned and permissioned by. Ids missing from
// the JSON are taken from the subject.
func decodeRecord(seq uint64, subject string, header nats.Header, data []byte) record {
	r := record{seq: seq, subject: subject, data: data}
	project, kind, id := subjectParts(subject)
	if v := header.Get(runs.HeaderRecord); v != "" {
		kind = v
	}
	r.kind = kind
	switch kind {
	case runs.RecordRun:
		// Only the indexed fields are decoded: steps carry arbitrary inputs
		// and outputs, and decoding them into maps was most of this
		// follower's allocation. The stored bytes are the snapshot as sent.
		var ix runIndex
		if err := json.Unmarshal(data, &ix); err != nil {
			r.skip, r.err = "malformed run", err
			return r
		}
		run := &runs.Run{ID: ix.ID, Project: ix.Project, Workflow: ix.Workflow, User: ix.User,
			Status: ix.Status, Seq: ix.Seq, CreatedAt: ix.CreatedAt}
		changed := r.fromSubject("run", &run.ID, &run.Project, id, project)
		if run.ID == "" || run.Project == "" {
			r.skip = "run without id or project"
			return r
		}
		r.run = run
		if changed {
			// Rare (hand-published records): re-encode the whole snapshot.
			full := new(runs.Run)
			if r.err = json.Unmarshal(data, full); r.err == nil {
				full.ID, full.Project = run.ID, run.Project
				r.data, r.err = json.Marshal(full)
			}
		}
		r.row = encodeRow(headerOf(run), r.data)
	case runs.RecordDecision:
		d := new(runs.Decision)
		if err := json.Unmarshal(data, d); err != nil {
			r.skip, r.err = "malformed decision", err
			return r
		}
		changed := r.fromSubject("decision", &d.EventID, &d.Project, id, project)
		if d.EventID == "" || d.Project == "" {
			r.skip = "decision without event id or project"
			return r
		}
		r.dec = d
		if changed {
			r.data, r.err = json.Marshal(d)
		}
		for _, c := range d.Candidates {
			if c.Outcome != runs.OutcomeRan || c.RunID == "" {
				continue
			}
			run := queuedRun(d, c)
			data, err := json.Marshal(run)
			if err != nil {
				r.err = err
				break
			}
			r.queued = append(r.queued, queued{run, encodeRow(headerOf(run), data)})
		}
	default:
		r.skip = fmt.Sprintf("unknown record kind %q", kind)
	}
	if r.err != nil {
		r.skip = "encode record"
	}
	return r
}

// fromSubject reconciles a decoded record's id and project fields with its
// subject's: an id missing from the JSON is the subject's, and the subject's
// project, when it has one, wins (r.note says so if the JSON named another).
// It reports whether it changed a field, so the stored JSON must be
// re-encoded.
func (r *record) fromSubject(what string, id, project *string, subjectID, subjectProject string) (changed bool) {
	if *id == "" && subjectID != "" {
		*id, changed = subjectID, true
	}
	if subjectProject != "" && *project != subjectProject {
		if *project != "" {
			r.note = what + " project " + *project + " differs from its subject; using the subject's"
		}
		*project, changed = subjectProject, true
	}
	return changed
}

// Apply applies one RUN_EVENTS message in its own transaction. Messages at or
// below LastSeq are ignored, so re-applying is harmless; seq 0 applies
// without tracking a sequence. Malformed records are logged and skipped
// (nil error). Not for use while Run is active.
func (s *Store) Apply(seq uint64, subject string, header nats.Header, data []byte) error {
	return s.applyBatch([]record{decodeRecord(seq, subject, header, data)})
}

// applyBatch applies records in one transaction, together with the new last
// sequence, and then wakes WaitSeq callers.
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
			newLast = max(newLast, r.seq)
		}
		if newLast == last {
			return nil
		}
		return b.meta.Put(keyLastSeq, be64(newLast))
	})
	if err != nil {
		return fmt.Errorf("history: apply: %w", err)
	}
	s.seq.Advance(newLast)
	return nil
}

type buckets struct {
	meta, runs, runIDs, decisions, idxWf, idxUser, bySeq *bolt.Bucket
}

func bucketsOf(tx *bolt.Tx) buckets {
	b := buckets{
		meta:      tx.Bucket(bucketMeta),
		runs:      tx.Bucket(bucketRuns),
		runIDs:    tx.Bucket(bucketRunIDs),
		decisions: tx.Bucket(bucketDecisions),
		idxWf:     tx.Bucket(bucketIdxWf),
		idxUser:   tx.Bucket(bucketIdxUser),
		bySeq:     tx.Bucket(bucketBySeq),
	}
	// Keys of these grow with time: fill pages fuller than the default 50%
	// split, which suits mostly-appending inserts.
	b.runs.FillPercent = 0.8
	b.idxWf.FillPercent = 0.9
	b.idxUser.FillPercent = 0.9
	b.bySeq.FillPercent = 1 // sequences only grow: pure appends
	return b
}

// applyTx applies one record. Only errors of the file are returned; a record
// that cannot be understood is logged and skipped.
func (s *Store) applyTx(b buckets, r *record) error {
	if r.note != "" {
		s.log.Warn("history: "+r.note, "seq", r.seq, "subject", r.subject)
	}
	switch {
	case r.skip != "":
		s.log.Warn("history: skipping record", "seq", r.seq, "subject", r.subject, "reason", r.skip, "err", r.err)
		return nil
	case r.run != nil:
		return putRun(b, r.run, r.row, r.seq)
	case r.dec != nil:
		return putDecision(b, r)
	}
	return nil
}

func headerOf(run *runs.Run) rowHeader {
	return rowHeader{seq: int64(run.Seq), workflow: run.Workflow, user: run.User, status: string(run.Status)}
}

// queuedRun is the row of a run a decision started, until its first
// snapshot arrives.
func queuedRun(d *runs.Decision, c runs.Candidate) *runs.Run {
	user := c.User
	if user == "" {
		user = d.User
	}
	return &runs.Run{
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
}

// putRun stores a snapshot (row from encodeRow), applied from stream
// sequence recSeq (0: untracked), unless a newer one (higher Seq) is stored.
// A run keeps the position (first-seen CreatedAt) of its first row. row is
// owned by the transaction afterwards.
func putRun(b buckets, run *runs.Run, row []byte, recSeq uint64) error {
	idKey := rowKey(run.Project, run.ID)
	h := headerOf(run)
	newIndex := true
	var old rowHeader
	var key []byte
	if v := b.runIDs.Get(idKey); len(v) == 8 {
		h.ts = binary.BigEndian.Uint64(v)
		key = runKey(run.Project, h.ts, run.ID)
		if ov := b.runs.Get(key); ov != nil {
			if oh, _, err := decodeRow(ov); err == nil {
				if h.seq < oh.seq {
					// A stale snapshot changes nothing shown, but the
					// stream now holds a newer record of the run, so the
					// run stays until that one ages out too.
					if recSeq <= oh.recSeq {
						return nil
					}
					keep := bytes.Clone(ov)
					setRowRecSeq(keep, recSeq)
					if err := b.runs.Put(key, keep); err != nil {
						return err
					}
					return moveSeq(b, oh.recSeq, recSeq, seqEntry(seqRun, run.Project, run.ID))
				}
				old, newIndex = oh, oh.workflow != h.workflow || oh.user != h.user
			}
			// A row that doesn't decode is replaced and reindexed.
		}
	} else {
		h.ts = tsKey(run.CreatedAt)
		key = runKey(run.Project, h.ts, run.ID)
		if err := b.runIDs.Put(idKey, be64(h.ts)); err != nil {
			return err
		}
	}
	setRowTS(row, h.ts)
	recSeq = max(recSeq, old.recSeq)
	setRowRecSeq(row, recSeq)
	if err := b.runs.Put(key, row); err != nil {
		return err
	}
	if err := moveSeq(b, old.recSeq, recSeq, seqEntry(seqRun, run.Project, run.ID)); err != nil {
		return err
	}
	if !newIndex {
		return nil // index entries are already right; don't dirty their pages
	}
	if err := deleteIndex(b, run.Project, run.ID, old); err != nil {
		return err
	}
	return putIndex(b, run.Project, run.ID, h)
}

// putDecision stores a decision, prefixed with the stream sequence it came
// from, and a queued row for every run it started that has no row yet.
func putDecision(b buckets, r *record) error {
	d := r.dec
	key := rowKey(d.Project, d.EventID)
	var oldSeq uint64
	data := r.data
	var old []byte
	if ov := b.decisions.Get(key); len(ov) >= 8 {
		oldSeq, old = binary.BigEndian.Uint64(ov), ov[8:]
	}
	if d.Summary.Pages > 1 {
		merged, err := mergeDecisionPage(old, d)
		if err != nil {
			return err
		}
		data = merged
	}
	v := make([]byte, 0, 8+len(data))
	v = binary.BigEndian.AppendUint64(v, r.seq)
	if err := b.decisions.Put(key, append(v, data...)); err != nil {
		return err
	}
	if err := moveSeq(b, oldSeq, r.seq, seqEntry(seqDecision, d.Project, d.EventID)); err != nil {
		return err
	}
	for _, q := range r.queued {
		if b.runIDs.Get(rowKey(q.run.Project, q.run.ID)) != nil {
			continue
		}
		if err := putRun(b, q.run, q.row, r.seq); err != nil {
			return err
		}
	}
	return nil
}

// storedDecision is a paged decision as the read model keeps it: one row
// holding every page applied so far, by page index, so a page applied twice
// (the router published it again) replaces itself instead of adding up.
type storedDecision struct {
	runs.Decision
	PageCandidates map[int][]runs.Candidate `json:"pageCandidates,omitempty"`
}

// mergeDecisionPage adds page d to the stored decision old (nil: none yet).
func mergeDecisionPage(old []byte, d *runs.Decision) ([]byte, error) {
	st := storedDecision{Decision: *d}
	st.Summary.Skipped = nil // decoding the stored row would add its counts to d's map
	if old != nil {
		if err := json.Unmarshal(old, &st); err != nil {
			return nil, fmt.Errorf("history: decode decision: %w", err)
		}
	}
	if d.Summary.Pages >= st.Summary.Pages {
		// A decision the router writes as it goes (a large schedule fan-out)
		// counts more pages in each later record, its final summary the
		// most; the pages of a one-shot decision all carry the same one.
		st.Summary = d.Summary
	}
	if st.PageCandidates == nil {
		st.PageCandidates = map[int][]runs.Candidate{}
	}
	st.PageCandidates[d.Page] = d.Candidates
	st.Candidates, st.Page = nil, 0
	return json.Marshal(st)
}

// decodeDecision reads a stored decision, pages put together in order.
func decodeDecision(v []byte) (*runs.Decision, error) {
	var st storedDecision
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, fmt.Errorf("history: decode decision: %w", err)
	}
	if st.PageCandidates != nil {
		pages := make([]int, 0, len(st.PageCandidates))
		for p := range st.PageCandidates {
			pages = append(pages, p)
		}
		sort.Ints(pages)
		st.Candidates = []runs.Candidate{}
		for _, p := range pages {
			st.Candidates = append(st.Candidates, st.PageCandidates[p]...)
		}
	}
	return &st.Decision, nil
}

// moveSeq points the by_seq index at a run's or decision's newest stream
// sequence: its entry under from (if any) goes, one under to is written.
// Sequence 0 is never indexed (records applied without one are never
// pruned).
func moveSeq(b buckets, from, to uint64, entry []byte) error {
	if from == to {
		return nil
	}
	if from != 0 {
		if err := b.bySeq.Delete(seqKey(from, entry)); err != nil {
			return err
		}
	}
	if to == 0 {
		return nil
	}
	return b.bySeq.Put(seqKey(to, entry), nil)
}

func putIndex(b buckets, project, runID string, h rowHeader) error {
	if h.workflow != "" {
		if err := b.idxWf.Put(idxKey(project, h.workflow, h.ts, runID), nil); err != nil {
			return err
		}
	}
	if h.user != "" {
		if err := b.idxUser.Put(idxKey(project, h.user, h.ts, runID), nil); err != nil {
			return err
		}
	}
	return nil
}

// deleteIndex removes the entries of h (a zero h has none).
func deleteIndex(b buckets, project, runID string, h rowHeader) error {
	if h.workflow != "" {
		if err := b.idxWf.Delete(idxKey(project, h.workflow, h.ts, runID)); err != nil {
			return err
		}
	}
	if h.user != "" {
		if err := b.idxUser.Delete(idxKey(project, h.user, h.ts, runID)); err != nil {
			return err
		}
	}
	return nil
}

// GetRun returns the stored state of a run, with the trigger that started
// it.
func (s *Store) GetRun(project, runID string) (*runs.Run, error) {
	run, err := s.storedRun(project, runID)
	if err != nil || len(run.Trigger) > 0 {
		return run, err
	}
	// Snapshots do not repeat the trigger; the decision record that started
	// the run refers to it (older ones hold it).
	var dec struct {
		Trigger    json.RawMessage `json:"trigger"`
		TriggerSeq uint64          `json:"triggerSeq"`
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if d := tx.Bucket(bucketDecisions).Get(rowKey(project, run.EventID)); len(d) >= 8 {
			_ = json.Unmarshal(d[8:], &dec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	run.Trigger = dec.Trigger
	if len(run.Trigger) == 0 {
		run.Trigger = s.trigger(dec.TriggerSeq)
	}
	return run, nil
}

// storedRun returns the run's snapshot as stored.
func (s *Store) storedRun(project, runID string) (*runs.Run, error) {
	var run *runs.Run
	err := s.db.View(func(tx *bolt.Tx) error {
		ts := tx.Bucket(bucketRunIDs).Get(rowKey(project, runID))
		if len(ts) != 8 {
			return ErrNotFound
		}
		v := tx.Bucket(bucketRuns).Get(runKey(project, binary.BigEndian.Uint64(ts), runID))
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
	var d *runs.Decision
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDecisions).Get(rowKey(project, eventID))
		if v == nil {
			return ErrNotFound
		}
		if len(v) < 8 {
			return errors.New("history: corrupt decision row")
		}
		var err error
		d, err = decodeDecision(v[8:])
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(d.Trigger) == 0 {
		d.Trigger = s.trigger(d.TriggerSeq)
	}
	return d, nil
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

// trigger reads the trigger at seq in TRIGGERS, as JSON; nil when there is
// none (no sequence, no stream access, or the trigger has aged out).
func (s *Store) trigger(seq uint64) json.RawMessage {
	if seq == 0 || s.js == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		return nil
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return nil
	}
	ev, err := envelope.Decode(m.Data, m.Header.Get(envelope.HeaderContentType))
	if err != nil {
		return nil
	}
	b, err := envelope.MarshalJSON(ev)
	if err != nil {
		return nil
	}
	return b
}

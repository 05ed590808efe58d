package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// pruneBatch is the most runs and decisions deleted in one transaction, so a
// large pass (the first after a long downtime) never holds the writer lock
// long enough to stall the follower.
const pruneBatch = 1000

// pruneLoop runs Prune every s.prune until ctx ends.
func (s *Store) pruneLoop(ctx context.Context) {
	t := time.NewTicker(s.prune)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("history: prune failed", "err", err)
		case n > 0:
			s.log.Info("history: pruned what RUN_EVENTS no longer holds", "removed", n)
		}
	}
}

// Prune deletes every run and decision whose newest record is below the
// first sequence RUN_EVENTS still holds: the stream dropped all of it
// (MaxAge, or any other limit), so the read model forgets it too. It
// returns how many runs and decisions it removed. Safe to call while Run is
// active.
func (s *Store) Prune(ctx context.Context) (int, error) {
	if s.js == nil {
		return 0, errNoJS
	}
	st, err := s.js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return 0, fmt.Errorf("history: prune: stream %s: %w", subjects.StreamRunEvents, err)
	}
	info := st.CachedInfo()
	if info == nil {
		return 0, nil
	}
	return s.pruneBefore(ctx, info.State.FirstSeq)
}

// pruneBefore deletes every run and decision whose newest applied record has
// a stream sequence below first.
func (s *Store) pruneBefore(ctx context.Context, first uint64) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, more, err := s.pruneOnce(first)
		total += n
		if err != nil {
			return total, fmt.Errorf("history: prune: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

// pruneOnce deletes up to pruneBatch entries below first in one
// transaction; more reports whether any may be left.
func (s *Store) pruneOnce(first uint64) (n int, more bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		// Collect first: deleting under a bbolt cursor can skip keys.
		var keys [][]byte
		c := b.bySeq.Cursor()
		for k, _ := c.First(); k != nil && len(k) >= 9 && binary.BigEndian.Uint64(k) < first; k, _ = c.Next() {
			if len(keys) == pruneBatch {
				more = true
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			removed, err := pruneEntry(b, binary.BigEndian.Uint64(k), k[8], k[9:])
			if err != nil {
				return err
			}
			if removed {
				n++
			}
			if err := b.bySeq.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return n, more, err
}

// pruneEntry deletes the run or decision named by one by_seq entry if seq is
// still its newest record (the index only ever holds that one, but a row
// that was replaced after it failed to decode leaves a stale entry behind).
func pruneEntry(b buckets, seq uint64, kind byte, idKey []byte) (bool, error) {
	switch kind {
	case seqDecision:
		v := b.decisions.Get(idKey)
		if len(v) < 8 || binary.BigEndian.Uint64(v) != seq {
			return false, nil
		}
		return true, b.decisions.Delete(idKey)
	case seqRun:
		project, runID, ok := splitRowKey(idKey)
		ts := b.runIDs.Get(idKey)
		if !ok || len(ts) != 8 {
			return false, nil
		}
		key := runKey(project, binary.BigEndian.Uint64(ts), runID)
		h, _, err := decodeRow(b.runs.Get(key))
		if err != nil || h.recSeq != seq {
			return false, nil
		}
		if err := deleteIndex(b, project, runID, h); err != nil {
			return false, err
		}
		if err := b.runs.Delete(key); err != nil {
			return false, err
		}
		return true, b.runIDs.Delete(idKey)
	}
	return false, nil
}

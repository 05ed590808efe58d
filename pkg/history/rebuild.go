package history

import (
	"context"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// Why a file is rebuilt from the stream.
const (
	RebuildUnclean  = "unclean"          // not closed cleanly: commits may be lost
	RebuildLayout   = "layout"           // written by another schema version
	RebuildNewFile  = "new_file"         // missing or empty: a new replica, a deleted file
	RebuildRecreate = "stream_recreated" // the stream is behind the file
)

// Rebuild describes a rebuild of the file from RUN_EVENTS in progress.
// Until it is done the file holds only part of the history: a run it does
// not hold may well exist, so "not found" must not be answered.
type Rebuild struct {
	Reason string `json:"reason"`
	// Applied is the last stream sequence applied so far; Target the
	// stream's last sequence when the rebuild began (0 while unknown).
	Applied uint64    `json:"applied"`
	Target  uint64    `json:"target"`
	Since   time.Time `json:"since"`
}

// rebuildState is the Store's rebuild, guarded by Store.rbMu; active is
// read without the lock on every query.
type rebuildState struct {
	reason string
	target uint64
	since  time.Time
}

// Rebuilding reports the rebuild in progress, if any.
func (s *Store) Rebuilding() (Rebuild, bool) {
	if !s.rebuilding.Load() {
		return Rebuild{}, false
	}
	s.rbMu.Lock()
	defer s.rbMu.Unlock()
	if !s.rebuilding.Load() {
		return Rebuild{}, false
	}
	return Rebuild{Reason: s.rb.reason, Applied: s.LastSeq(), Target: s.rb.target, Since: s.rb.since}, true
}

// startRebuild marks the file as being rebuilt for reason, up to the
// stream's last sequence target (0: not known yet, learnt by the follower).
func (s *Store) startRebuild(reason string, target uint64) {
	s.rbMu.Lock()
	defer s.rbMu.Unlock()
	s.rb = rebuildState{reason: reason, target: target, since: time.Now()}
	s.rebuilding.Store(true)
	s.log.Info("history: rebuilding the read model from the stream", "reason", reason, "target", target)
}

// setRebuildTarget records the stream's last sequence for a rebuild whose
// target was not known, or ends it when the stream has nothing for it.
func (s *Store) setRebuildTarget(msgs, lastSeq uint64) {
	s.rbMu.Lock()
	if !s.rebuilding.Load() || s.rb.target != 0 {
		s.rbMu.Unlock()
		return
	}
	s.rb.target = lastSeq
	s.rbMu.Unlock()
	if msgs == 0 || lastSeq <= s.LastSeq() {
		s.endRebuild()
	}
}

// progress ends the rebuild once the target is applied, or once the
// consumer says nothing is pending (the target's message may have been
// deleted, so the sequence alone might never be reached).
func (s *Store) progress(caughtUp bool) {
	if !s.rebuilding.Load() {
		return
	}
	s.rbMu.Lock()
	target := s.rb.target
	s.rbMu.Unlock()
	if caughtUp || (target != 0 && s.LastSeq() >= target) {
		s.endRebuild()
	}
}

func (s *Store) endRebuild() {
	s.rbMu.Lock()
	defer s.rbMu.Unlock()
	if !s.rebuilding.Load() {
		return
	}
	s.rebuilding.Store(false)
	s.log.Info("history: read model rebuilt", "reason", s.rb.reason, "applied", s.LastSeq(),
		"took", time.Since(s.rb.since).Round(time.Millisecond))
}

// learnRebuildTarget asks the stream for its state while a rebuild's target
// is unknown. Failing to ask leaves it for the follower to learn.
func (s *Store) learnRebuildTarget(ctx context.Context) {
	if !s.rebuilding.Load() || s.js == nil {
		return
	}
	st, err := s.js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return
	}
	info := st.CachedInfo()
	s.setRebuildTarget(info.State.Msgs, info.State.LastSeq)
}

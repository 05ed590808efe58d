package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// stateQueue is the queue group of every read model answering run-state
// questions, so each question is answered once.
const stateQueue = "sb-history"

// stateWait bounds how long an answer waits for the read model to catch up
// with the history log.
const stateWait = 10 * time.Second

// ServeRunState answers the executor's question about a run whose state has
// left RUN_STATE (subjects.HistoryRunQuery) until ctx ends. Before reading,
// it waits until the read model has applied the history log up to where the
// log is now, so a run that finished just before the question is seen as
// finished; a read model that cannot catch up answers with an error, never
// with "unknown". It needs Options.JS.
func (s *Store) ServeRunState(ctx context.Context, nc *nats.Conn) error {
	if s.js == nil {
		return errors.New("history: ServeRunState needs Options.JS")
	}
	sub, err := nc.QueueSubscribe(subjects.HistoryRunQueryAll, stateQueue, func(m *nats.Msg) {
		if err := m.Respond(s.answerState(ctx, m.Subject)); err != nil {
			s.log.Warn("history: run-state answer not sent", "subject", m.Subject, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("history: run-state responder: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = sub.Unsubscribe()
	}()
	return nil
}

func (s *Store) answerState(ctx context.Context, subject string) []byte {
	var ans runs.StateAnswer
	if run, err := s.runState(ctx, subject); err != nil {
		ans.Error = err.Error()
	} else {
		ans.Run = run
	}
	b, _ := json.Marshal(ans)
	return b
}

// runState reads the run a HistoryRunQuery subject names, once the read
// model is current.
func (s *Store) runState(ctx context.Context, subject string) (*runs.Run, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 6 || !runs.ValidID(parts[5]) {
		return nil, fmt.Errorf("bad run-state subject %q", subject)
	}
	project, runID := parts[3], parts[5]
	ctx, cancel := context.WithTimeout(ctx, stateWait)
	defer cancel()
	st, err := s.js.Stream(ctx, subjects.StreamRunEvents)
	if err != nil {
		return nil, fmt.Errorf("history log: %w", err)
	}
	if err := s.WaitSeq(ctx, st.CachedInfo().State.LastSeq); err != nil {
		return nil, fmt.Errorf("read model not current: %w", err)
	}
	// The stored snapshot only: the trigger GetRun fills in can be as large
	// as a message may be, and the executor has it already.
	run, err := s.storedRun(project, runID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return run, err
}

package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/blob"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// replayPoll is how often a repeated synchronous request asks for its run's
// record while the original is still being answered.
const replayPoll = 100 * time.Millisecond

// errNoRecordedAnswer: the run's answer is in the record, but not in a form
// a reply can be rebuilt from (the response step's output was spilled to
// the object store).
var errNoRecordedAnswer = errors.New("the run's recorded answer cannot be replayed")

// replayResponse answers a repeated synchronous request (same
// Idempotency-Key, same request) with what the original caller got — the
// response step's status, headers and body as the run recorded them —
// instead of a 202, so a client that retries a call whose answer it lost
// gets that answer. The run id is derived from the key's event, so the
// original run is the one asked for. It asks the history role
// (subjects.HistoryRunQuery, which answers once its read model has caught
// up with the log) until the run has answered or wait has passed; then it
// is the 542 the original caller would have had.
func (s *Service) replayResponse(c *echo.Context, project, wid, runID string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
	defer cancel()
	for {
		rep, err := s.recordedAnswer(ctx, project, runID)
		switch {
		case errors.Is(err, errNoRecordedAnswer):
			return c.JSON(http.StatusAccepted, RequestAccepted{RunID: runID, WorkflowID: wid, Status: "accepted"})
		case err != nil && ctx.Err() == nil:
			s.log.Debug("run state not read; asking again", "run", runID, "err", err)
		case rep != nil:
			return writeReply(c, rep, runID)
		}
		select {
		case <-ctx.Done():
			if c.Request().Context().Err() != nil {
				return nil // the caller hung up
			}
			return c.JSON(StatusTimeout, RequestTimedOut{
				Message: "the workflow did not respond within " + wait.String() + "; the run continues",
				RunID:   runID, WorkflowID: wid,
			})
		case <-time.After(replayPoll):
		}
	}
}

// recordedAnswer rebuilds the answer a run gave its synchronous caller from
// its last recorded state: its response step, or — for a run that ended
// without one — the 500 run_failed or 204 the executor sends then. nil
// means it has not answered yet (or is not recorded yet).
func (s *Service) recordedAnswer(ctx context.Context, project, runID string) (*runs.Reply, error) {
	m, err := s.opts.NC.RequestWithContext(ctx, subjects.HistoryRunQuery(project, runID), nil)
	if err != nil {
		return nil, fmt.Errorf("ask the run history: %w", err)
	}
	var ans runs.StateAnswer
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		return nil, fmt.Errorf("run history answer: %w", err)
	}
	if ans.Error != "" {
		return nil, fmt.Errorf("run history: %s", ans.Error)
	}
	run := ans.Run
	if run == nil {
		return nil, nil
	}
	for _, st := range run.Steps {
		if st.Type != workflow.StepResponse {
			continue
		}
		if st.Status == runs.StepFailed {
			return &runs.Reply{RunID: run.ID, Status: http.StatusInternalServerError, Error: "response_template_failed",
				Message: "the response step failed: " + st.Error}, nil
		}
		out, err := s.unspill(ctx, st.Output)
		if err != nil {
			return nil, err
		}
		return replyFromOutput(run.ID, out)
	}
	switch run.Status {
	case runs.StatusFailed:
		return &runs.Reply{RunID: run.ID, Status: http.StatusInternalServerError, Error: "run_failed", Message: run.Error}, nil
	case runs.StatusSucceeded:
		return &runs.Reply{RunID: run.ID, Status: http.StatusNoContent}, nil
	}
	return nil, nil
}

// unspill reads a response step's output that the executor kept in the
// object store (over the inline budget) instead of the record.
func (s *Service) unspill(ctx context.Context, output any) (any, error) {
	ref, spilled := blob.IsRef(output)
	if !spilled {
		return output, nil
	}
	if s.opts.Blobs == nil {
		return nil, errNoRecordedAnswer
	}
	b, err := s.opts.Blobs.Get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("read the recorded response: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode the recorded response: %w", err)
	}
	return out, nil
}

// replyFromOutput is the inverse of the router's record of a response step
// ({status, headers, body}, the body decoded as JSON when its content type
// says JSON, else a string).
func replyFromOutput(runID string, output any) (*runs.Reply, error) {
	if _, spilled := blob.IsRef(output); spilled {
		return nil, errNoRecordedAnswer
	}
	out, ok := output.(map[string]any)
	if !ok {
		return nil, errNoRecordedAnswer
	}
	status, _ := out["status"].(float64)
	rep := &runs.Reply{RunID: runID, Status: int(status), Headers: map[string]string{}}
	if rep.Status == 0 {
		return nil, errNoRecordedAnswer
	}
	if hs, ok := out["headers"].(map[string]any); ok {
		for k, v := range hs {
			if sv, ok := v.(string); ok {
				rep.Headers[k] = sv
			}
		}
	}
	switch b := out["body"].(type) {
	case nil:
	case string:
		rep.Body = []byte(b)
		// A JSON string body was recorded decoded ("abc" as abc); raw
		// text that did not parse as JSON was kept as it was.
		if strings.Contains(strings.ToLower(rep.Headers["Content-Type"]), "json") && !json.Valid(rep.Body) {
			rep.Body, _ = json.Marshal(b)
		}
	default:
		if _, spilled := blob.IsRef(b); spilled {
			return nil, errNoRecordedAnswer
		}
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, apierr.Internal(err)
		}
		rep.Body = raw
	}
	return rep, nil
}

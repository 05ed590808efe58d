package history

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
)

// Bulk replay bounds: each replay publishes a trigger and waits for the
// router's decision, so one call replays a bounded page and a caller walks
// a larger set page by page with nextCursor (which is how the console shows
// progress).
const (
	DefaultBulkReplay = 20
	MaxBulkReplay     = 100
	// bulkConcurrency is how many replays of one call wait for their
	// decision at once: enough to hide the round trips, few enough that a
	// bulk replay does not crowd out the project's other triggers.
	bulkConcurrency = 4
)

// BulkReplayResult is the outcome of replaying one run of a bulk replay.
type BulkReplayResult struct {
	// ReplayOf is the run that was replayed.
	ReplayOf string `json:"replayOf"`
	// Status is "accepted" (RunID and EventID name the new run) or
	// "failed" (Error says why).
	Status  string        `json:"status"`
	RunID   string        `json:"runId,omitempty"`
	EventID string        `json:"eventId,omitempty"`
	Error   *apierr.Error `json:"error,omitempty"`
}

// BulkReplay is the answer of POST /v1/projects/{p}/runs/replay.
type BulkReplay struct {
	Results  []BulkReplayResult `json:"results"`
	Accepted int                `json:"accepted"`
	Failed   int                `json:"failed"`
	// NextCursor continues with the next page of the same filter; empty
	// when this page was the last.
	NextCursor string `json:"nextCursor,omitempty"`
}

// bulkReplay replays one page of the runs GET …/runs lists for the same
// query (filters, limit, cursor), each as POST …/runs/{run}/replay would,
// and answers every run's outcome. The page is taken before any replay
// starts and the list is newest first, so the new runs never show up in a
// later page of the same walk.
func (s *Service) bulkReplay(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	f, err := RunFilter(pr, c.QueryParam)
	if err != nil {
		return err
	}
	switch {
	case f.Limit == 0:
		f.Limit = DefaultBulkReplay
	case f.Limit > MaxBulkReplay:
		return apierr.BadRequest("invalid_field", "limit must be 1..%d for a bulk replay", MaxBulkReplay).WithField("limit")
	}
	// Replaying from a partial file would silently skip runs.
	if err := s.rebuilding(c); err != nil {
		return err
	}
	page, err := s.store.ListRuns(f)
	if errors.Is(err, readmodel.ErrBadCursor) {
		return apierr.BadRequest("invalid_field", "cursor is not one this API returned").WithField("cursor")
	}
	if err != nil {
		return apierr.Internal(err)
	}
	ids := make([]string, len(page.Runs))
	for i, r := range page.Runs {
		ids[i] = r.ID
	}
	out := BulkReplay{Results: s.replayAll(c.Request().Context(), pr.Project, ids), NextCursor: page.NextCursor}
	for _, r := range out.Results {
		if r.Status == "accepted" {
			out.Accepted++
		} else {
			out.Failed++
		}
	}
	return c.JSON(http.StatusOK, out)
}

// replayAll replays every run of ids, bulkConcurrency at a time, and returns
// their outcomes in the order of ids.
func (s *Service) replayAll(ctx context.Context, project string, ids []string) []BulkReplayResult {
	results := make([]BulkReplayResult, len(ids))
	sem := make(chan struct{}, bulkConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res := BulkReplayResult{ReplayOf: id}
			acc, err := s.replay(ctx, project, id)
			if err != nil {
				ae, ok := apierr.As(err)
				if !ok {
					ae = apierr.Internal(err)
				}
				res.Status, res.Error = "failed", ae
				if ae.Status >= http.StatusInternalServerError && ae.Err != nil {
					s.log.Warn("bulk replay: run not replayed", "project", project, "run", id, "err", ae.Err)
				}
			} else {
				res.Status, res.RunID, res.EventID = "accepted", acc.RunID, acc.EventID
			}
			results[i] = res
		})
	}
	wg.Wait()
	return results
}

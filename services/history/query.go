package history

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	readmodel "github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
)

// RunFilter parses the run list query. A user token only ever sees its own
// user's runs.
func RunFilter(pr access.Principal, q func(string) string) (readmodel.Filter, error) {
	f := readmodel.Filter{Project: pr.Project, Workflow: q("workflow"), User: q("user"), Cursor: q("cursor")}
	if pr.Role == access.RoleUser {
		if f.User != "" && f.User != pr.User {
			return f, apierr.Forbidden("a user token can only list its own runs")
		}
		f.User = pr.User
	}
	switch st := runs.Status(q("status")); st {
	case "", runs.StatusQueued, runs.StatusRunning, runs.StatusSucceeded, runs.StatusFailed:
		f.Status = st
	default:
		return f, apierr.BadRequest("invalid_field", "status must be queued, running, succeeded or failed").WithField("status")
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, apierr.BadRequest("invalid_field", "%s must be an RFC 3339 time", name).WithField(name)
			}
			*dst = t
		}
	}
	if v := q("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > readmodel.MaxLimit {
			return f, apierr.BadRequest("invalid_field", "limit must be 1..%d", readmodel.MaxLimit).WithField("limit")
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Service) listRuns(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	f, err := RunFilter(pr, c.QueryParam)
	if err != nil {
		return err
	}
	// A list from a partial file would look complete and be wrong.
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
	if page.Runs == nil {
		page.Runs = []*runs.Run{}
	}
	return c.JSON(http.StatusOK, page)
}

func (s *Service) getRun(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	r, err := s.store.GetRun(pr.Project, c.Param("run"))
	if errors.Is(err, readmodel.ErrNotFound) {
		if err := s.rebuilding(c); err != nil {
			return err
		}
	}
	if errors.Is(err, readmodel.ErrNotFound) || (err == nil && pr.Role == access.RoleUser && r.User != pr.User) {
		return apierr.NotFound("run_not_found", "run %q does not exist", c.Param("run"))
	}
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Service) getEvent(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	// The lookup the decision query serves too (decision.go).
	d, err := s.decision(pr.Project, c.Param("event"))
	if err == nil && pr.Role == access.RoleUser && d.User != pr.User {
		err = eventNotFound(c.Param("event"))
	}
	if ae, ok := apierr.As(err); ok && ae.Code == CodeRebuilding {
		setRetryAfter(c)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// RebuildRetryAfter is the Retry-After, in seconds, of a history_rebuilding
// answer.
const RebuildRetryAfter = 2

// rebuilding is 503 history_rebuilding, with the rebuild's progress as
// details, while the read model is rebuilt from the stream: what it does
// not hold yet may well exist, and a 404 would say it does not. Nil
// otherwise.
func (s *Service) rebuilding(c *echo.Context) error {
	if rb := s.rebuildingErr(); rb != nil {
		setRetryAfter(c)
		return rb
	}
	return nil
}

// rebuildingErr is rebuilding's answer without the HTTP header, for the
// decision query too; nil when the read model is not being rebuilt.
func (s *Service) rebuildingErr() *apierr.Error {
	rb, ok := s.store.Rebuilding()
	if !ok {
		return nil
	}
	return apierr.New(http.StatusServiceUnavailable, CodeRebuilding,
		"the run history is being rebuilt from the stream (%d of %d records); retry shortly", rb.Applied, rb.Target).WithDetails(rb)
}

func setRetryAfter(c *echo.Context) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(RebuildRetryAfter))
}

package ingress

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
)

func (s *Service) historyStore() (*history.Store, error) {
	if s.opts.History == nil {
		return nil, apierr.New(http.StatusNotImplemented, "not_implemented", "not implemented: this ingress has no run history read model")
	}
	return s.opts.History, nil
}

// historyCaller authorizes a read of project p's run history and returns
// the caller and the history store. The caller is checked first, so an
// unauthorized request learns nothing about the deployment.
func (s *Service) historyCaller(c *echo.Context) (access.Principal, *history.Store, error) {
	pr, err := s.projectCaller(c)
	if err != nil {
		return pr, nil, err
	}
	h, err := s.historyStore()
	return pr, h, err
}

// RunFilter parses the run list query. A user token only ever sees its own
// user's runs.
func RunFilter(pr access.Principal, q func(string) string) (history.Filter, error) {
	f := history.Filter{Project: pr.Project, Workflow: q("workflow"), User: q("user"), Cursor: q("cursor")}
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
		if err != nil || n < 1 || n > 500 {
			return f, apierr.BadRequest("invalid_field", "limit must be 1..500").WithField("limit")
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Service) listRuns(c *echo.Context) error {
	pr, h, err := s.historyCaller(c)
	if err != nil {
		return err
	}
	f, err := RunFilter(pr, c.QueryParam)
	if err != nil {
		return err
	}
	page, err := h.ListRuns(f)
	if errors.Is(err, history.ErrBadCursor) {
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
	pr, h, err := s.historyCaller(c)
	if err != nil {
		return err
	}
	r, err := h.GetRun(pr.Project, c.Param("run"))
	if errors.Is(err, history.ErrNotFound) || (err == nil && pr.Role == access.RoleUser && r.User != pr.User) {
		return apierr.NotFound("run_not_found", "run %q does not exist", c.Param("run"))
	}
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Service) getEvent(c *echo.Context) error {
	pr, h, err := s.historyCaller(c)
	if err != nil {
		return err
	}
	d, err := h.GetDecision(pr.Project, c.Param("event"))
	if errors.Is(err, history.ErrNotFound) || (err == nil && pr.Role == access.RoleUser && d.User != pr.User) {
		return apierr.NotFound("event_not_found", "event %q does not exist or has not been routed yet", c.Param("event"))
	}
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, d)
}

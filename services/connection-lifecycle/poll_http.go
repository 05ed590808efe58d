package lifecycle

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// registerPolls mounts GET …/credentials/{c}/polls: the credential's
// polling triggers, each with its cursor, last and next poll, status, the
// last error and any back-off the provider asked for.
func (s *Service) registerPolls(e *echo.Echo) {
	e.GET("/v1/projects/:p/users/:u/credentials/:c/polls", s.getPolls)
}

// PollStatus is one (credential, trigger event) poll as the API shows it.
type PollStatus = pollState

func (s *Service) getPolls(c *echo.Context) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.dir.Credential(ctx, cl.project, cl.user, credID); errors.Is(err, directory.ErrNotFound) {
		return credentialNotFound(cl, credID)
	} else if err != nil {
		return storeErr(err)
	}
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	out := []PollStatus{}
	keys, err := kv.ListKeysFiltered(ctx, pollStatePrefix+credKey(cl.project, cl.user, credID)+".*")
	if err != nil {
		return storeErr(err)
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		var st pollState
		if json.Unmarshal(e.Value(), &st) == nil {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Event < out[j].Event })
	return c.JSON(http.StatusOK, map[string]any{"credential": credID, "polls": out})
}

package lifecycle

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// A credential's settings are what the connected user filled in for the
// integration (a HubSpot portal, a Slack channel). The integration's
// manifest declares them (`settings: [{key, type, required}]`): a value of
// the wrong type is refused here, and the required ones gate Integration
// Enabled (derive.go), which fires once the stored record has them all.

// SettingProblem is one refused setting.
type SettingProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// checkSettings checks settings against the integration's declared types;
// keys the manifest does not declare are the app's own and pass. Missing
// required keys are not an error: they keep the integration from being
// enabled until they are filled in.
func (s *Service) checkSettings(project, integration string, settings map[string]any) error {
	in, ok := s.cat.Integration(project, integration)
	if !ok || len(settings) == 0 {
		return nil
	}
	var probs []SettingProblem
	for _, f := range in.Effective().Settings {
		v, ok := settings[f.Key]
		if !ok || v == nil || f.Type == "" {
			continue
		}
		if got := jsonType(v); got != f.Type {
			probs = append(probs, SettingProblem{Field: "settings." + f.Key, Message: fmt.Sprintf("must be a %s, not a %s", f.Type, got)})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Slice(probs, func(i, j int) bool { return probs[i].Field < probs[j].Field })
	fields := make([]string, len(probs))
	for i, p := range probs {
		fields[i] = p.Field + " " + p.Message
	}
	return apierr.BadRequest("invalid_settings", "settings do not match integration %s: %s", integration, strings.Join(fields, "; ")).
		WithField(probs[0].Field).WithDetails(map[string]any{"fields": probs})
}

// jsonType names a decoded JSON value's type as manifests do.
func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64, int, int64, float32:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// registerSettings mounts PUT (replace) and PATCH (merge; null removes a
// key) of a credential's settings.
func (s *Service) registerSettings(e *echo.Echo) {
	const path = "/v1/projects/:p/users/:u/credentials/:c/settings"
	e.PUT(path, func(c *echo.Context) error { return s.writeSettings(c, false) })
	e.PATCH(path, func(c *echo.Context) error { return s.writeSettings(c, true) })
}

func (s *Service) writeSettings(c *echo.Context, merge bool) error {
	cl, credID, err := s.authorizeCredential(c)
	if err != nil {
		return err
	}
	body, err := readJSON(s, c, func(b []byte) (map[string]any, error) {
		m := map[string]any{}
		if err := decodeObject(b, &m); err != nil {
			return nil, err
		}
		return m, nil
	})
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cred, rev, err := s.dir.UpdateCredential(ctx, cl.project, cl.user, credID, func(cr *directory.Credential, isNew bool) error {
		if isNew {
			return errCredentialNotFound
		}
		next := body
		if merge {
			next = make(map[string]any, len(cr.Settings)+len(body))
			for k, v := range cr.Settings {
				next[k] = v
			}
			for k, v := range body {
				if v == nil {
					delete(next, k)
				} else {
					next[k] = v
				}
			}
		}
		if err := s.checkSettings(cl.project, cr.Integration, next); err != nil {
			return err
		}
		cr.Settings = next
		return nil
	})
	if err != nil {
		if errors.Is(err, errCredentialNotFound) {
			return credentialNotFound(cl, credID)
		}
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	// Settings may hold customer data: log only that they changed.
	s.logger.Info("credential settings updated", "project", cl.project, "user", cl.user, "credential", credID, "merge", merge)
	return c.JSON(http.StatusOK, cred.Public())
}

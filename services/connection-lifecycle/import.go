package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// DefaultMaxImportBytes bounds a bulk import body unless configured
// (SWITCHBOARD_MAX_IMPORT_BYTES): 1 GiB, a few million users.
const DefaultMaxImportBytes int64 = 1 << 30

// ContentTypeNDJSON is the media type of a bulk import body.
const ContentTypeNDJSON = "application/x-ndjson"

// MaxImportBytesFromEnv reads SWITCHBOARD_MAX_IMPORT_BYTES (default
// DefaultMaxImportBytes).
func MaxImportBytesFromEnv() (int64, error) {
	v := os.Getenv("SWITCHBOARD_MAX_IMPORT_BYTES")
	if v == "" {
		return DefaultMaxImportBytes, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("lifecycle: SWITCHBOARD_MAX_IMPORT_BYTES must be a positive integer, got %q", v)
	}
	return n, nil
}

// ImportResponse is the answer to POST /v1/projects/{p}/users/import.
type ImportResponse struct {
	Users       int                     `json:"users"`
	Credentials int                     `json:"credentials"`
	Errors      []directory.ImportError `json:"errors"`
	// Truncated reports that more lines failed than Errors lists.
	Truncated bool `json:"truncated"`
}

// importUsers is POST /v1/projects/{p}/users/import: an
// application/x-ndjson body, one user per line, streamed into the
// directory (never read whole) under its own size cap. Bad lines are
// reported with their line numbers; the rest are imported.
func (s *Service) importUsers(c *echo.Context) error {
	p, err := s.authorizeKey(c, "importing users needs the project API key, not a user token")
	if err != nil {
		return err
	}
	if _, ok := s.cat.Project(p); !ok {
		return apierr.NotFound("project_not_found", "project %q does not exist", p)
	}
	r := c.Request()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentTypeNDJSON {
		return apierr.New(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"an import body is %s: one JSON object per line", ContentTypeNDJSON)
	}
	if r.ContentLength > s.maxImport {
		return apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large", "the import is over the limit of %d bytes", s.maxImport)
	}
	// Streamed under a minimum rate rather than ReadBody's one deadline: a
	// big file on an honest link takes as long as it needs, a trickle is
	// cut off (httpx.StreamBody).
	body := httpx.StreamBody(c, s.maxImport)
	defer body.Close()
	res, err := s.dir.Import(r.Context(), p, body, directory.ImportOptions{
		IntegrationExists: func(id string) bool { _, ok := s.cat.Integration(p, id); return ok },
	})
	s.logger.Info("users imported", "project", p, "users", res.Users, "credentials", res.Credentials,
		"failed_lines", res.ErrorCount, "err", err)
	out := ImportResponse{Users: res.Users, Credentials: res.Credentials, Errors: res.Errors, Truncated: res.Truncated}
	if err != nil {
		// What was imported stays imported; the details say how far it got.
		var mbe *http.MaxBytesError
		if berr := body.BodyError(err); berr != nil {
			if ae, ok := apierr.As(berr); ok {
				return ae.WithDetails(out)
			}
			return berr
		}
		switch {
		case errors.As(err, &mbe):
			return apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large",
				"the import is over the limit of %d bytes; the lines before it were imported", s.maxImport).WithDetails(out)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return apierr.New(http.StatusServiceUnavailable, "unavailable", "the import was cancelled; the lines before it were imported").WithDetails(out).Wrap(err)
		default:
			return apierr.BadRequest("unreadable_body", "the import body could not be read to its end; the lines before it were imported").WithDetails(out).Wrap(err)
		}
	}
	return c.JSON(http.StatusOK, out)
}

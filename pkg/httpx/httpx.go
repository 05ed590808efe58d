// Package httpx holds what every Switchboard HTTP service shares: the echo
// instance with its central error handler, bounded body reading, and a server
// with an explicit start/stop lifecycle.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
)

// DefaultMaxBody is the default request body limit (1 MiB).
const DefaultMaxBody int64 = 1 << 20

// NewEcho returns an echo instance with Switchboard's error handler, panic
// recovery and a direct-peer IP extractor (so X-Forwarded-For is not trusted
// unless a deployment configures a proxy-aware extractor).
func NewEcho(logger *slog.Logger) *echo.Echo {
	e := echo.NewWithConfig(echo.Config{
		Logger:           logger,
		HTTPErrorHandler: ErrorHandler(logger),
		IPExtractor:      echo.ExtractIPDirect(),
	})
	e.Use(middleware.Recover())
	return e
}

type errorBody struct {
	Error *apierr.Error `json:"error"`
}

// ErrorHandler renders every error as {"error":{"code","message","field"}}.
// *apierr.Error is found with errors.As, so wrapping keeps its status;
// echo's own errors (404 route, 405 method) get codes from their status;
// anything else is a 500 whose cause is logged and not shown.
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(c *echo.Context, err error) {
		if resp, uerr := echo.UnwrapResponse(c.Response()); uerr == nil && resp.Committed {
			return
		}
		ae, ok := apierr.As(err)
		if !ok {
			var mbe *http.MaxBytesError
			switch status := echo.StatusCode(err); {
			case errors.As(err, &mbe):
				ae = apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large", "the request body is over the limit of %d bytes", mbe.Limit)
			case status == http.StatusNotFound:
				ae = apierr.NotFound("not_found", "no such route")
			case status == http.StatusMethodNotAllowed:
				ae = apierr.New(status, "method_not_allowed", "method %s is not allowed here", c.Request().Method)
			case status >= 400 && status < 500:
				ae = apierr.New(status, codeForStatus(status), "%s", http.StatusText(status))
			default:
				ae = apierr.Internal(err)
			}
		}
		status := ae.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		if status >= 500 {
			logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "code", ae.Code, "err", err)
		}
		_ = c.JSON(status, errorBody{Error: ae})
	}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusConflict:
		return "conflict"
	case http.StatusNotFound:
		return "not_found"
	default:
		return "bad_request"
	}
}

// ReadBody reads the whole request body, failing with 413 payload_too_large
// once more than limit bytes arrive — whether or not Content-Length was sent
// (chunked bodies are counted as they are read).
func ReadBody(c *echo.Context, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	r := c.Request()
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, apierr.BadRequest("unreadable_body", "the request body could not be read").Wrap(err)
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return apierr.New(http.StatusRequestEntityTooLarge, "payload_too_large", "the request body is over the limit of %d bytes", limit)
}

// DecodeJSON decodes body into v, answering 400 invalid_json on failure.
func DecodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return apierr.BadRequest("invalid_json", "the request body is not valid JSON: %v", err).Wrap(err)
	}
	return nil
}

// Server is an HTTP server with an explicit lifecycle.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr ("127.0.0.1:0" picks a free port) and prepares to serve h.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpx: listen %s: %w", addr, err)
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil after a graceful shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("httpx: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for in-flight ones until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

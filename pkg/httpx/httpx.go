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
//
// The read has a deadline of its own (ServerOptions.BodyTimeout, from the
// server that received the request): a body that has not arrived by then is
// a 408 body_timeout and the connection is closed. A read still running
// after ServerOptions.SlowBodyAfter takes one of the server's slow-body slots
// (ServerOptions.MaxSlowBodies); with none free it is cut short with 503
// overloaded and Retry-After, so trickling clients cannot hold every
// connection the process can serve. Handlers authenticate before they call
// ReadBody: an unauthenticated caller never gets that far.
func ReadBody(c *echo.Context, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	r := c.Request()
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	rd := startBodyRead(c.Response(), r, bodyDeadline)
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), rd, limit))
	if ferr := rd.finish(c, err); ferr != nil {
		return nil, ferr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, apierr.BadRequest("unreadable_body", "the request body could not be read").Wrap(err)
	}
	return body, nil
}

// StreamBody is the request body for a handler that streams it instead of
// reading it whole (a bulk import), bounded to limit bytes like ReadBody.
// Instead of one deadline it keeps a minimum rate: the body must have
// arrived at least at ServerOptions.MinStreamRate bytes per second after a
// grace of ServerOptions.BodyTimeout, so a big file on a slow but honest
// link gets all the time it needs and a trickle is cut off. It takes a
// slow-body slot like ReadBody once it runs past SlowBodyAfter. Call
// BodyError on the error the stream's reader reported to learn whether it
// was one of these limits (nil when it was not).
func StreamBody(c *echo.Context, limit int64) *Stream {
	r := c.Request()
	return &Stream{c: c, rd: startBodyRead(c.Response(), r, rateDeadline), limit: limit}
}

// Stream is a request body being streamed; see StreamBody.
type Stream struct {
	c     *echo.Context
	rd    *bodyReader
	limit int64
	mbr   io.ReadCloser
}

// Read reads the body, failing with *http.MaxBytesError past the limit.
func (s *Stream) Read(p []byte) (int, error) {
	if s.mbr == nil {
		s.mbr = http.MaxBytesReader(s.c.Response(), s.rd, s.limit)
	}
	return s.mbr.Read(p)
}

// Close ends the stream: the slow-body slot (if any) is given back and the
// deadline timers stop. It does not close the request body (the server does).
// It is safe to call more than once.
func (s *Stream) Close() error {
	s.rd.release()
	return nil
}

// BodyError is the API error that err — returned while reading the
// stream — stands for when a body limit caused it: 408 body_timeout when the
// body came in too slowly, 503 overloaded when no slow-body slot was free
// (Retry-After is set). Otherwise nil.
func (s *Stream) BodyError(err error) error {
	return s.rd.finish(s.c, err)
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
	lim *bodyLimits
}

// SlowBodies is how many slow body reads hold a slot now (a gauge for
// operators and tests).
func (s *Server) SlowBodies() int { return len(s.lim.slots) }

// Listen binds addr ("127.0.0.1:0" picks a free port) and prepares to serve
// h with the default limits.
func Listen(addr string, h http.Handler) (*Server, error) {
	return NewServer(ServerOptions{Addr: addr, Handler: h})
}

// NewServer binds opts.Addr and prepares to serve opts.Handler under
// opts' limits (see ServerOptions).
//
// There is deliberately no http.Server ReadTimeout: it would stay on the
// connection after the body is read and cancel the request's context of a
// handler that runs longer (a synchronous request waiting on its workflow).
// Bodies get their deadlines from ReadBody and StreamBody instead, and a
// handler that leaves its body unread has the connection's read cut short
// when it returns, so no body read is ever without a bound.
func NewServer(opts ServerOptions) (*Server, error) {
	opts = opts.withDefaults()
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("httpx: listen %s: %w", opts.Addr, err)
	}
	lim := &bodyLimits{opts: opts}
	if opts.MaxSlowBodies > 0 {
		lim.slots = make(chan struct{}, opts.MaxSlowBodies)
	}
	var h http.Handler = guard{h: opts.Handler, lim: lim}
	if opts.Handler == nil {
		h = guard{h: http.DefaultServeMux, lim: lim}
	}
	return &Server{ln: ln, lim: lim, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
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

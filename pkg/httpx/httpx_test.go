package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type errBody struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Field   string          `json:"field"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

const smallLimit = 1024

func newServer(t *testing.T) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	e := httpx.NewEcho(slog.New(slog.NewTextHandler(logs, nil)))
	e.GET("/apierr", func(c *echo.Context) error {
		return apierr.BadRequest("bad_thing", "nope %d", 1).WithField("a.b")
	})
	e.GET("/wrapped", func(c *echo.Context) error {
		return fmt.Errorf("handler: %w", apierr.Forbidden("not yours"))
	})
	e.GET("/details", func(c *echo.Context) error {
		return apierr.BadRequest("validation_failed", "bad").WithDetails(map[string]int{"n": 2})
	})
	e.GET("/generic", func(c *echo.Context) error {
		return errors.New("password=hunter2 leaked")
	})
	e.GET("/unavailable", func(c *echo.Context) error {
		return apierr.Unavailable(errors.New("js down"))
	})
	e.GET("/zero-status", func(c *echo.Context) error {
		return &apierr.Error{Code: "odd", Message: "no status"}
	})
	e.GET("/echo401", func(c *echo.Context) error { return echo.ErrUnauthorized })
	e.GET("/echo403", func(c *echo.Context) error { return echo.ErrForbidden })
	e.GET("/echo413", func(c *echo.Context) error { return echo.ErrStatusRequestEntityTooLarge })
	e.GET("/echo415", func(c *echo.Context) error { return echo.ErrUnsupportedMediaType })
	e.GET("/echo409", func(c *echo.Context) error { return echo.NewHTTPError(http.StatusConflict, "conflict") })
	e.GET("/echo502", func(c *echo.Context) error { return echo.ErrBadGateway })
	e.GET("/panic", func(c *echo.Context) error { panic("kaboom") })
	e.GET("/committed", func(c *echo.Context) error {
		if err := c.String(http.StatusOK, "partial"); err != nil {
			return err
		}
		return errors.New("after commit")
	})
	e.POST("/maxbytes", func(c *echo.Context) error {
		_, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, 10))
		return err
	})
	e.POST("/read", func(c *echo.Context) error {
		body, err := httpx.ReadBody(c, smallLimit)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "application/octet-stream", body)
	})
	e.POST("/read-default", func(c *echo.Context) error {
		body, err := httpx.ReadBody(c, 0)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, fmt.Sprint(len(body)))
	})
	e.POST("/json", func(c *echo.Context) error {
		body, err := httpx.ReadBody(c, smallLimit)
		if err != nil {
			return err
		}
		var v map[string]any
		if err := httpx.DecodeJSON(body, &v); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, logs
}

func do(t *testing.T, method, url string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeErr(t *testing.T, b []byte) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("body %q is not an error document: %v", b, err)
	}
	return e
}

func TestErrorHandler(t *testing.T) {
	srv, logs := newServer(t)
	cases := []struct {
		name    string
		method  string
		path    string
		status  int
		code    string
		message string
		field   string
		logged  int // 1 logged, 0 not, -1 either
	}{
		{"apierr", "GET", "/apierr", 400, "bad_thing", "nope 1", "a.b", 0},
		{"wrapped apierr keeps status", "GET", "/wrapped", 403, "forbidden", "not yours", "", 0},
		{"generic error is 500 without cause", "GET", "/generic", 500, "internal", "internal error", "", 1},
		{"unavailable", "GET", "/unavailable", 503, "unavailable", "the event store is not available; retry later", "", 1},
		{"zero status is 500", "GET", "/zero-status", 500, "odd", "no status", "", -1},
		{"unknown route", "GET", "/nowhere", 404, "not_found", "no such route", "", 0},
		{"wrong method", "POST", "/apierr", 405, "method_not_allowed", "method POST is not allowed here", "", 0},
		{"echo 401", "GET", "/echo401", 401, "unauthorized", "Unauthorized", "", 0},
		{"echo 403", "GET", "/echo403", 403, "forbidden", "Forbidden", "", 0},
		{"echo 413", "GET", "/echo413", 413, "payload_too_large", "Request Entity Too Large", "", 0},
		{"echo 415", "GET", "/echo415", 415, "unsupported_media_type", "Unsupported Media Type", "", 0},
		{"echo other 4xx", "GET", "/echo409", 409, "conflict", "Conflict", "", 0},
		{"echo 5xx", "GET", "/echo502", 500, "internal", "internal error", "", 1},
		{"panic", "GET", "/panic", 500, "internal", "internal error", "", 1},
		{"raw MaxBytesError", "POST", "/maxbytes", 413, "payload_too_large", "the request body is over the limit of 10 bytes", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(logs.String())
			var body io.Reader
			if c.method == "POST" {
				body = strings.NewReader(strings.Repeat("x", 100))
			}
			resp, b := do(t, c.method, srv.URL+c.path, body)
			if resp.StatusCode != c.status {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, c.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			e := decodeErr(t, b)
			if e.Error.Code != c.code || e.Error.Message != c.message || e.Error.Field != c.field {
				t.Errorf("error = %+v, want %s %q field %q", e.Error, c.code, c.message, c.field)
			}
			if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "kaboom") || strings.Contains(string(b), "js down") {
				t.Errorf("response leaks the cause: %s", b)
			}
			logged := len(logs.String()) > before
			if c.logged >= 0 && logged != (c.logged == 1) {
				t.Errorf("logged = %v, want %v (%s)", logged, c.logged, logs.String()[before:])
			}
		})
	}
	if !strings.Contains(logs.String(), "hunter2") {
		t.Errorf("the cause of a 500 is not logged: %s", logs.String())
	}
}

func TestErrorHandlerDetails(t *testing.T) {
	srv, _ := newServer(t)
	resp, b := do(t, "GET", srv.URL+"/details", nil)
	if resp.StatusCode != 400 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if want := `{"error":{"code":"validation_failed","message":"bad","details":{"n":2}}}`; strings.TrimSpace(string(b)) != want {
		t.Errorf("body = %s, want %s", b, want)
	}
}

func TestErrorAfterCommit(t *testing.T) {
	srv, _ := newServer(t)
	resp, b := do(t, "GET", srv.URL+"/committed", nil)
	if resp.StatusCode != 200 || string(b) != "partial" {
		t.Errorf("got %d %q, want 200 partial", resp.StatusCode, b)
	}
}

// chunked sends n bytes as a chunked body (no Content-Length) through a pipe.
func chunked(t *testing.T, url string, n int) (*http.Response, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("y"), 100)
		left := n
		for left > 0 {
			k := min(left, len(chunk))
			if _, err := pw.Write(chunk[:k]); err != nil {
				// The server may stop reading once over the limit.
				pw.CloseWithError(err)
				return
			}
			left -= k
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	if req.ContentLength != 0 && req.ContentLength != -1 {
		t.Fatalf("ContentLength = %d; the body must be sent chunked", req.ContentLength)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestReadBody(t *testing.T) {
	srv, _ := newServer(t)
	cases := []struct {
		name    string
		n       int
		chunked bool
		status  int
	}{
		{"empty", 0, false, 200},
		{"small", 10, false, 200},
		{"at limit", smallLimit, false, 200},
		{"over limit", smallLimit + 1, false, 413},
		{"far over limit", 64 * smallLimit, false, 413},
		{"chunked small", 10, true, 200},
		{"chunked at limit", smallLimit, true, 200},
		{"chunked over limit", smallLimit + 1, true, 413},
		{"chunked far over limit", 200 * smallLimit, true, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp *http.Response
			var b []byte
			if c.chunked {
				resp, b = chunked(t, srv.URL+"/read", c.n)
			} else {
				resp, b = do(t, "POST", srv.URL+"/read", bytes.NewReader(bytes.Repeat([]byte("y"), c.n)))
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status = %d, want %d (body %.200s)", resp.StatusCode, c.status, b)
			}
			if c.status == 200 {
				if !bytes.Equal(b, bytes.Repeat([]byte("y"), c.n)) {
					t.Errorf("echoed %d bytes, want %d", len(b), c.n)
				}
				return
			}
			e := decodeErr(t, b)
			if e.Error.Code != "payload_too_large" || e.Error.Message != "the request body is over the limit of 1024 bytes" {
				t.Errorf("error = %+v", e.Error)
			}
		})
	}
}

func TestReadBodyDefaultLimit(t *testing.T) {
	srv, _ := newServer(t)
	resp, b := chunked(t, srv.URL+"/read-default", int(httpx.DefaultMaxBody))
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(httpx.DefaultMaxBody) {
		t.Errorf("at default limit: %d %s", resp.StatusCode, b)
	}
	resp, b = chunked(t, srv.URL+"/read-default", int(httpx.DefaultMaxBody)+1)
	if resp.StatusCode != 413 {
		t.Fatalf("over default limit: %d %s", resp.StatusCode, b)
	}
	if e := decodeErr(t, b); e.Error.Message != "the request body is over the limit of 1048576 bytes" {
		t.Errorf("error = %+v", e.Error)
	}
}

func TestReadBodyUnreadable(t *testing.T) {
	e := echo.New()
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader("abc"), errReader{}))
	c := e.NewContext(req, httptest.NewRecorder())
	_, err := httpx.ReadBody(c, 100)
	ae, ok := apierr.As(err)
	if !ok || ae.Status != 400 || ae.Code != "unreadable_body" {
		t.Errorf("ReadBody = %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDecodeJSON(t *testing.T) {
	srv, _ := newServer(t)
	resp, b := do(t, "POST", srv.URL+"/json", strings.NewReader(`{"a":1}`))
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"a":1}` {
		t.Errorf("valid JSON: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, "POST", srv.URL+"/json", strings.NewReader(`{"a":`))
	if resp.StatusCode != 400 {
		t.Fatalf("invalid JSON: status %d", resp.StatusCode)
	}
	if e := decodeErr(t, b); e.Error.Code != "invalid_json" || !strings.HasPrefix(e.Error.Message, "the request body is not valid JSON: ") {
		t.Errorf("error = %+v", e.Error)
	}
	var v struct{ N int }
	err := httpx.DecodeJSON([]byte(`{"N":"x"}`), &v)
	if ae, ok := apierr.As(err); !ok || ae.Code != "invalid_json" || errors.Unwrap(ae) == nil {
		t.Errorf("DecodeJSON type mismatch = %v", err)
	}
}

func TestServerLifecycle(t *testing.T) {
	s, err := httpx.Listen("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	resp, b := do(t, "GET", "http://"+s.Addr()+"/", nil)
	if resp.StatusCode != 200 || string(b) != "hello" {
		t.Errorf("got %d %q", resp.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve after Shutdown = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := httpx.Listen(s.Addr()+"0000", nil); err == nil {
		t.Error("Listen on an invalid address succeeded")
	}
}

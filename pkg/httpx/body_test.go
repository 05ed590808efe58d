package httpx_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// serve runs e on a real server with opts' limits.
func serve(t *testing.T, e *echo.Echo, opts httpx.ServerOptions) *httpx.Server {
	t.Helper()
	opts.Addr, opts.Handler = "127.0.0.1:0", e
	s, err := httpx.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// rawClient sends headers and then a body at its own pace.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr, method, path string, length int) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", method, path, length); err != nil {
		t.Fatal(err)
	}
	return &rawClient{conn: conn, br: bufio.NewReader(conn)}
}

// trickle writes one byte every interval until stop is closed or the
// connection fails.
func (c *rawClient) trickle(t *testing.T, interval time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// response reads the answer within d and reports whether the server closed
// the connection after it.
func (c *rawClient) response(t *testing.T, d time.Duration) (*http.Response, string, bool) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", d, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// A server that hangs up does so right after its answer.
	_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.br.ReadByte()
	var ne net.Error
	closed := err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return resp, string(b), closed
}

func bodyEcho() *echo.Echo {
	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	e.POST("/read", func(c *echo.Context) error {
		b, err := httpx.ReadBody(c, 0)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, fmt.Sprint(len(b)))
	})
	e.POST("/refuse", func(c *echo.Context) error {
		return echo.ErrUnauthorized
	})
	e.POST("/stream", func(c *echo.Context) error {
		s := httpx.StreamBody(c, 1<<30)
		defer s.Close()
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			if berr := s.BodyError(err); berr != nil {
				return berr
			}
			return err
		}
		return c.String(http.StatusOK, fmt.Sprint(n))
	})
	// /slow-handler reads its body, then works longer than the body
	// deadline: the deadline must not outlive the read and cancel it.
	e.POST("/slow-handler", func(c *echo.Context) error {
		if _, err := httpx.ReadBody(c, 0); err != nil {
			return err
		}
		select {
		case <-c.Request().Context().Done():
			return c.String(http.StatusGone, "request context cancelled")
		case <-time.After(600 * time.Millisecond):
		}
		return c.String(http.StatusOK, "done")
	})
	return e
}

func TestReadBodyDeadline(t *testing.T) {
	s := serve(t, bodyEcho(), httpx.ServerOptions{BodyTimeout: 200 * time.Millisecond, MaxSlowBodies: -1})
	c := dialRaw(t, s.Addr(), http.MethodPost, "/read", 1000)
	c.trickle(t, 20*time.Millisecond)
	start := time.Now()
	resp, body, closed := c.response(t, 5*time.Second)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, `"body_timeout"`) || !closed {
		t.Fatalf("trickled body: %d %s closed=%v; want 408 body_timeout and closed", resp.StatusCode, body, closed)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("cut off after %s, before the deadline", el)
	}
}

func TestReadBodyDeadlineEndsWithTheRead(t *testing.T) {
	s := serve(t, bodyEcho(), httpx.ServerOptions{BodyTimeout: 200 * time.Millisecond})
	resp, err := http.Post("http://"+s.Addr()+"/slow-handler", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a handler that outlives the body deadline: %d %s", resp.StatusCode, b)
	}
}

func TestUnreadBodyDoesNotHoldTheConnection(t *testing.T) {
	s := serve(t, bodyEcho(), httpx.ServerOptions{})
	c := dialRaw(t, s.Addr(), http.MethodPost, "/refuse", 100000)
	c.trickle(t, 20*time.Millisecond)
	resp, _, closed := c.response(t, 2*time.Second)
	if resp.StatusCode != http.StatusUnauthorized || !closed {
		t.Fatalf("refused trickling body: %d closed=%v; want 401 and closed", resp.StatusCode, closed)
	}
	// A client that sent its whole small body gets its answer too, and the
	// connection closes behind it: kept, it would carry the past read
	// deadline into its next request, whose context net/http's background
	// read then cancelled (an accepted event failed "context canceled").
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("refused small body: %d close=%v; want 401 with Connection: close", resp.StatusCode, resp.Close)
	}
}

func TestSlowBodyCap(t *testing.T) {
	s := serve(t, bodyEcho(), httpx.ServerOptions{BodyTimeout: 5 * time.Second, SlowBodyAfter: 50 * time.Millisecond, MaxSlowBodies: 1})
	holder := dialRaw(t, s.Addr(), http.MethodPost, "/read", 1000)
	holder.trickle(t, 20*time.Millisecond)
	deadline := time.Now().Add(3 * time.Second)
	for s.SlowBodies() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the slow body never took a slot")
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by deadline
	}
	c := dialRaw(t, s.Addr(), http.MethodPost, "/read", 1000)
	c.trickle(t, 20*time.Millisecond)
	start := time.Now()
	resp, body, closed := c.response(t, 3*time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"overloaded"`) || !closed {
		t.Fatalf("a second slow body: %d %s closed=%v; want 503 overloaded", resp.StatusCode, body, closed)
	}
	if ra := resp.Header.Get("Retry-After"); ra != fmt.Sprint(httpx.OverloadedRetryAfter) {
		t.Errorf("Retry-After %q", ra)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("refused only after %s", el)
	}
	// A fast body needs no slot.
	resp2, err := http.Post("http://"+s.Addr()+"/read", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		t.Fatalf("a fast body while the slot is held: %d", resp2.StatusCode)
	}
}

func TestStreamBodyMinimumRate(t *testing.T) {
	s := serve(t, bodyEcho(), httpx.ServerOptions{BodyTimeout: 200 * time.Millisecond, MinStreamRate: 64 << 10, MaxSlowBodies: -1})
	// 512 KiB at about 640 KiB/s: longer than the grace, faster than the
	// minimum rate, so it is read to its end.
	const size, chunk = 512 << 10, 16 << 10
	c := dialRaw(t, s.Addr(), http.MethodPost, "/stream", size)
	go func() {
		buf := make([]byte, chunk)
		for sent := 0; sent < size; sent += chunk {
			if _, err := c.conn.Write(buf); err != nil {
				return
			}
			time.Sleep(25 * time.Millisecond) // the client's pace, not synchronisation
		}
	}()
	resp, body, _ := c.response(t, 10*time.Second)
	if resp.StatusCode != http.StatusOK || body != fmt.Sprint(size) {
		t.Fatalf("a big body at an honest rate: %d %s", resp.StatusCode, body)
	}
	// A trickle falls behind the minimum rate and is cut off.
	tr := dialRaw(t, s.Addr(), http.MethodPost, "/stream", size)
	tr.trickle(t, 20*time.Millisecond)
	resp, body, closed := tr.response(t, 5*time.Second)
	if resp.StatusCode != http.StatusRequestTimeout || !closed {
		t.Fatalf("a trickled stream: %d %s closed=%v; want 408", resp.StatusCode, body, closed)
	}
}

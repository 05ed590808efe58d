package httpx

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
)

// Limits on how long a client may take over a request, declared once here;
// ServerOptions overrides each. They exist because a client that sends its
// headers and then trickles its body one byte at a time otherwise holds a
// connection (and a goroutine) for as long as it likes.
const (
	// DefaultReadHeaderTimeout bounds the request line and headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout bounds a keep-alive connection between requests.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultBodyTimeout bounds reading a request body whole (ReadBody):
	// 1 MiB in 30 s is 35 KB/s, slower than any link an API caller uses.
	// It is also a streamed body's grace before its minimum rate applies.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultMinStreamRate is the slowest a streamed body (StreamBody, the
	// bulk user import) may arrive after its grace, in bytes per second: a
	// 1 GiB import may take up to nine hours, a trickle is cut off.
	DefaultMinStreamRate = 32 << 10
	// DefaultSlowBodyAfter is when a body read counts as slow and needs a
	// slot: a normal body is read in milliseconds.
	DefaultSlowBodyAfter = 2 * time.Second
	// DefaultMaxSlowBodies is how many slow body reads a server carries at
	// once; beyond it a slow read is cut short with 503 overloaded.
	DefaultMaxSlowBodies = 128
	// OverloadedRetryAfter is the Retry-After of that 503, in seconds.
	OverloadedRetryAfter = 5
)

// ServerOptions configure a Server. Zero fields take the defaults above.
type ServerOptions struct {
	// Addr to bind ("127.0.0.1:0" picks a free port).
	Addr    string
	Handler http.Handler
	// ReadHeaderTimeout and IdleTimeout are http.Server's.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// BodyTimeout is the deadline of a whole-body read (ReadBody, 408
	// body_timeout past it) and a streamed body's grace (StreamBody).
	BodyTimeout time.Duration
	// MinStreamRate is the minimum rate of a streamed body after its grace,
	// in bytes per second.
	MinStreamRate int64
	// SlowBodyAfter is how long a body read runs before it needs one of
	// MaxSlowBodies slots.
	SlowBodyAfter time.Duration
	// MaxSlowBodies is how many slow body reads run at once; negative
	// means no cap.
	MaxSlowBodies int
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.MinStreamRate <= 0 {
		o.MinStreamRate = DefaultMinStreamRate
	}
	if o.SlowBodyAfter <= 0 {
		o.SlowBodyAfter = DefaultSlowBodyAfter
	}
	if o.MaxSlowBodies == 0 {
		o.MaxSlowBodies = DefaultMaxSlowBodies
	}
	return o
}

// bodyLimits are what a server's handlers read bodies under; they reach
// ReadBody through the request's context.
type bodyLimits struct {
	opts  ServerOptions
	slots chan struct{} // nil: no cap
}

type limitsKey struct{}

func limitsOf(ctx context.Context) *bodyLimits {
	if l, ok := ctx.Value(limitsKey{}).(*bodyLimits); ok {
		return l
	}
	// A handler served by something else (httptest, a bare echo): the
	// default deadlines, no shared cap.
	return &bodyLimits{opts: ServerOptions{}.withDefaults()}
}

// guard is the Server's handler wrapper: it hands the limits to ReadBody
// and cuts short what net/http does after a handler that left its body
// unread.
type guard struct {
	h   http.Handler
	lim *bodyLimits
}

func (g guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(context.WithValue(r.Context(), limitsKey{}, g.lim))
	if r.Body == nil || r.Body == http.NoBody {
		g.h.ServeHTTP(w, r)
		return
	}
	tb := &trackedBody{ReadCloser: r.Body}
	r.Body = tb
	g.h.ServeHTTP(&closingWriter{ResponseWriter: w, body: tb}, r)
	if !tb.eof.Load() {
		// The handler answered without reading the body (a 401 before
		// reading, a 404), and closingWriter made that answer close the
		// connection. net/http still drains the body before it lets go of
		// the connection — as long as the client takes. What has already
		// arrived is discarded; the first read that would wait fails.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

// closingWriter adds "Connection: close" to an answer written while the
// request body is still unread. Without it net/http would read up to
// 256 KiB more of the body before writing the answer, and keep the
// connection for the next request — but the past read deadline the guard
// sets to cut that read short stays on the connection, fires in the
// background read net/http starts once the body is drained, and cancels
// the context of every later request on it.
type closingWriter struct {
	http.ResponseWriter
	body *trackedBody
	once bool
}

func (w *closingWriter) mark() {
	if !w.once {
		w.once = true
		if !w.body.eof.Load() {
			w.Header().Set("Connection", "close")
		}
	}
}

func (w *closingWriter) WriteHeader(code int) {
	if code >= 200 {
		w.mark()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	w.mark()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// Flush) through the wrapper.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// trackedBody notes whether the handler read its body to the end.
type trackedBody struct {
	io.ReadCloser
	eof atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

type deadlineMode int

const (
	bodyDeadline deadlineMode = iota // one deadline for the whole body
	rateDeadline                     // grace plus a minimum rate
)

// bodyReader reads a request body under its server's limits: the read
// deadline on the connection, and a slow-body slot once it runs long.
type bodyReader struct {
	src   io.Reader
	rc    *http.ResponseController
	lim   *bodyLimits
	mode  deadlineMode
	start time.Time
	n     int64 // bytes read so far (rate mode)

	slow *time.Timer

	mu         sync.Mutex
	done       bool // released: EOF, finished or closed
	slot       bool // holds a slow-body slot
	overloaded bool // cut short: no slot was free
}

func startBodyRead(w http.ResponseWriter, r *http.Request, mode deadlineMode) *bodyReader {
	lim := limitsOf(r.Context())
	br := &bodyReader{src: r.Body, rc: http.NewResponseController(w), lim: lim, mode: mode, start: time.Now()}
	br.setDeadline(br.start.Add(lim.opts.BodyTimeout))
	if lim.slots != nil {
		br.slow = time.AfterFunc(lim.opts.SlowBodyAfter, br.becameSlow)
	}
	return br
}

func (br *bodyReader) setDeadline(t time.Time) {
	// ErrNotSupported (a recorder in tests) leaves the body without a
	// deadline, as it was before.
	_ = br.rc.SetReadDeadline(t)
}

// becameSlow runs once the read has taken SlowBodyAfter: it takes a slot,
// or, with none free, fails the read at once by moving the deadline to now.
func (br *bodyReader) becameSlow() {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.done {
		return
	}
	select {
	case br.lim.slots <- struct{}{}:
		br.slot = true
	default:
		br.overloaded = true
		br.setDeadline(time.Now())
	}
}

func (br *bodyReader) Read(p []byte) (int, error) {
	n, err := br.src.Read(p)
	if br.mode == rateDeadline && n > 0 {
		br.n += int64(n)
		br.mu.Lock()
		if !br.overloaded && !br.done {
			allowed := time.Duration(float64(br.n) / float64(br.lim.opts.MinStreamRate) * float64(time.Second))
			br.setDeadline(br.start.Add(br.lim.opts.BodyTimeout + allowed))
		}
		br.mu.Unlock()
	}
	if err == io.EOF {
		br.release()
	}
	return n, err
}

// Close releases the read; the request body itself is net/http's to close.
func (br *bodyReader) Close() error {
	br.release()
	return nil
}

// release gives the slot back and lifts the deadline: once the body is in,
// the connection's read is net/http's (a deadline left behind would fire
// in its background read and cancel the request's context mid-handler).
func (br *bodyReader) release() {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.done {
		return
	}
	br.done = true
	if br.slow != nil {
		br.slow.Stop()
	}
	if br.slot {
		<-br.lim.slots
		br.slot = false
	}
	if !br.overloaded {
		br.setDeadline(time.Time{})
	}
}

// finish ends the read and maps err, when a limit caused it, to the
// caller's answer: 503 overloaded (with Retry-After) or 408 body_timeout.
func (br *bodyReader) finish(c *echo.Context, err error) error {
	br.release()
	if err == nil {
		return nil
	}
	br.mu.Lock()
	overloaded := br.overloaded
	br.mu.Unlock()
	switch {
	case overloaded:
		c.Response().Header().Set("Retry-After", strconv.Itoa(OverloadedRetryAfter))
		return apierr.New(http.StatusServiceUnavailable, "overloaded",
			"too many slow request bodies are being read; retry later").Wrap(err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return apierr.New(http.StatusRequestTimeout, "body_timeout",
			"the request body did not arrive in time").Wrap(err)
	}
	return nil
}

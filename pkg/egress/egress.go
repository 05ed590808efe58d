// Package egress is the outbound HTTP client used by workflow `http` steps.
//
// Workflow authors control the URLs a step calls, so the client must not be
// usable to reach the machine Switchboard runs on or its private network
// (SSRF). The destination check happens at dial time, on the IP address the
// connection is actually about to be made to (net.Dialer.ControlContext), so
// a hostname that resolves — or re-resolves, DNS rebinding — to a private
// address is refused, and so is every redirect target, because each redirect
// dials through the same guarded dialer.
package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// DefaultMaxResponseBytes is the response body limit when
// Options.MaxResponseBytes is zero (10 MiB).
const DefaultMaxResponseBytes int64 = 10 << 20

// DefaultMaxIdleConnsPerHost is the idle pool size per host when
// Options.MaxIdleConnsPerHost is zero.
const DefaultMaxIdleConnsPerHost = 256

// MaxRedirects is the number of redirects a client follows before giving up.
const MaxRedirects = 5

// ErrForbiddenAddress is returned (wrapped) when a dial is refused because the
// destination address is not allowed by the policy.
var ErrForbiddenAddress = errors.New("egress: destination address not allowed")

// ErrResponseTooLarge is returned (wrapped) when a response body exceeds the
// configured limit.
var ErrResponseTooLarge = errors.New("egress: response body too large")

// Options configures the egress policy and client.
type Options struct {
	// AllowPrivate allows every address class: private, loopback,
	// link-local, CGNAT, unique-local IPv6, reserved ranges...
	AllowPrivate bool
	// AllowLoopback allows loopback (127.0.0.0/8, ::1) in addition to
	// public addresses. `switchboard dev` uses this.
	AllowLoopback bool
	// MaxResponseBytes bounds response bodies read through the client;
	// reading beyond it fails with ErrResponseTooLarge. 0 means
	// DefaultMaxResponseBytes; negative means no limit.
	MaxResponseBytes int64
	// MaxIdleConnsPerHost sizes the per-host idle connection pool.
	// 0 means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
}

// ForbiddenError describes a refused destination. It matches
// ErrForbiddenAddress with errors.Is.
type ForbiddenError struct {
	Addr   string // the address as dialed/checked
	Reason string // e.g. "private", "loopback"
}

func (e *ForbiddenError) Error() string {
	return ErrForbiddenAddress.Error() + ": " + e.Addr + " is " + e.Reason
}

// Is reports whether target is ErrForbiddenAddress.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbiddenAddress }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

type rangeClass struct {
	p      netip.Prefix
	reason string
}

// Ordered: more specific prefixes before the ones containing them.
var v4Blocked = []rangeClass{
	{pfx("0.0.0.0/32"), "unspecified"},
	{pfx("0.0.0.0/8"), "in the reserved \"this network\" range"},
	{pfx("10.0.0.0/8"), "private"},
	{pfx("100.64.0.0/10"), "in the CGNAT shared address space"},
	{pfx("127.0.0.0/8"), "loopback"},
	{pfx("169.254.0.0/16"), "link-local"},
	{pfx("172.16.0.0/12"), "private"},
	{pfx("192.0.0.0/24"), "in the IETF protocol assignments range"},
	{pfx("192.0.2.0/24"), "a documentation address"},
	{pfx("192.88.99.0/24"), "in the deprecated 6to4 relay anycast range"},
	{pfx("192.168.0.0/16"), "private"},
	{pfx("198.18.0.0/15"), "in the benchmarking range"},
	{pfx("198.51.100.0/24"), "a documentation address"},
	{pfx("203.0.113.0/24"), "a documentation address"},
	{pfx("224.0.0.0/4"), "multicast"},
	{pfx("255.255.255.255/32"), "broadcast"},
	{pfx("240.0.0.0/4"), "reserved"},
}

var (
	nat64WKP      = pfx("64:ff9b::/96")
	nat64Local    = pfx("64:ff9b:1::/48")
	sixToFour     = pfx("2002::/16")
	v4Compatible  = pfx("::/96")
	globalUnicast = pfx("2000::/3")
)

var v6Blocked = []rangeClass{
	{pfx("::/128"), "unspecified"},
	{pfx("::1/128"), "loopback"},
	{pfx("100::/64"), "in the discard-only range"},
	{pfx("2001::/32"), "a Teredo address"},
	{pfx("2001:2::/48"), "in the benchmarking range"},
	{pfx("2001:db8::/32"), "a documentation address"},
	{pfx("3fff::/20"), "a documentation address"},
	{pfx("fc00::/7"), "private (unique local)"},
	{pfx("fe80::/10"), "link-local"},
	{pfx("fec0::/10"), "private (deprecated site-local)"},
	{pfx("ff00::/8"), "multicast"},
}

// classify returns "" if ip is a public address, or a reason phrase
// ("private", "loopback", ...). loopback reports whether the address is a
// genuine loopback address (the only class AllowLoopback lifts).
func classify(ip netip.Addr) (reason string, loopback bool) {
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		for _, r := range v4Blocked {
			if r.p.Contains(ip) {
				return r.reason, r.reason == "loopback"
			}
		}
		return "", false
	}
	for _, r := range v6Blocked {
		if r.p.Contains(ip) {
			return r.reason, r.reason == "loopback"
		}
	}
	b := ip.As16()
	switch {
	case nat64WKP.Contains(ip):
		// A NAT64 gateway translates to the embedded IPv4 address — as seen
		// from the gateway, so even an embedded loopback is never "our"
		// loopback: any blocked embedded class stays blocked.
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		if r, _ := classify(v4); r != "" {
			return "a NAT64 address embedding " + v4.String() + " (" + r + ")", false
		}
		return "", false
	case nat64Local.Contains(ip):
		return "in the local-use NAT64 range", false
	case sixToFour.Contains(ip):
		v4 := netip.AddrFrom4([4]byte(b[2:6]))
		if r, _ := classify(v4); r != "" {
			return "a 6to4 address embedding " + v4.String() + " (" + r + ")", false
		}
		return "", false
	case v4Compatible.Contains(ip):
		return "a deprecated IPv4-compatible IPv6 address", false
	case !globalUnicast.Contains(ip):
		return "reserved", false
	}
	return "", false
}

// Allowed reports whether a connection to ip is permitted under opts. It
// returns nil if so, and otherwise an error matching ErrForbiddenAddress that
// names the address and why it is refused. IPv4-mapped IPv6 addresses get the
// verdict of the IPv4 address they map; zones are ignored.
func Allowed(ip netip.Addr, opts Options) error {
	if !ip.IsValid() {
		return &ForbiddenError{Addr: "invalid address", Reason: "not a valid IP"}
	}
	if opts.AllowPrivate {
		return nil
	}
	reason, loopback := classify(ip)
	if reason == "" || (loopback && opts.AllowLoopback) {
		return nil
	}
	if ip.Is4In6() {
		reason += " (IPv4-mapped " + ip.Unmap().String() + ")"
	}
	return &ForbiddenError{Addr: ip.String(), Reason: reason}
}

// control returns the dialer hook that enforces the policy on the resolved
// address about to be connected to.
func control(opts Options) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		switch network {
		case "tcp", "tcp4", "tcp6":
		default:
			return &ForbiddenError{Addr: address, Reason: "not a TCP destination (network " + network + ")"}
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// Fail closed: the dialer always hands us a literal ip:port.
			return &ForbiddenError{Addr: address, Reason: "not a parseable ip:port"}
		}
		return Allowed(ap.Addr(), opts)
	}
}

// NewClient returns an HTTP client whose every connection — including those
// made for redirects — is checked against opts at dial time. It uses no proxy
// (an environment proxy would bypass the check), follows at most MaxRedirects
// redirects, bounds response bodies to opts.MaxResponseBytes and sets no
// overall timeout: callers bound each request with its context.
func NewClient(opts Options) *http.Client {
	perHost := opts.MaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = DefaultMaxIdleConnsPerHost
	}
	dialer := &net.Dialer{
		KeepAlive:      30 * time.Second,
		ControlContext: control(opts),
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        0, // no global cap; per-host cap below
		MaxIdleConnsPerHost: perHost,
		IdleConnTimeout:     90 * time.Second,
	}
	limit := opts.MaxResponseBytes
	if limit == 0 {
		limit = DefaultMaxResponseBytes
	}
	return &http.Client{
		Transport: &limitTransport{tr: tr, max: limit},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("egress: stopped after %d redirects", MaxRedirects)
			}
			return nil
		},
	}
}

// limitTransport wraps response bodies so reading more than max bytes fails
// with ErrResponseTooLarge (max < 0: no limit), and rewrites errors that
// would show this host's network setup (hideResolver).
type limitTransport struct {
	tr  *http.Transport
	max int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.tr.RoundTrip(req)
	if err != nil {
		return resp, hideResolver(err)
	}
	if t.max < 0 || resp == nil || resp.Body == nil || resp.Body == http.NoBody {
		return resp, nil
	}
	resp.Body = &limitedBody{rc: resp.Body, max: t.max}
	return resp, nil
}

// ResolveError is a destination host that could not be resolved. Its
// message names the host and not the resolver: the standard library's
// ("lookup h on 127.0.0.53:53: no such host") shows the address of an
// internal DNS server to whoever reads the error — a workflow author, in
// a run's history.
type ResolveError struct {
	Host     string
	NotFound bool
	Timeout  bool
	err      *net.DNSError
}

func (e *ResolveError) Error() string {
	switch {
	case e.NotFound:
		return "could not resolve host " + e.Host + ": no such host"
	case e.Timeout:
		return "could not resolve host " + e.Host + ": the lookup timed out"
	default:
		return "could not resolve host " + e.Host
	}
}

// Unwrap keeps the original for errors.As (and its Timeout for net.Error
// checks); only the message is rewritten.
func (e *ResolveError) Unwrap() error { return e.err }

// hideResolver replaces a lookup failure in err by a *ResolveError; the
// dial around it ("dial tcp: …") adds nothing, so it goes too.
func hideResolver(err error) error {
	var dns *net.DNSError
	if !errors.As(err, &dns) {
		return err
	}
	return &ResolveError{Host: dns.Name, NotFound: dns.IsNotFound, Timeout: dns.IsTimeout, err: dns}
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// underlying transport.
func (t *limitTransport) CloseIdleConnections() { t.tr.CloseIdleConnections() }

type limitedBody struct {
	rc  io.ReadCloser
	max int64
	n   int64
	err error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// Read at most one byte past the limit, enough to detect overflow.
	if room := b.max - b.n; room < math.MaxInt64 && int64(len(p)) > room+1 {
		room++
		p = p[:room]
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		n -= int(b.n - b.max)
		b.err = fmt.Errorf("%w (limit %d bytes)", ErrResponseTooLarge, b.max)
		return n, b.err
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// ReadBody reads resp.Body up to max bytes (max <= 0 means
// DefaultMaxResponseBytes). If the body is longer it returns an error matching
// ErrResponseTooLarge. It does not close the body.
func ReadBody(resp *http.Response, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxResponseBytes
	}
	if resp == nil || resp.Body == nil {
		return nil, nil
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%w (Content-Length %d, limit %d bytes)", ErrResponseTooLarge, resp.ContentLength, max)
	}
	limit := max
	if limit < math.MaxInt64 {
		limit++
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w (limit %d bytes)", ErrResponseTooLarge, max)
	}
	return data, nil
}

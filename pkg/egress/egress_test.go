package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	type verdicts struct{ def, loop, priv bool } // allowed under default / AllowLoopback / AllowPrivate
	public := verdicts{true, true, true}
	blocked := verdicts{false, false, true}
	loopback := verdicts{false, true, true}
	cases := []struct {
		ip   string
		want verdicts
	}{
		// public
		{"8.8.8.8", public},
		{"1.1.1.1", public},
		{"93.184.216.34", public},
		{"100.63.255.255", public},
		{"100.128.0.0", public},
		{"172.15.255.255", public},
		{"172.32.0.0", public},
		{"192.167.255.255", public},
		{"192.169.0.0", public},
		{"198.17.255.255", public},
		{"198.20.0.0", public},
		{"223.255.255.255", public},
		{"2606:4700:4700::1111", public},
		{"2001:4860:4860::8888", public},
		{"::ffff:8.8.8.8", public},
		{"64:ff9b::808:808", public},  // NAT64 of 8.8.8.8
		{"2002:808:808::1", public},   // 6to4 of 8.8.8.8
		{"fe80::1%eth0", blocked},     // zone ignored
		{"2606:4700::1%eth0", public}, // zone ignored
		// unspecified / this network
		{"0.0.0.0", blocked},
		{"0.1.2.3", blocked},
		{"::", blocked},
		// loopback
		{"127.0.0.1", loopback},
		{"127.1.2.3", loopback},
		{"127.255.255.255", loopback},
		{"::1", loopback},
		{"::ffff:127.0.0.1", loopback},
		// private
		{"10.0.0.5", blocked},
		{"10.255.255.255", blocked},
		{"172.16.0.1", blocked},
		{"172.31.255.255", blocked},
		{"192.168.1.1", blocked},
		{"fc00::1", blocked},
		{"fd12:3456::1", blocked},
		{"fec0::1", blocked},
		// link-local incl. metadata
		{"169.254.169.254", blocked},
		{"169.254.0.1", blocked},
		{"fe80::1", blocked},
		{"febf::1", blocked},
		// CGNAT
		{"100.64.0.1", blocked},
		{"100.127.255.255", blocked},
		// multicast / broadcast / reserved
		{"224.0.0.1", blocked},
		{"239.255.255.250", blocked},
		{"ff02::1", blocked},
		{"ff0e::1", blocked},
		{"255.255.255.255", blocked},
		{"240.0.0.1", blocked},
		{"250.1.2.3", blocked},
		// special-purpose
		{"192.0.0.1", blocked},
		{"192.0.0.170", blocked},
		{"198.18.0.1", blocked},
		{"198.19.255.255", blocked},
		{"192.0.2.1", blocked},
		{"198.51.100.7", blocked},
		{"203.0.113.9", blocked},
		{"2001:db8::1", blocked},
		{"100::1", blocked},
		{"2001::1", blocked},      // Teredo
		{"::a00:1", blocked},      // IPv4-compatible ::10.0.0.1
		{"::808:808", blocked},    // IPv4-compatible ::8.8.8.8 (deprecated form)
		{"4000::1", blocked},      // outside 2000::/3
		{"64:ff9b:1::1", blocked}, // local-use NAT64
		// IPv4-mapped forms
		{"::ffff:10.0.0.5", blocked},
		{"::ffff:169.254.169.254", blocked},
		{"::ffff:0.0.0.0", blocked},
		{"::ffff:100.64.0.1", blocked},
		{"::ffff:255.255.255.255", blocked},
		{"::ffff:224.0.0.1", blocked},
		{"::ffff:198.18.0.1", blocked},
		{"::ffff:240.0.0.1", blocked},
		{"::ffff:192.0.0.8", blocked},
		// NAT64 / 6to4 wrapping blocked v4 — never lifted by AllowLoopback
		{"64:ff9b::7f00:1", blocked},    // 127.0.0.1
		{"64:ff9b::a00:5", blocked},     // 10.0.0.5
		{"64:ff9b::a9fe:a9fe", blocked}, // 169.254.169.254
		{"2002:7f00:1::", blocked},      // 127.0.0.1
		{"2002:a9fe:a9fe::1", blocked},  // 169.254.169.254
		{"2002:c0a8:101::1", blocked},   // 192.168.1.1
		{"2002:ffff:ffff::1", blocked},  // broadcast
		{"2002:0:0::1", blocked},        // 0.0.0.0
	}
	for _, tc := range cases {
		ip := netip.MustParseAddr(tc.ip)
		for _, m := range []struct {
			name string
			opts Options
			want bool
		}{
			{"default", Options{}, tc.want.def},
			{"AllowLoopback", Options{AllowLoopback: true}, tc.want.loop},
			{"AllowPrivate", Options{AllowPrivate: true}, tc.want.priv},
		} {
			err := Allowed(ip, m.opts)
			if (err == nil) != m.want {
				t.Errorf("Allowed(%s, %s) = %v, want allowed=%v", tc.ip, m.name, err, m.want)
				continue
			}
			if err != nil {
				if !errors.Is(err, ErrForbiddenAddress) {
					t.Errorf("Allowed(%s, %s) error %v does not match ErrForbiddenAddress", tc.ip, m.name, err)
				}
				if !strings.Contains(err.Error(), ip.String()) {
					t.Errorf("Allowed(%s, %s) error %q does not name the IP", tc.ip, m.name, err)
				}
			}
		}
	}
	if err := Allowed(netip.Addr{}, Options{AllowPrivate: true}); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("invalid addr: got %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	err := Allowed(netip.MustParseAddr("10.0.0.5"), Options{})
	if got, want := err.Error(), "egress: destination address not allowed: 10.0.0.5 is private"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestControlRefusesDialedAddress(t *testing.T) {
	ctrl := control(Options{AllowLoopback: true})
	for _, tc := range []struct {
		network, addr string
		ok            bool
	}{
		{"tcp4", "10.0.0.1:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[::ffff:10.0.0.1]:443", false},
		{"tcp6", "[fe80::1%eth0]:443", false},
		{"tcp4", "0.0.0.0:80", false},
		{"tcp4", "127.0.0.1:8080", true},
		{"tcp6", "[::1]:8080", true},
		{"tcp4", "8.8.8.8:443", true},
		{"tcp4", "not-an-address", false},
		{"udp4", "8.8.8.8:53", false},
	} {
		err := ctrl(context.Background(), tc.network, tc.addr, nil)
		if (err == nil) != tc.ok {
			t.Errorf("control(%s, %s) = %v, want ok=%v", tc.network, tc.addr, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("control(%s, %s) error %v does not match ErrForbiddenAddress", tc.network, tc.addr, err)
		}
	}
	err := ctrl(context.Background(), "tcp4", "10.0.0.1:80", nil)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.1 is private") {
		t.Errorf("control error %v should name the IP", err)
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

func get(t *testing.T, c *http.Client, u string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := ReadBody(resp, 0)
	return string(b), err
}

func expectForbidden(t *testing.T, err error, wantInMsg string) {
	t.Helper()
	if err == nil {
		t.Fatal("request succeeded, want refusal")
	}
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("error %v (%T) does not match ErrForbiddenAddress", err, err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %T is not a *url.Error", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %v does not contain a *net.OpError", err)
	}
	var fe *ForbiddenError
	if !errors.As(err, &fe) {
		t.Errorf("error %v does not contain a *ForbiddenError", err)
	}
	if !strings.Contains(err.Error(), wantInMsg) {
		t.Errorf("error %q does not mention %q", err, wantInMsg)
	}
}

func TestLoopbackServer(t *testing.T) {
	srv := newServer(t, okHandler())

	_, err := get(t, NewClient(Options{}), srv.URL)
	expectForbidden(t, err, "127.0.0.1 is loopback")

	for _, opts := range []Options{{AllowLoopback: true}, {AllowPrivate: true}} {
		body, err := get(t, NewClient(opts), srv.URL)
		if err != nil || body != "ok" {
			t.Errorf("opts %+v: got %q, %v", opts, body, err)
		}
	}
}

func TestHostnameResolvedAtDialTime(t *testing.T) {
	srv := newServer(t, okHandler())
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	u := "http://localhost:" + port + "/"

	_, err := get(t, NewClient(Options{}), u)
	expectForbidden(t, err, "is loopback")

	body, err := get(t, NewClient(Options{AllowLoopback: true}), u)
	if err != nil || body != "ok" {
		t.Errorf("AllowLoopback localhost: got %q, %v", body, err)
	}
}

func TestMappedLoopbackLiteralRefused(t *testing.T) {
	srv := newServer(t, okHandler())
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, err := get(t, NewClient(Options{}), "http://[::ffff:127.0.0.1]:"+port+"/")
	expectForbidden(t, err, "loopback")
}

func TestRedirects(t *testing.T) {
	final := newServer(t, okHandler())
	hop := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/done", http.StatusFound)
	}))
	c := NewClient(Options{AllowLoopback: true})

	// Allowed -> allowed is followed.
	body, err := get(t, c, hop.URL)
	if err != nil || body != "ok" {
		t.Fatalf("redirect follow: got %q, %v", body, err)
	}

	// Allowed -> forbidden is refused at dial time. 0.0.0.0 is blocked even
	// with AllowLoopback, and if the guard failed it would only reach this
	// host, never the network.
	_, port, _ := net.SplitHostPort(final.Listener.Addr().String())
	bad := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://0.0.0.0:"+port+"/", http.StatusFound)
	}))
	_, err = get(t, c, bad.URL)
	expectForbidden(t, err, "0.0.0.0 is unspecified")

	// Redirect loops stop after MaxRedirects.
	var hits int
	var loop *httptest.Server
	loop = newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, loop.URL+fmt.Sprintf("/%d", hits), http.StatusFound)
	}))
	_, err = get(t, c, loop.URL)
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Errorf("redirect loop: got %v", err)
	}
	if hits != MaxRedirects+1 {
		t.Errorf("redirect loop: %d requests, want %d", hits, MaxRedirects+1)
	}
}

func TestNoEnvProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	c := NewClient(Options{})
	lt, ok := c.Transport.(*limitTransport)
	if !ok {
		t.Fatalf("transport %T", c.Transport)
	}
	if lt.tr.Proxy != nil {
		t.Error("transport has a Proxy func")
	}
	if lt.tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost {
		t.Errorf("MaxIdleConnsPerHost = %d", lt.tr.MaxIdleConnsPerHost)
	}
	if c.Timeout != 0 {
		t.Errorf("client Timeout = %v, want 0 (per-request contexts)", c.Timeout)
	}
}

func TestReadBody(t *testing.T) {
	mk := func(body string, cl int64) *http.Response {
		return &http.Response{Body: io.NopCloser(strings.NewReader(body)), ContentLength: cl}
	}
	if b, err := ReadBody(mk("hello", -1), 5); err != nil || string(b) != "hello" {
		t.Errorf("exact limit: %q, %v", b, err)
	}
	if b, err := ReadBody(mk("", 0), 5); err != nil || len(b) != 0 {
		t.Errorf("empty: %q, %v", b, err)
	}
	if _, err := ReadBody(mk("hello!", -1), 5); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("over limit (chunked): %v", err)
	}
	if _, err := ReadBody(mk("hello!", 6), 5); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("over limit (content-length): %v", err)
	}
	big := strings.Repeat("x", int(DefaultMaxResponseBytes)+1)
	if _, err := ReadBody(mk(big, -1), 0); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("default limit: %v", err)
	}
}

func TestClientResponseLimit(t *testing.T) {
	payload := bytes.Repeat([]byte("a"), 1000)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))

	c := NewClient(Options{AllowLoopback: true, MaxResponseBytes: 999})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("read beyond limit: %v", err)
	}
	if len(b) != 999 {
		t.Errorf("read %d bytes before error, want 999", len(b))
	}

	c = NewClient(Options{AllowLoopback: true, MaxResponseBytes: 1000})
	resp, err = c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 1000 {
		t.Errorf("at limit: %d bytes, %v", len(b), err)
	}
}

func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "10.0.0.5", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:a00:1::", "8.8.8.8", "2606:4700::1", "fe80::1", "ff02::1"} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:])
	}
	modes := []Options{{}, {AllowLoopback: true}, {AllowPrivate: true}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b [16]byte
		copy(b[:], data)
		a16 := netip.AddrFrom16(b)
		a4 := netip.AddrFrom4([4]byte(b[:4]))
		mapped := netip.AddrFrom16(a4.As16())
		for _, opts := range modes {
			e16 := Allowed(a16, opts)
			e4 := Allowed(a4, opts)
			em := Allowed(mapped, opts)
			if (e4 == nil) != (em == nil) {
				t.Fatalf("%+v: %s -> %v but %s -> %v", opts, a4, e4, mapped, em)
			}
			if a16.Is4In6() {
				if eu := Allowed(a16.Unmap(), opts); (eu == nil) != (e16 == nil) {
					t.Fatalf("%+v: %s -> %v but %s -> %v", opts, a16, e16, a16.Unmap(), eu)
				}
			}
			if ez := Allowed(a16.WithZone("eth0"), opts); (ez == nil) != (e16 == nil) {
				t.Fatalf("%+v: zone changed verdict for %s", opts, a16)
			}
			for _, e := range []error{e16, e4, em} {
				if e != nil && !errors.Is(e, ErrForbiddenAddress) {
					t.Fatalf("error %v does not match ErrForbiddenAddress", e)
				}
			}
			if opts.AllowPrivate {
				if e16 != nil || e4 != nil {
					t.Fatalf("AllowPrivate refused %s / %s", a16, a4)
				}
				continue
			}
			// Cross-check against net/netip's own classification.
			for _, a := range []netip.Addr{a16, a4} {
				if Allowed(a, opts) != nil {
					continue
				}
				u := a.Unmap()
				if u.IsLoopback() && opts.AllowLoopback {
					continue
				}
				if u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() ||
					u.IsMulticast() || u.IsInterfaceLocalMulticast() || u.IsUnspecified() || !u.IsGlobalUnicast() {
					t.Fatalf("%+v: allowed %s which netip classifies as non-public", opts, a)
				}
			}
		}
	})
}

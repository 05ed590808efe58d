package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDefect9RunErrorHidesResolver: a host that does not resolve fails with
// "could not resolve host X", not the resolver's own address (which the
// standard library puts in its message and a run's history would show).
func TestDefect9RunErrorHidesResolver(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		for _, opts := range []Options{{}, {MaxResponseBytes: -1}} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://nope.invalid/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewClient(opts).Do(req)
			if err == nil {
				t.Fatal("nope.invalid resolved")
			}
			checkHidden(t, err, "nope.invalid")
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		for _, c := range []struct {
			name string
			dns  *net.DNSError
			want string
		}{
			{"not found", &net.DNSError{Err: "no such host", Name: "a.invalid", Server: "127.0.0.53:53", IsNotFound: true}, "could not resolve host a.invalid: no such host"},
			{"timeout", &net.DNSError{Err: "i/o timeout", Name: "b.example", Server: "10.0.0.2:53", IsTimeout: true}, "could not resolve host b.example: the lookup timed out"},
			{"other", &net.DNSError{Err: "server misbehaving", Name: "c.example", Server: "10.0.0.2:53"}, "could not resolve host c.example"},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := hideResolver(&net.OpError{Op: "dial", Net: "tcp", Err: c.dns})
				if got := err.Error(); got != c.want {
					t.Errorf("= %q, want %q", got, c.want)
				}
				checkHidden(t, err, c.dns.Name)
			})
		}
	})
}

func checkHidden(t *testing.T, err error, host string) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, "could not resolve host "+host) {
		t.Errorf("error %q does not say the host did not resolve", msg)
	}
	if strings.Contains(msg, ":53") || strings.Contains(msg, " on ") {
		t.Errorf("error %q shows the resolver", msg)
	}
	var re *ResolveError
	if !errors.As(err, &re) || re.Host != host {
		t.Errorf("error %v is not a *ResolveError for %s", err, host)
	}
}

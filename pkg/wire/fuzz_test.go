package wire_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/pkg/wire"
)

// The header parsers read values anyone with publish rights can set.

func FuzzParseHops(f *testing.F) {
	for _, s := range []string{"", "0", "7", "1000", "1001", "-1", "01", "9999999999999999999999", "\x00", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := wire.ParseHops(s)
		if err != nil {
			return
		}
		if n < 0 || n > wire.MaxHops {
			t.Fatalf("ParseHops(%q) = %d, out of range", s, n)
		}
		if s != "" && wire.FormatHops(n) != s {
			t.Fatalf("ParseHops(%q) = %d does not format back", s, n)
		}
		if want, _ := strconv.Atoi(s); s != "" && want != n {
			t.Fatalf("ParseHops(%q) = %d, strconv says %d", s, n, want)
		}
	})
}

func FuzzValidTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("")
	f.Add(strings.Repeat("-", 60))
	f.Fuzz(func(t *testing.T, s string) {
		if !wire.ValidTraceparent(s) {
			return
		}
		// Whatever passes is safe as a header value and a log field.
		if len(s) < 55 || strings.ContainsAny(s, "\r\n ") || !utf8.ValidString(s) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzPrefix(f *testing.F) {
	f.Add("hello", 3)
	f.Add("a\xffé😀", 4)
	f.Fuzz(func(t *testing.T, s string, max int) {
		got := wire.Prefix(s, max)
		if len(got) > max && !(max < 0 && got == "") {
			t.Fatalf("Prefix(%q, %d) = %q is longer than max", s, max, got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("Prefix(%q, %d) = %q is not valid UTF-8", s, max, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("Prefix(%q, %d) = %q is not a prefix", s, max, got)
		}
	})
}

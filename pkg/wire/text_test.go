package wire_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/wire"
)

func TestPrefix(t *testing.T) {
	cases := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "hello", 10, "hello"},
		{"exact", "hello", 5, "hello"},
		{"cut", "hello", 3, "hel"},
		{"zero", "hello", 0, ""},
		{"negative", "hello", -1, ""},
		{"never halves a rune", "aé", 2, "a"},
		{"keeps a whole rune", "aé", 3, "aé"},
		{"four-byte rune", "x😀y", 4, "x"},
		{"invalid byte becomes U+FFFD", "a\xffb", 10, "a\uFFFDb"},
		{"U+FFFD counted at 3 bytes", "a\xffb", 3, "a"},
		{"empty", "", 5, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := wire.Prefix(c.in, c.max)
			if got != c.want {
				t.Errorf("Prefix(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
			}
		})
	}
}

func TestHeaderText(t *testing.T) {
	got := wire.HeaderText("line one\r\nline two", 100)
	if got != "line one  line two" {
		t.Errorf("got %q", got)
	}
	long := wire.HeaderText(strings.Repeat("é", 1000), 1024)
	if len(long) > 1024 || !utf8.ValidString(long) {
		t.Errorf("len %d, valid %v", len(long), utf8.ValidString(long))
	}
}

func TestValidTraceparent(t *testing.T) {
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name string
		in   string
		want bool
	}{
		{"valid", ok, true},
		{"empty", "", false},
		{"upper-case hex", strings.ToUpper(ok), false},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"version ff", "ff" + ok[2:], false},
		{"version 00 with a tail", ok + "-00", false},
		{"later version with a tail", "01" + ok[2:] + "-extra", true},
		{"later version with a bad tail", "01" + ok[2:] + "x", false},
		{"missing dash", strings.Replace(ok, "-", "_", 1), false},
		{"short", ok[:54], false},
		{"non-hex", strings.Replace(ok, "4bf9", "zzzz", 1), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := wire.ValidTraceparent(c.in); got != c.want {
				t.Errorf("ValidTraceparent(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestParseHops(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true},
		{"0", 0, true},
		{"1", 1, true},
		{"42", 42, true},
		{"1000", 1000, true},
		{"1001", 0, false},
		{"99999", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"01", 0, false},
		{" 1", 0, false},
		{"1x", 0, false},
		{"١", 0, false}, // an Arabic-Indic digit is not a decimal digit here
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := wire.ParseHops(c.in)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("ParseHops(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
			}
			if err != nil && !errors.Is(err, wire.ErrBadHeader) {
				t.Errorf("error %v does not match ErrBadHeader", err)
			}
		})
	}
	h := nats.Header{}
	if n, err := wire.HopsOf(h); n != 0 || err != nil {
		t.Errorf("HopsOf(empty) = %d, %v", n, err)
	}
	h.Set(wire.HeaderHops, wire.FormatHops(7))
	if n, err := wire.HopsOf(h); n != 7 || err != nil {
		t.Errorf("HopsOf = %d, %v, want 7", n, err)
	}
	if n, err := wire.HopsOf(nil); n != 0 || err != nil {
		t.Errorf("HopsOf(nil) = %d, %v", n, err)
	}
}

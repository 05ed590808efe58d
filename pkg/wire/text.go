package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// ErrBadHeader is matched by the error of a Switchboard header whose value is
// malformed. Anyone with publish rights can set headers, so consumers parse
// them as outside input.
var ErrBadHeader = errors.New("malformed header")

// MaxHops is the largest hop count ParseHops accepts. It is far above any
// sensible chain limit; a larger value is a forgery, not a deep chain.
const MaxHops = 1000

// Prefix returns the longest prefix of s that is at most max bytes long and
// valid UTF-8: a rune is never cut in half, and invalid bytes become U+FFFD
// (counted at its encoded size). It is how a preview or a bounded message is
// cut so that it still encodes as JSON text or a header value.
func Prefix(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n := utf8.RuneLen(r) // 3 for the replacement of an invalid byte
		if b.Len()+n > max {
			break
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// HeaderText makes s a header value of at most max bytes: CR and LF become
// spaces (nats.go would do the same, after the size was counted), and the
// result is cut with Prefix. Use it for free text such as a dead reason,
// with Budgets.HeaderValue as max.
func HeaderText(s string, max int) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return Prefix(s, max)
}

// ValidTraceparent reports whether s is a well-formed W3C traceparent
// (version-traceid-parentid-flags, lower-case hex, ids not all zero, version
// not ff). Version 00 is exactly 55 bytes; a later version may append fields
// after a '-', as the spec allows. A malformed value is dropped, never
// propagated: a consumer's tracer could reject the whole message for it.
func ValidTraceparent(s string) bool {
	if len(s) < 55 || len(s) > 55 && (s[55] != '-' || s[:2] == "00") {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, traceID, parentID, flags := s[:2], s[3:35], s[36:52], s[53:55]
	for _, f := range []string{version, traceID, parentID, flags} {
		if !lowerHex(f) {
			return false
		}
	}
	return version != "ff" && strings.Trim(traceID, "0") != "" && strings.Trim(parentID, "0") != ""
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseHops parses an Sb-Hops value: "" (absent) is 0; otherwise a decimal
// number from 0 to MaxHops without sign, spaces or leading zeros. Anything
// else is an error matching ErrBadHeader.
func ParseHops(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	if len(v) > len(strconv.Itoa(MaxHops)) || len(v) > 1 && v[0] == '0' {
		return 0, fmt.Errorf("%w: %s %q", ErrBadHeader, HeaderHops, Prefix(v, 16))
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s %q", ErrBadHeader, HeaderHops, Prefix(v, 16))
		}
		n = n*10 + int(c-'0')
	}
	if n > MaxHops {
		return 0, fmt.Errorf("%w: %s %d is over %d", ErrBadHeader, HeaderHops, n, MaxHops)
	}
	return n, nil
}

// FormatHops is the header value of hop count n (n > 0; 0 is left out).
func FormatHops(n int) string { return strconv.Itoa(n) }

// HopsOf returns the hop count of a message's headers (0 when absent).
func HopsOf(h nats.Header) (int, error) {
	if h == nil {
		return 0, nil
	}
	return ParseHops(h.Get(HeaderHops))
}

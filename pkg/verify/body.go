package verify

import (
	"encoding/json"
	"strconv"
	"strings"
)

// bodyView parses the body as JSON at most once, and only when a spec reads a
// field from it; verification itself always works on the raw bytes.
type bodyView struct {
	raw    []byte
	parsed bool
	val    any
	ok     bool
}

func newBodyView(raw []byte) *bodyView { return &bodyView{raw: raw} }

func (b *bodyView) value() (any, bool) {
	if !b.parsed {
		b.parsed = true
		var v any
		// encoding/json bounds nesting depth itself, so deeply nested input
		// is an error here, not a stack overflow.
		if err := json.Unmarshal(b.raw, &v); err == nil {
			b.val, b.ok = v, true
		}
	}
	return b.val, b.ok
}

// strings returns the scalar values at a dotted path; "*" walks every element
// of an array (or value of an object), a number indexes an array.
func (b *bodyView) strings(path string) []string {
	v, ok := b.value()
	if !ok {
		return nil
	}
	return lookupStrings(v, strings.Split(path, "."))
}

func lookupStrings(v any, path []string) []string {
	if len(path) == 0 {
		switch t := v.(type) {
		case string:
			return []string{t}
		case float64:
			return []string{strconv.FormatFloat(t, 'f', -1, 64)}
		case bool:
			return []string{strconv.FormatBool(t)}
		default:
			return nil
		}
	}
	p, rest := path[0], path[1:]
	switch t := v.(type) {
	case map[string]any:
		if p == "*" {
			var out []string
			for _, e := range t {
				out = append(out, lookupStrings(e, rest)...)
			}
			return out
		}
		e, ok := t[p]
		if !ok {
			return nil
		}
		return lookupStrings(e, rest)
	case []any:
		if p == "*" {
			var out []string
			for _, e := range t {
				r := lookupStrings(e, rest)
				if len(r) == 0 {
					// Keep a hole so "every element must match" sees the
					// element that lacks the field.
					out = append(out, "\x00missing")
					continue
				}
				out = append(out, r...)
			}
			return out
		}
		i, err := strconv.Atoi(p)
		if err != nil || i < 0 || i >= len(t) {
			return nil
		}
		return lookupStrings(t[i], rest)
	}
	return nil
}

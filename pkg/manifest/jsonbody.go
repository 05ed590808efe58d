package manifest

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// A delivery's body is parsed on every request, and encoding/json's
// decoding into interfaces (then json.Number to int64/float64) was most of
// the extraction's time. parseJSONBody builds the same tree for the usual
// body — one JSON value and nothing after it but whitespace — and reports
// !ok for anything else (invalid JSON, trailing bytes, deep nesting), which
// the caller then decodes with encoding/json exactly as before. So the
// fast parser never decides what a body means: it only succeeds where
// encoding/json would build the same value (FuzzParseJSONBody checks it
// against decodeBody).

// maxFastDepth is the nesting the fast parser follows; deeper bodies take
// encoding/json's path (which refuses past 10,000).
const maxFastDepth = 256

type jsonParser struct {
	b     []byte
	i     int
	depth int
}

func parseJSONBody(b []byte) (any, bool) {
	p := jsonParser{b: b}
	v, ok := p.value()
	if !ok {
		return nil, false
	}
	p.space()
	if p.i != len(p.b) {
		return nil, false // trailing bytes: encoding/json's rules decide
	}
	return v, true
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, bool) {
	p.space()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, ok := p.str()
		return s, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *jsonParser) literal(lit string) bool {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return false
	}
	p.i += len(lit)
	return true
}

func (p *jsonParser) object() (any, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return nil, false
	}
	defer func() { p.depth-- }()
	p.i++ // {
	m := map[string]any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, true
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, false
		}
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, false
		}
		p.i++
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated key: the last one wins, as in encoding/json
		p.space()
		if p.i >= len(p.b) {
			return nil, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (p *jsonParser) array() (any, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return nil, false
	}
	defer func() { p.depth-- }()
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		p.space()
		if p.i >= len(p.b) {
			return nil, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// str reads a string token. Plain ones (no escape, valid UTF-8) are their
// bytes; one with an escape or invalid UTF-8 is unquoted by encoding/json
// itself, so its replacement characters and surrogates are as before.
func (p *jsonParser) str() (string, bool) {
	start := p.i // the opening quote
	plain := true
	for j := start + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			tok := p.b[start : j+1]
			if plain || utf8.Valid(tok) && !hasByte(tok, '\\') {
				return string(tok[1 : len(tok)-1]), true
			}
			var s string
			if json.Unmarshal(tok, &s) != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			j++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", false // a control character: invalid JSON
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return "", false
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// number reads a JSON number and converts it as numbers does a
// json.Number: int64 when it is one, else float64.
func (p *jsonParser) number() (any, bool) {
	start := p.i
	digits := func() bool {
		n := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i > n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case !digits():
		return nil, false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !digits() {
			return nil, false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !digits() {
			return nil, false
		}
	}
	s := string(p.b[start:p.i])
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f, true
}

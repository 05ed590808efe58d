package reqbody

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// Field error codes.
const (
	CodeRequired   = "required"
	CodeType       = "type"
	CodeMismatch   = "mismatch"
	CodeUnexpected = "unexpected" // reserved; Validate reports declared rules only
)

// FieldError is one failing field of a request, as listed in a 400
// validation_failed answer.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// CheckMediaType returns an error wrapping ErrUnsupportedMediaType (415)
// when the spec declares body fields, does not allow an arbitrary payload,
// the body is not empty and contentType is not one Parse decodes into
// structure. An empty body passes: its required fields fail in Validate.
func CheckMediaType(spec *workflow.RequestValidation, contentType string, bodyLen int) error {
	if spec == nil || spec.AllowArbitraryPayload || len(spec.Body) == 0 || bodyLen == 0 || Typed(contentType) {
		return nil
	}
	ct := contentType
	if ct == "" {
		ct = "none"
	}
	return fmt.Errorf("%w: content type %q; this workflow's body fields need application/json, application/x-www-form-urlencoded or multipart/form-data", ErrUnsupportedMediaType, ct)
}

// Validate checks a request against spec and returns every failing field,
// or nil when the request passes (or spec is nil). Fields are named
// "query.<key>", "headers.<lower-cased key>" and "body.<dotted.path>".
//
//   - A required query parameter must be present with a non-empty value.
//   - A required header must be present with a non-empty value; header names
//     match case-insensitively. With Equals, every value of the header must
//     be exactly Equals; an absent header that is not required passes. The
//     message does not echo the expected value (it may be a shared secret).
//   - A body rule walks its dotted path through objects (a numeric segment
//     indexes an array). A missing or null field fails only when required; a
//     present one must have the declared type: string, number, boolean,
//     object or array. Fields not declared are not reported.
//   - With AllowArbitraryPayload the body rules are not checked at all.
//
// method is accepted for symmetry with the request envelope; no rule depends
// on it today (allowed methods are checked before validation).
func Validate(spec *workflow.RequestValidation, method string, headers http.Header, query url.Values, body any) []FieldError {
	_ = method
	if spec == nil {
		return nil
	}
	var errs []FieldError
	for _, q := range spec.Query {
		if q.Required && !nonEmpty(query[q.Key]) {
			errs = append(errs, FieldError{
				Field:   "query." + q.Key,
				Code:    CodeRequired,
				Message: fmt.Sprintf("query parameter %q is required", q.Key),
			})
		}
	}
	for _, h := range spec.Headers {
		name := strings.ToLower(h.Key)
		field := "headers." + name
		vs := headerValues(headers, h.Key)
		if !nonEmpty(vs) {
			if h.Required {
				errs = append(errs, FieldError{Field: field, Code: CodeRequired, Message: fmt.Sprintf("header %q is required", name)})
			}
			continue
		}
		if h.Equals != "" {
			for _, v := range vs {
				if v != h.Equals {
					errs = append(errs, FieldError{Field: field, Code: CodeMismatch, Message: fmt.Sprintf("header %q does not have the expected value", name)})
					break
				}
			}
		}
	}
	if spec.AllowArbitraryPayload {
		return errs
	}
	for _, b := range spec.Body {
		field := "body." + b.Key
		v, ok := lookup(body, b.Key)
		if !ok || v == nil {
			if b.Required {
				errs = append(errs, FieldError{Field: field, Code: CodeRequired, Message: fmt.Sprintf("body field %q is required", b.Key)})
			}
			continue
		}
		if b.Type != "" && !hasType(v, b.Type) {
			errs = append(errs, FieldError{
				Field:   field,
				Code:    CodeType,
				Message: fmt.Sprintf("body field %q must be %s %s, not %s", b.Key, article(b.Type), b.Type, typeName(v)),
			})
		}
	}
	return errs
}

func nonEmpty(vs []string) bool {
	for _, v := range vs {
		if v != "" {
			return true
		}
	}
	return false
}

// headerValues looks key up case-insensitively, whether h holds canonical or
// lower-cased names.
func headerValues(h http.Header, key string) []string {
	if vs := h.Values(key); len(vs) > 0 {
		return vs
	}
	var out []string
	for k, vs := range h {
		if strings.EqualFold(k, key) {
			out = append(out, vs...)
		}
	}
	return out
}

// lookup walks a dotted path through maps (and, for numeric segments,
// arrays).
func lookup(v any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	for seg := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func hasType(v any, typ string) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		switch v.(type) {
		case float64, float32, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
			return true
		}
		return false
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	// An unknown type is the workflow's mistake (workflow.Compile rejects
	// it), not the caller's: do not fail the request for it.
	return true
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	}
	if hasType(v, "number") {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

func article(typ string) string {
	switch typ {
	case "object", "array":
		return "an"
	}
	return "a"
}

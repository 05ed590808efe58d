// Package reqbody turns the body of a Request trigger into the value a run
// sees as trigger.request.body, checks a request against the trigger's
// declarative validation, and converts between *http.Request, the
// sbv1.Request envelope and the map a run's templates read.
//
// Parse decodes application/json (and any +json type), form-urlencoded and
// multipart/form-data bodies into structure; anything else is kept as a
// string. Its errors map onto HTTP statuses: ErrMalformed → 400,
// ErrTooLarge → 413, ErrUnsupportedMediaType (from CheckMediaType) → 415.
package reqbody

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
)

// Default limits for multipart bodies.
const (
	DefaultMaxParts     = 32
	DefaultMaxPartBytes = 1 << 20
	DefaultMaxMemory    = 8 << 20
)

// Limits bounds what Parse accepts from a multipart/form-data body. Zero (or
// negative) fields take the defaults.
type Limits struct {
	// MaxParts is the most parts (fields and files together) a body may have.
	MaxParts int
	// MaxPartBytes is the most decoded bytes one part may hold.
	MaxPartBytes int64
	// MaxMemory is the most decoded bytes all parts may hold together.
	MaxMemory int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxPartBytes <= 0 {
		l.MaxPartBytes = DefaultMaxPartBytes
	}
	if l.MaxMemory <= 0 {
		l.MaxMemory = DefaultMaxMemory
	}
	return l
}

var (
	// ErrTooLarge: a multipart body has too many or too large parts (413).
	ErrTooLarge = errors.New("request body too large")
	// ErrUnsupportedMediaType: the workflow declares typed body fields but
	// the body's content type is not one Parse decodes (415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrMalformed: the body does not parse as its declared content type (400).
	ErrMalformed = errors.New("malformed request body")
)

type kind int

const (
	kindText kind = iota
	kindJSON
	kindForm
	kindMultipart
)

// mediaType returns the lower-cased media type and its parameters. A
// Content-Type whose parameters do not parse still yields its type (params
// nil), so that "application/json; charset" is JSON rather than text.
func mediaType(ct string) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil {
		return mt, params
	}
	mt, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt)), nil
}

func classify(mt string) kind {
	switch {
	case mt == "application/json":
		return kindJSON
	case strings.HasSuffix(mt, "+json") && strings.Contains(mt, "/"):
		return kindJSON
	case mt == "application/x-www-form-urlencoded":
		return kindForm
	case mt == "multipart/form-data":
		return kindMultipart
	}
	return kindText
}

// Typed reports whether a body of content type ct is decoded into structure
// by Parse (JSON, form-urlencoded, multipart/form-data).
func Typed(contentType string) bool {
	mt, _ := mediaType(contentType)
	return classify(mt) != kindText
}

// Parse decodes body according to contentType:
//
//   - application/json and */*+json: the JSON value (numbers as float64);
//     an empty or all-whitespace body is nil.
//   - application/x-www-form-urlencoded: map[string]any, a single value as a
//     string and a repeated one as []any of strings.
//   - multipart/form-data: map[string]any; fields as for forms, files as
//     {"name", "mimeType", "size" (int64), "data" (standard base64)}, a
//     repeated name as []any. Limits apply; exceeding one is ErrTooLarge.
//   - anything else, including no content type: string(body).
//
// Errors wrap ErrMalformed or ErrTooLarge.
func Parse(contentType string, body []byte, lim Limits) (any, error) {
	mt, params := mediaType(contentType)
	switch classify(mt) {
	case kindJSON:
		return parseJSON(body)
	case kindForm:
		return parseForm(body)
	case kindMultipart:
		return parseMultipart(params["boundary"], body, lim.withDefaults())
	}
	return string(body), nil
}

func parseJSON(body []byte) (any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
	}
	return v, nil
}

func parseForm(body []byte) (any, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: invalid form body: %v", ErrMalformed, err)
	}
	out := make(map[string]any, len(vals))
	for k, vs := range vals {
		out[k] = collapse(vs)
	}
	return out, nil
}

// collapse turns a list of strings into a string (one value) or []any.
func collapse(vs []string) any {
	if len(vs) == 1 {
		return vs[0]
	}
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// add appends v under name, turning a repeated name into []any.
func add(m map[string]any, name string, v any) {
	prev, ok := m[name]
	if !ok {
		m[name] = v
		return
	}
	// A single value is a string or a file map, never []any, so a []any
	// here is always a list that add built.
	if list, ok := prev.([]any); ok {
		m[name] = append(list, v)
		return
	}
	m[name] = []any{prev, v}
}

func parseMultipart(boundary string, body []byte, lim Limits) (any, error) {
	if boundary == "" {
		return nil, fmt.Errorf("%w: multipart/form-data without a boundary parameter", ErrMalformed)
	}
	out := map[string]any{}
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts int
	var total int64
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: invalid multipart body: %v", ErrMalformed, err)
		}
		parts++
		if parts > lim.MaxParts {
			return nil, fmt.Errorf("%w: more than %d multipart parts", ErrTooLarge, lim.MaxParts)
		}
		data, err := io.ReadAll(io.LimitReader(p, lim.MaxPartBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%w: invalid multipart body: %v", ErrMalformed, err)
		}
		if int64(len(data)) > lim.MaxPartBytes {
			return nil, fmt.Errorf("%w: a multipart part is larger than %d bytes", ErrTooLarge, lim.MaxPartBytes)
		}
		total += int64(len(data))
		if total > lim.MaxMemory {
			return nil, fmt.Errorf("%w: multipart parts total more than %d bytes", ErrTooLarge, lim.MaxMemory)
		}
		disp, dp, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil || disp != "form-data" || dp["name"] == "" {
			continue // not a form field; counted against the limits, not kept
		}
		name := dp["name"]
		filename, isFile := dp["filename"]
		if !isFile {
			add(out, name, string(data))
			continue
		}
		ct := p.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		add(out, name, map[string]any{
			"name":     filename,
			"mimeType": ct,
			"size":     int64(len(data)),
			"data":     base64.StdEncoding.EncodeToString(data),
		})
	}
	return out, nil
}

package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/template"
)

// Problem is one validation error in a document.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Problems is every validation error of one document.
type Problems []Problem

func (p Problems) Error() string {
	parts := make([]string, len(p))
	for i, x := range p {
		if x.Field != "" {
			parts[i] = x.Field + ": " + x.Message
		} else {
			parts[i] = x.Message
		}
	}
	return strings.Join(parts, "; ")
}

func (p *Problems) add(field, format string, args ...any) {
	*p = append(*p, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p Problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Compile validates w and compiles its expressions. It returns Problems
// listing every error found, not only the first.
func (w *Workflow) Compile() error {
	var p Problems
	if w.Kind != "" && w.Kind != KindWorkflow {
		p.add("kind", "must be %s", KindWorkflow)
	}
	if !ValidID(w.Project) {
		p.add("project", "must match [a-z0-9][a-z0-9_-]* (at most 63 characters)")
	}
	if !ValidID(w.ID) {
		p.add("id", "must match [a-z0-9][a-z0-9_-]* (at most 63 characters)")
	}
	if w.Integration != "" && !ValidID(w.Integration) {
		p.add("integration", "must match [a-z0-9][a-z0-9_-]*")
	}
	w.Trigger.compile(&p)
	if takesIntegration(w.Trigger.Type) && w.Trigger.Integration != "" {
		// The trigger's integration is the workflow's: its runs use that
		// integration's credentials.
		switch {
		case w.Integration == "":
			w.Integration = w.Trigger.Integration
		case w.Integration != w.Trigger.Integration:
			p.add("trigger.integration", "is %q but the workflow's integration is %q", w.Trigger.Integration, w.Integration)
		}
	}
	if len(w.Steps) == 0 {
		p.add("steps", "at least one step is required")
	}
	seen := map[string]bool{}
	responses := 0
	for i, s := range w.Steps {
		field := fmt.Sprintf("steps[%d]", i)
		if s == nil {
			p.add(field, "is empty")
			continue
		}
		if !stepIDPattern.MatchString(s.ID) {
			p.add(field+".id", "must be an identifier ([A-Za-z_][A-Za-z0-9_]*), so expressions can say steps.<id>")
		} else if seen[s.ID] {
			p.add(field+".id", "duplicate step id %q", s.ID)
		}
		seen[s.ID] = true
		if s.Type == StepResponse {
			responses++
			if !w.Trigger.spec().responds {
				p.add(field+".type", "a response step needs a request trigger")
			}
		}
		s.compile(field, &p)
	}
	if responses > 1 {
		p.add("steps", "at most one response step is allowed")
	}
	return p.err()
}

// framingHeaders are the headers of the HTTP message itself (canonical
// names): the server frames a response, and a step's own Content-Length or
// Transfer-Encoding would contradict it and lose the body. Read-only.
var framingHeaders = map[string]bool{
	"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Upgrade": true, "Trailer": true, "Te": true, "Proxy-Connection": true,
}

// literalScheme returns the scheme of a URL template when it is written
// out before any {{ expression }} ("file://…", "https://{{ host }}/…").
func literalScheme(raw string) (string, bool) {
	head := raw
	if i := strings.Index(raw, "{{"); i >= 0 {
		head = raw[:i]
	}
	scheme, _, ok := strings.Cut(head, ":")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/?#") {
		return "", false
	}
	return strings.ToLower(scheme), true
}

// FramingHeader reports whether a response step may not set header name.
func FramingHeader(name string) bool { return framingHeaders[http.CanonicalHeaderKey(name)] }

func (s *Step) compile(field string, p *Problems) {
	tmpl := func(name string, v any) *template.Template {
		if v == nil {
			return nil
		}
		t, err := template.Compile(v)
		if err != nil {
			p.add(field+"."+name, "%v", err)
			return nil
		}
		return t
	}
	tmplMap := func(name string, m map[string]string) map[string]*template.Template {
		if len(m) == 0 {
			return nil
		}
		out := make(map[string]*template.Template, len(m))
		for k, v := range m {
			out[k] = tmpl(name+"."+k, v)
		}
		return out
	}
	c := compiledStep{}
	if s.If != "" {
		e, err := template.CompileExpr(s.If)
		if err != nil {
			p.add(field+".if", "%v", err)
		}
		c.cond = e
	}
	c.timeout = time.Duration(s.Timeout)
	if c.timeout == 0 {
		c.timeout = DefaultStepTimeout
	} else if c.timeout < 0 || c.timeout > MaxStepTimeout {
		p.add(field+".timeout", "must be between 0 and %s", MaxStepTimeout)
	}
	c.retry = Retry{Attempts: DefaultAttempts, Backoff: Duration(DefaultBackoff)}
	if s.Retry != nil {
		if s.Retry.Attempts < 0 || s.Retry.Attempts > MaxAttempts {
			p.add(field+".retry.attempts", "must be between 1 and %d", MaxAttempts)
		} else if s.Retry.Attempts > 0 {
			c.retry.Attempts = s.Retry.Attempts
		}
		if s.Retry.Backoff < 0 {
			p.add(field+".retry.backoff", "must not be negative")
		} else if s.Retry.Backoff > 0 {
			c.retry.Backoff = s.Retry.Backoff
		}
	}
	switch s.Type {
	case StepHTTP:
		if s.URL == "" {
			p.add(field+".url", "is required")
		} else if scheme, ok := literalScheme(s.URL); ok && scheme != "http" && scheme != "https" {
			p.add(field+".url", "must be an http or https URL, not %s:", scheme)
		}
		c.url = tmpl("url", s.URL)
		c.method = strings.ToUpper(s.Method)
		if c.method == "" {
			c.method = http.MethodGet
			if s.JSON != nil || s.Body != nil {
				c.method = http.MethodPost
			}
		}
		switch c.method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead:
		default:
			p.add(field+".method", "unsupported method %q", s.Method)
		}
		if s.JSON != nil && s.Body != nil {
			p.add(field, "set json or body, not both")
		}
		switch s.Auth {
		case "", "none", "credential":
		default:
			p.add(field+".auth", "must be credential or none")
		}
		c.headers = tmplMap("headers", s.Headers)
		c.query = tmplMap("query", s.Query)
		c.json = tmpl("json", s.JSON)
		c.body = tmpl("body", s.Body)
	case StepEmit:
		if strings.TrimSpace(s.Event) == "" {
			p.add(field+".event", "is required")
		}
		c.payload = tmpl("payload", s.Payload)
		if s.User != "" {
			c.user = tmpl("user", s.User)
		}
	case StepResponse:
		status := s.Status
		if status == nil {
			status = 200
		}
		if n, ok := asNumber(status); ok && (n < 200 || n > 599) {
			p.add(field+".status", "must be an HTTP status a response can have (200-599)")
		}
		for k := range s.Headers {
			if FramingHeader(k) {
				p.add(field+".headers."+k, "is set by the server itself")
			}
		}
		c.status = tmpl("status", status)
		if s.JSON != nil && s.Body != nil {
			p.add(field, "set json or body, not both")
		}
		c.headers = tmplMap("headers", s.Headers)
		c.json = tmpl("json", s.JSON)
		c.body = tmpl("body", s.Body)
	case StepFunction:
		if !ValidID(s.Function) {
			p.add(field+".function", "must name a function ([a-z0-9][a-z0-9_-]*)")
		}
		c.input = tmpl("input", s.Input)
	case "":
		p.add(field+".type", "is required")
	default:
		p.add(field+".type", "unknown step type %q (supported: http, emit, response, function)", s.Type)
	}
	s.c = c
}

func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// Compile validates the declaration and compiles its schema.
func (e *AppEvent) Compile() error {
	var p Problems
	if !ValidID(e.Project) {
		p.add("project", "must match [a-z0-9][a-z0-9_-]*")
	}
	if strings.TrimSpace(e.Name) == "" {
		p.add("name", "is required")
	} else if len(e.Name) > 200 {
		p.add("name", "must be at most 200 characters")
	}
	if e.Schema != nil {
		s, err := compileSchema(e.Schema)
		if err != nil {
			p.add("schema", "%v", err)
		}
		e.schema = s
	}
	return p.err()
}

// noLoader refuses every URL a schema refers to. An app event's schema is
// one document: a $ref outside it would make the server read a file
// ("file:///etc/shadow") or call the network while compiling, so it is an
// apply-time error instead.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("$ref %q points outside the schema: only references within the document (#/…) are allowed", url)
}

func compileSchema(doc map[string]any) (*jsonschema.Schema, error) {
	// Round-trip through JSON so the compiler sees the types it expects
	// (float64 numbers), whatever decoder produced doc.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	if err := c.AddResource("mem://event.json", v); err != nil {
		return nil, err
	}
	return c.Compile("mem://event.json")
}

// ValidatePayload checks payload (raw JSON) against the event's schema, if
// it has one, and returns the violations.
func (e *AppEvent) ValidatePayload(payload []byte) Problems {
	if e.schema == nil {
		return nil
	}
	var v any
	if len(payload) == 0 {
		payload = []byte("null")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return Problems{{Field: "payload", Message: "is not valid JSON"}}
	}
	if err := e.schema.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return schemaProblems(ve)
		}
		return Problems{{Field: "payload", Message: err.Error()}}
	}
	return nil
}

// schemaPrinter renders schema violations; jsonschema formats every message
// through a printer, and a nil one panics.
var schemaPrinter = message.NewPrinter(language.English)

func schemaProblems(ve *jsonschema.ValidationError) Problems {
	var out Problems
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			field := "payload"
			for _, t := range e.InstanceLocation {
				field += "." + t
			}
			out = append(out, Problem{Field: field, Message: e.ErrorKind.LocalizedString(schemaPrinter)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

// Compile validates an integration document and compiles its manifest,
// over the built-in manifest of the same id when there is one.
func (in *Integration) Compile() error {
	var p Problems
	if in.Kind != "" && in.Kind != KindIntegration {
		p.add("kind", "must be %s", KindIntegration)
	}
	if !ValidID(in.Project) {
		p.add("project", "must match [a-z0-9][a-z0-9_-]*")
	}
	if !ValidID(in.ID) {
		p.add("id", "must match [a-z0-9][a-z0-9_-]*")
	}
	eff := &in.Manifest
	if base, ok := manifest.Builtin(in.ID); ok {
		eff = in.Manifest.Extend(base)
	}
	for _, mp := range eff.Compile() {
		p = append(p, Problem{Field: mp.Field, Message: mp.Message})
	}
	in.eff = eff
	return p.err()
}

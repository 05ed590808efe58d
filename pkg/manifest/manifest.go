// Package manifest is an integration's declarative description (design §6):
// how its credentials authenticate outbound calls, how its webhooks are
// verified and answered, where a delivery names its tenant, event type and
// event id, how a batch splits into events, which trigger events it offers
// with which parameters, and which settings a connected user fills in.
//
// Providers are data, not code: the receiver has one webhook route and reads
// everything provider-specific from a Manifest. Built-in manifests are YAML
// files embedded in the binary (builtin/*.yaml, see Builtin); a project's
// own `kind: Integration` documents are manifests too, and one with a
// built-in's id extends it (Extend).
//
// A Manifest is compiled once (Compile), when applied and when loaded from
// the catalog: the verification spec becomes a verify.SpecVerifier, the
// expressions are compiled with pkg/template's bounds, and the rule that an
// event type or tenant never comes from an unsigned header or query is
// checked then, so a manifest that breaks it is an apply-time error.
// A compiled Manifest is immutable and safe for concurrent use.
package manifest

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/switchboard-hq/switchboard/pkg/template"
	"github.com/switchboard-hq/switchboard/pkg/verify"
)

// Variables the routing expressions (accountId, eventType, eventId, split)
// see, all computed from the delivery after it was verified.
const (
	// VarBody is the parsed body: a JSON value, the form parameters of a
	// form-encoded body (name → first value), or the raw text.
	VarBody = "body"
	// VarHeaders maps lower-cased header names to their first value.
	VarHeaders = "headers"
	// VarQuery maps query parameter names to their first value.
	VarQuery = "query"
	// VarItem is the event being built: one element of split, or the body.
	VarItem = "item"
)

// Variables a trigger event's match expression sees.
const (
	VarEvent  = "event"
	VarParams = "params"
)

// UnknownEvent is the event type of an item whose eventType expression
// failed or gave nothing: it is still published (a verified delivery is
// never dropped), and no workflow listens to it.
const UnknownEvent = "unrecognized"

// DefaultDedupeTTL is how long a provider event id is remembered: longer
// than the longest common retry schedule (Stripe, three days).
const DefaultDedupeTTL = 72 * time.Hour

// MaxDedupeTTL bounds webhook.dedupeTTL.
const MaxDedupeTTL = 30 * 24 * time.Hour

// Limits of one manifest.
const (
	MaxTriggers = 200
	MaxSettings = 100
	MaxParams   = 20
)

// Manifest is one integration.
type Manifest struct {
	ID       string   `json:"id" yaml:"id"`
	Name     string   `json:"name,omitempty" yaml:"name,omitempty"`
	Auth     Auth     `json:"auth,omitzero" yaml:"auth,omitempty"`
	Webhook  *Webhook `json:"webhook,omitempty" yaml:"webhook,omitempty"`
	Triggers []Event  `json:"triggers,omitempty" yaml:"triggers,omitempty"`
	Settings []Field  `json:"settings,omitempty" yaml:"settings,omitempty"`
	// OAuth, when set, lets users connect with OAuth 2.0 (oauth.go).
	OAuth *OAuth `json:"oauth,omitempty" yaml:"oauth,omitempty"`
	// Subscription, when set, creates webhooks per credential through the provider's API (subscription.go).
	Subscription *Subscription `json:"subscription,omitempty" yaml:"subscription,omitempty"`
	// Resource marks an API Resource (design §2.6): the customer's own API,
	// whose users connect through POST /projects/{p}/sdk/resources/{id}/connect
	// and whose webhooks are API_RESOURCE triggers — verified, routed and
	// deduplicated like an integration's.
	Resource bool `json:"resource,omitempty" yaml:"resource,omitempty"`
	// ResourceSpec: a resource's credential level (resource.go).
	ResourceSpec
	// Polling, for a provider without webhooks, polls its list API per credential (polling.go).
	Polling []Poll `json:"polling,omitempty" yaml:"polling,omitempty"`
}

// Auth says how an http step with `auth: credential` applies a credential's
// secret.
type Auth struct {
	// Type is bearer (secret.accessToken, also an OAuth2 access token),
	// api_key (secret.apiKey in Header, default X-API-Key), basic
	// (secret.username/password) or none.
	Type   string `json:"type,omitempty" yaml:"type,omitempty"`
	Header string `json:"header,omitempty" yaml:"header,omitempty"`
}

// Webhook is how an integration's deliveries are verified, answered and
// turned into trigger events.
type Webhook struct {
	// Verification is a pkg/verify spec: a preset or a generic scheme.
	Verification *verify.Spec `json:"verification,omitempty" yaml:"verification,omitempty"`
	// Handshake, when set, replaces the verification spec's (or preset's).
	Handshake *verify.HandshakeSpec `json:"handshake,omitempty" yaml:"handshake,omitempty"`
	// Methods a delivery may use (default POST); a handshake may use any.
	Methods []string `json:"methods,omitempty" yaml:"methods,omitempty"`
	// AccountID is the provider account id (tenant) of an item, for
	// app-level routing. Empty: the integration routes by per-credential
	// URLs only.
	AccountID string `json:"accountId,omitempty" yaml:"accountId,omitempty"`
	// ResourceRouting: a resource's userId (resource.go).
	ResourceRouting
	// EventType is the provider event type of an item (required).
	EventType string `json:"eventType,omitempty" yaml:"eventType,omitempty"`
	// EventID is the provider's id of an item, the dedupe key. Empty (or
	// empty at run time): the SHA-256 of the item.
	EventID string `json:"eventId,omitempty" yaml:"eventId,omitempty"`
	// Split turns one delivery into several events: an expression giving a
	// list (HubSpot's array body: "body"; Graph: "body.value").
	Split string `json:"split,omitempty" yaml:"split,omitempty"`
	// DedupeTTL is how long an event id is remembered (default 72h).
	DedupeTTL verify.Duration `json:"dedupeTTL,omitempty" yaml:"dedupeTTL,omitempty"`
	// Response is what the provider gets once the events are stored.
	Response *Response `json:"response,omitempty" yaml:"response,omitempty"`

	c compiled
}

// Response is a provider's expected answer to an accepted delivery.
type Response struct {
	Status      int    `json:"status,omitempty" yaml:"status,omitempty"`
	ContentType string `json:"contentType,omitempty" yaml:"contentType,omitempty"`
	Body        string `json:"body,omitempty" yaml:"body,omitempty"`
}

// Event is one trigger event an integration offers to workflows.
type Event struct {
	// Event is the name workflows use (`trigger.event`), by default the
	// provider event type it matches.
	Event string `json:"event" yaml:"event"`
	Title string `json:"title,omitempty" yaml:"title,omitempty"`
	// Type is the provider event type this event stands for when it is
	// not Event itself (Salesforce-style record_created for
	// "record.created"), or a glob ending in "*".
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// Params a workflow's trigger sets (`trigger.params`).
	Params []Field `json:"params,omitempty" yaml:"params,omitempty"`
	// Match, when set, is an expression over event (type, id, accountId,
	// payload) and params that must hold for the workflow to run: how a
	// parameter such as recordType narrows the event.
	Match string `json:"match,omitempty" yaml:"match,omitempty"`

	match *template.Expr
}

// Field is a parameter of a trigger event or a user setting.
type Field struct {
	Key      string `json:"key" yaml:"key"`
	Title    string `json:"title,omitempty" yaml:"title,omitempty"`
	Type     string `json:"type,omitempty" yaml:"type,omitempty"`
	Required bool   `json:"required,omitempty" yaml:"required,omitempty"`
	Default  any    `json:"default,omitempty" yaml:"default,omitempty"`
}

type compiled struct {
	verifier  *verify.SpecVerifier
	verifyErr error
	accountID *template.Expr
	eventType *template.Expr
	eventID   *template.Expr
	split     *template.Expr
	methods   []string
	fast      routingExprs // fastexpr.go
}

// Problem is one validation error, with the field path inside the manifest.
type Problem struct {
	Field   string
	Message string
}

// Problems lists every error of one manifest.
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

var keyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// Compile validates m and compiles its verifier and expressions; the
// returned Problems list every error found. Compile is idempotent.
func (m *Manifest) Compile() Problems {
	var p Problems
	switch m.Auth.Type {
	case "", "none", "bearer", "api_key", "basic":
	default:
		p.add("auth.type", "unsupported auth type %q (supported: bearer, api_key, basic, none)", m.Auth.Type)
	}
	if m.Webhook != nil {
		m.Webhook.compile(&p)
	}
	compileResource(m, &p)
	if m.Webhook != nil {
		m.Webhook.compileFast()
	}
	if len(m.Triggers) > MaxTriggers {
		p.add("triggers", "at most %d trigger events", MaxTriggers)
	}
	seen := map[string]bool{}
	for i := range m.Triggers {
		t := &m.Triggers[i]
		f := fmt.Sprintf("triggers[%d]", i)
		if strings.TrimSpace(t.Event) == "" || len(t.Event) > 200 {
			p.add(f+".event", "is required (at most 200 characters)")
		} else if seen[t.Event] {
			p.add(f+".event", "duplicate event %q", t.Event)
		}
		seen[t.Event] = true
		compileFields(f+".params", t.Params, MaxParams, &p)
		t.match = nil
		if t.Match != "" {
			e, err := template.CompileExprEnv(t.Match, VarEvent, VarParams)
			if err != nil {
				p.add(f+".match", "%v", err)
			}
			t.match = e
		}
	}
	compileFields("settings", m.Settings, MaxSettings, &p)
	if m.OAuth != nil {
		m.OAuth.compile(&p)
	}
	compilePolling(m, &p)
	if m.Subscription != nil {
		m.Subscription.compile(m, &p)
	}
	return p
}

func compileFields(field string, fs []Field, limit int, p *Problems) {
	if len(fs) > limit {
		p.add(field, "at most %d entries", limit)
	}
	seen := map[string]bool{}
	for i, f := range fs {
		path := fmt.Sprintf("%s[%d]", field, i)
		if !keyPattern.MatchString(f.Key) {
			p.add(path+".key", "must be an identifier ([A-Za-z_][A-Za-z0-9_.-]*)")
		} else if seen[f.Key] {
			p.add(path+".key", "duplicate key %q", f.Key)
		}
		seen[f.Key] = true
		switch f.Type {
		case "", "string", "number", "boolean", "object", "array":
		default:
			p.add(path+".type", "must be one of string, number, boolean, object, array")
		}
	}
}

func (w *Webhook) compile(p *Problems) {
	w.c = compiled{}
	if w.Verification == nil {
		p.add("webhook.verification", "is required: a webhook is never accepted unverified")
		return
	}
	spec := *w.Verification
	if w.Handshake != nil {
		spec.Handshake = w.Handshake
	}
	v, err := verify.New(spec, verify.Options{})
	switch {
	case err != nil && verify.CodeOf(err) == verify.ErrUnknownScheme:
		// Refused at apply: a manifest that could only ever fail closed
		// is a mistake to report now, not 503s later.
		p.add("webhook.verification", "%v", err)
	case err != nil:
		p.add("webhook.verification", "%v", err)
	}
	w.c.verifier, w.c.verifyErr = v, err

	for i, m := range w.Methods {
		switch u := strings.ToUpper(m); u {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			w.c.methods = append(w.c.methods, u)
		default:
			p.add(fmt.Sprintf("webhook.methods[%d]", i), "unsupported method %q", m)
		}
	}
	if len(w.c.methods) == 0 {
		w.c.methods = []string{http.MethodPost}
	}
	if d := time.Duration(w.DedupeTTL); d < 0 || d > MaxDedupeTTL {
		p.add("webhook.dedupeTTL", "must be between 0 and %s", MaxDedupeTTL)
	}
	if r := w.Response; r != nil {
		if r.Status != 0 && (r.Status < 200 || r.Status > 299) {
			p.add("webhook.response.status", "must be a 2xx status: anything else makes the provider retry")
		}
		if len(r.Body) > 4096 {
			p.add("webhook.response.body", "at most 4096 bytes")
		}
	}

	var signed signedInputs
	if v != nil {
		signed = signedBy(v)
	}
	expr := func(field, src string, required bool, guard bool) *template.Expr {
		if strings.TrimSpace(src) == "" {
			if required {
				p.add(field, "is required")
			}
			return nil
		}
		e, err := template.CompileExprEnv(src, VarBody, VarHeaders, VarQuery, VarItem)
		if err != nil {
			p.add(field, "%v", err)
			return nil
		}
		if guard && v != nil {
			if msg := signed.check(src); msg != "" {
				p.add(field, "%s", msg)
			}
		}
		return e
	}
	// The event type and the tenant decide what runs for whom, and the
	// event id is the only replay defence of a source without a timestamp:
	// none of them may come from a part of the request the signature does
	// not cover, or anyone holding one captured delivery could re-route
	// or replay it by changing a header.
	w.c.eventType = expr("webhook.eventType", w.EventType, true, true)
	w.c.accountID = expr("webhook.accountId", w.AccountID, false, true)
	w.c.eventID = expr("webhook.eventId", w.EventID, false, true)
	w.c.split = expr("webhook.split", w.Split, false, true)
}

// signedInputs is what a verification spec's signature covers beyond the
// body.
type signedInputs struct {
	// authOnly: the scheme authenticates the sender with a shared token or
	// credential (token, basic, bearer, jwt) and signs no content, so the
	// request's headers are exactly as trustworthy as its body.
	authOnly bool
	headers  map[string]bool // lower-cased names inside the content
	url      bool            // the URL, so the query, is signed
}

// signedBy reads what the verifier's signature covers (verify.Coverage,
// from the compiled content template). A scheme that covers nothing of the
// request (token, basic, bearer, jwt) authenticates the sender only: then
// its headers are as trustworthy as its body.
func signedBy(v *verify.SpecVerifier) signedInputs {
	c := v.Coverage()
	out := signedInputs{headers: map[string]bool{}, url: c.URL}
	if !c.Body && !c.URL && !c.Method && len(c.Header) == 0 {
		out.authOnly = true
		return out
	}
	for _, h := range c.Header {
		out.headers[strings.ToLower(h)] = true
	}
	return out
}

// check returns why src reads an input the signature does not cover, or "".
func (s signedInputs) check(src string) string {
	if s.authOnly {
		return ""
	}
	tree, err := parser.Parse(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(src), "{{"), "}}"))
	if err != nil {
		return "" // compile already reported it
	}
	u := &usage{}
	ast.Walk(&tree.Node, u)
	for _, h := range u.headers {
		if !s.headers[strings.ToLower(h)] {
			return fmt.Sprintf("reads header %q, which this source's signature does not cover (it signs the body): a header is only a hint here, take the value from the body", h)
		}
	}
	if u.whole() > 0 {
		return "uses the headers map as a whole, but this source signs only part of the request: name each signed header (headers[\"name\"])"
	}
	if u.query && !s.url {
		return "reads the query, which this source's signature does not cover: take the value from the body"
	}
	return ""
}

// usage collects which headers and whether the query an expression reads.
type usage struct {
	headers []string // names read as headers["x"] or headers.x
	members int      // member accesses on the headers identifier
	dynamic int      // headers[expr]: any header
	idents  int      // every use of the headers identifier
	query   bool
}

func (u *usage) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == VarHeaders {
			u.members++
			if s, ok := n.Property.(*ast.StringNode); ok {
				u.headers = append(u.headers, s.Value)
			} else {
				u.dynamic++
			}
		}
	case *ast.IdentifierNode:
		switch n.Value {
		case VarHeaders:
			u.idents++
		case VarQuery:
			u.query = true
		}
	}
}

// whole counts uses of headers that are not a named member access.
func (u *usage) whole() int { return u.dynamic + u.idents - u.members }

// Methods are the methods a delivery may use.
func (w *Webhook) AllowsMethod(method string) bool { return slices.Contains(w.c.methods, method) }

// Verifier is the compiled verification; err is why the source must fail
// closed (an unknown preset or scheme in a document stored before this
// build knew better).
func (w *Webhook) Verifier() (*verify.SpecVerifier, error) {
	if w.c.verifier == nil && w.c.verifyErr == nil {
		return nil, &verify.Error{Code: verify.ErrUnknownScheme, Message: "the webhook has no verification"}
	}
	return w.c.verifier, w.c.verifyErr
}

// TTL is how long event ids are remembered.
func (w *Webhook) TTL() time.Duration {
	if w.DedupeTTL <= 0 {
		return DefaultDedupeTTL
	}
	return time.Duration(w.DedupeTTL)
}

// Routed reports whether deliveries name their tenant (app-level routing
// is possible).
func (w *Webhook) Routed() bool { return w.c.accountID != nil }

// Trigger returns the trigger event named event.
func (m *Manifest) Trigger(event string) (*Event, bool) {
	for i := range m.Triggers {
		if m.Triggers[i].Event == event {
			return &m.Triggers[i], true
		}
	}
	return nil, false
}

// Matches reports whether a provider event of type typ is this trigger
// event (its Type, a "prefix*" glob, or its Event name).
func (e *Event) Matches(typ string) bool {
	want := e.Type
	if want == "" {
		want = e.Event
	}
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(typ, p)
	}
	return typ == want
}

// MatchExpr is the compiled match expression, nil when there is none.
func (e *Event) MatchExpr() *template.Expr { return e.match }

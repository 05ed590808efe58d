package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// Subscription is how an integration whose webhooks are created per user
// through the provider's API (Asana's POST /webhooks, Stripe's
// webhook_endpoints) subscribes a connected credential: the requests that
// create and delete one, templated over the credential, the trigger event
// and the URL the provider is to call. The connection lifecycle sends them
// when the first workflow needing a trigger is enabled for a credential and
// when the last one is disabled or the credential removed.
//
// Templates (`{{ … }}`, pkg/template) see:
//
//	credential.id, credential.accessToken, credential.providerAccountId,
//	credential.settings, credential.subscriptionId (delete only)
//	trigger.event (the manifest's trigger event), trigger.type (the
//	provider event type it stands for), trigger.callbackUrl
//	user.id
type Subscription struct {
	// Per is what one subscription serves: "trigger" (default) — one per
	// (credential, trigger event), the provider filtering by event type —
	// or "credential" — one per credential for all its trigger events
	// (Asana: a per-credential URL holds one handshake secret).
	Per string `json:"per,omitempty" yaml:"per,omitempty"`
	// Callback is the URL the provider is given: "credential" (default),
	// the credential's own webhook URL, or "app", the integration's
	// app-level URL (which needs webhook.accountId to route).
	Callback string `json:"callback,omitempty" yaml:"callback,omitempty"`
	// BaseURL, when set, is what relative request URLs are resolved
	// against; a project manifest extending a built-in overrides just it
	// (a sandbox, the fake provider).
	BaseURL string               `json:"baseUrl,omitempty" yaml:"baseUrl,omitempty"`
	Create  *SubscriptionRequest `json:"create,omitempty" yaml:"create,omitempty"`
	Delete  *SubscriptionRequest `json:"delete,omitempty" yaml:"delete,omitempty"`
}

// SubscriptionRequest is one templated HTTP request.
type SubscriptionRequest struct {
	// Method, default POST for create and DELETE for delete.
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// URL, absolute or relative to baseUrl.
	URL     string            `json:"url" yaml:"url"`
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	// Body is a JSON body (any JSON value, templated leaf by leaf).
	Body any `json:"body,omitempty" yaml:"body,omitempty"`
	// Form is a form-encoded body (Stripe): a value that is a list sends
	// the key once per element.
	Form map[string]any `json:"form,omitempty" yaml:"form,omitempty"`
	// ID (create only, required) is an expression over the answer (body,
	// headers) giving the provider's subscription id.
	ID string `json:"id,omitempty" yaml:"id,omitempty"`
	// Secret (create only) is an expression giving the signing secret the
	// provider returns for the subscription (Stripe's whsec_…), if any.
	Secret string `json:"secret,omitempty" yaml:"secret,omitempty"`

	c subCompiled
}

type subCompiled struct {
	method  string
	url     *template.Template
	headers map[string]*template.Template
	body    *template.Template
	form    *template.Template
	id      *template.Expr
	secret  *template.Expr
}

// Subscription values of Per and Callback.
const (
	SubscribePerTrigger    = "trigger"
	SubscribePerCredential = "credential"
	CallbackCredential     = "credential"
	CallbackApp            = "app"
)

// Limits of a subscription section.
const (
	MaxSubscriptionHeaders = 20
	maxSubscriptionText    = 8 << 10
	// MaxSubscriptionAnswer bounds the create answer read from a provider.
	MaxSubscriptionAnswer = 256 << 10
)

var headerName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,100}$`)

func (s *Subscription) compile(m *Manifest, p *Problems) {
	switch s.Per {
	case "", SubscribePerTrigger, SubscribePerCredential:
	default:
		p.add("subscription.per", "must be trigger or credential")
	}
	switch s.Callback {
	case "", CallbackCredential:
	case CallbackApp:
		if m.Webhook == nil || strings.TrimSpace(m.Webhook.AccountID) == "" {
			p.add("subscription.callback", "app needs webhook.accountId: the app-level URL routes deliveries by the account they name")
		}
	default:
		p.add("subscription.callback", "must be credential or app")
	}
	if m.Webhook == nil {
		p.add("subscription", "needs a webhook section: the deliveries a subscription asks for are verified and routed by it")
	}
	if s.BaseURL != "" {
		if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(s.BaseURL) > 2048 {
			p.add("subscription.baseUrl", "must be an absolute http(s) URL")
		}
	}
	if s.Create == nil {
		p.add("subscription.create", "is required")
	} else {
		s.Create.compile("subscription.create", http.MethodPost, s.BaseURL != "", true, p)
	}
	if s.Delete == nil {
		p.add("subscription.delete", "is required: a subscription that cannot be removed outlives the connection")
	} else {
		s.Delete.compile("subscription.delete", http.MethodDelete, s.BaseURL != "", false, p)
	}
}

func (r *SubscriptionRequest) compile(field, method string, hasBase, create bool, p *Problems) {
	r.c = subCompiled{method: method}
	if r.Method != "" {
		switch u := strings.ToUpper(r.Method); u {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			r.c.method = u
		default:
			p.add(field+".method", "unsupported method %q", r.Method)
		}
	}
	tmpl := func(f string, v any) *template.Template {
		t, err := template.Compile(v)
		if err != nil {
			p.add(f, "%v", err)
			return nil
		}
		return t
	}
	switch u := strings.TrimSpace(r.URL); {
	case u == "":
		p.add(field+".url", "is required")
	case len(u) > maxSubscriptionText:
		p.add(field+".url", "at most %d bytes", maxSubscriptionText)
	case strings.HasPrefix(u, "/"):
		if !hasBase {
			p.add(field+".url", "is relative: set subscription.baseUrl or give an absolute URL")
		}
		r.c.url = tmpl(field+".url", u)
	case strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://"):
		r.c.url = tmpl(field+".url", u)
	default:
		p.add(field+".url", "must be an absolute http(s) URL or a path (starting with /) under subscription.baseUrl")
	}
	if len(r.Headers) > MaxSubscriptionHeaders {
		p.add(field+".headers", "at most %d headers", MaxSubscriptionHeaders)
	}
	r.c.headers = map[string]*template.Template{}
	for _, k := range sortedKeys(r.Headers) {
		v := r.Headers[k]
		switch {
		case !headerName.MatchString(k):
			p.add(field+".headers."+k, "is not a valid header name")
		case len(v) > maxSubscriptionText:
			p.add(field+".headers."+k, "at most %d bytes", maxSubscriptionText)
		default:
			r.c.headers[k] = tmpl(field+".headers."+k, v)
		}
	}
	if r.Body != nil && r.Form != nil {
		p.add(field+".form", "a request has a JSON body or a form, not both")
	}
	if r.Body != nil {
		r.c.body = tmpl(field+".body", r.Body)
	}
	if r.Form != nil {
		for _, k := range sortedKeys(r.Form) {
			switch v := r.Form[k].(type) {
			case string, float64, bool:
			case []any:
				for _, e := range v {
					if _, ok := e.(string); !ok {
						p.add(field+".form."+k, "a list holds strings only")
						break
					}
				}
			default:
				p.add(field+".form."+k, "must be a string or a list of strings")
			}
		}
		r.c.form = tmpl(field+".form", r.Form)
	}
	expr := func(f, src string, required bool) *template.Expr {
		if strings.TrimSpace(src) == "" {
			if required {
				p.add(f, "is required: an expression over the answer (body, headers) giving the provider's subscription id")
			}
			return nil
		}
		e, err := template.CompileExprEnv(src, VarBody, VarHeaders)
		if err != nil {
			p.add(f, "%v", err)
		}
		return e
	}
	if create {
		r.c.id = expr(field+".id", r.ID, true)
		r.c.secret = expr(field+".secret", r.Secret, false)
	} else {
		if r.ID != "" {
			p.add(field+".id", "is read from the create answer only")
		}
		if r.Secret != "" {
			p.add(field+".secret", "is read from the create answer only")
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PerCredential reports whether one subscription serves every trigger
// event of a credential.
func (s *Subscription) PerCredential() bool { return s.Per == SubscribePerCredential }

// AppCallback reports whether the provider is given the app-level URL.
func (s *Subscription) AppCallback() bool { return s.Callback == CallbackApp }

// SubscriptionVars are what a subscription request's templates see.
type SubscriptionVars struct {
	CredentialID, AccessToken, ProviderAccountID string
	Settings                                     map[string]any
	User                                         string
	// Event is the trigger event ("" for a per-credential subscription),
	// EventType the provider event type it stands for.
	Event, EventType string
	CallbackURL      string
	// SubscriptionID is the provider's id (delete).
	SubscriptionID string
}

func (v SubscriptionVars) env() map[string]any {
	settings := v.Settings
	if settings == nil {
		settings = map[string]any{}
	}
	return map[string]any{
		"credential": map[string]any{"id": v.CredentialID, "accessToken": v.AccessToken, "providerAccountId": v.ProviderAccountID,
			"settings": settings, "subscriptionId": v.SubscriptionID},
		"trigger": map[string]any{"event": v.Event, "type": v.EventType, "callbackUrl": v.CallbackURL},
		"user":    map[string]any{"id": v.User},
	}
}

// CreateRequest renders the create request.
func (s *Subscription) CreateRequest(ctx context.Context, v SubscriptionVars) (*http.Request, error) {
	return s.Create.request(ctx, s.BaseURL, v)
}

// DeleteRequest renders the delete request.
func (s *Subscription) DeleteRequest(ctx context.Context, v SubscriptionVars) (*http.Request, error) {
	return s.Delete.request(ctx, s.BaseURL, v)
}

func (r *SubscriptionRequest) request(ctx context.Context, base string, v SubscriptionVars) (*http.Request, error) {
	if r == nil || r.c.url == nil {
		return nil, fmt.Errorf("manifest: subscription request not compiled")
	}
	env := v.env()
	u, err := r.c.url.EvalString(env)
	if err != nil {
		return nil, fmt.Errorf("subscription url: %w", err)
	}
	if strings.HasPrefix(u, "/") {
		u = strings.TrimRight(base, "/") + u
	}
	var body io.Reader
	ctype := ""
	switch {
	case r.c.body != nil:
		b, err := r.c.body.Eval(env)
		if err != nil {
			return nil, fmt.Errorf("subscription body: %w", err)
		}
		js, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("subscription body: %w", err)
		}
		body, ctype = bytes.NewReader(js), "application/json"
	case r.c.form != nil:
		f, err := r.c.form.Eval(env)
		if err != nil {
			return nil, fmt.Errorf("subscription form: %w", err)
		}
		vals := url.Values{}
		m, _ := f.(map[string]any)
		for _, k := range sortedKeys(m) {
			switch x := m[k].(type) {
			case []any:
				for _, e := range x {
					vals.Add(k, template.Format(e))
				}
			default:
				vals.Set(k, template.Format(x))
			}
		}
		body, ctype = strings.NewReader(vals.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, r.c.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("subscription request: %w", err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("subscription request: %q is not an http(s) URL", u)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	for k, t := range r.c.headers {
		h, err := t.EvalString(env)
		if err != nil {
			return nil, fmt.Errorf("subscription header %s: %w", k, err)
		}
		req.Header.Set(k, h)
	}
	return req, nil
}

// Created reads the provider's subscription id and secret from a create
// answer (its body at most MaxSubscriptionAnswer bytes).
func (s *Subscription) Created(header http.Header, contentType string, body []byte) (id, secret string, err error) {
	parsed, _ := parseBody(contentType, body)
	env := map[string]any{VarBody: parsed, VarHeaders: firstValues(header, true)}
	c := s.Create.c
	v, err := c.id.Eval(env)
	if err != nil {
		return "", "", fmt.Errorf("subscription id: %w", err)
	}
	if id = template.Format(v); id == "" || len(id) > 1024 {
		return "", "", fmt.Errorf("subscription id: the answer has none (create.id %q gave %q)", s.Create.ID, truncate(id, 64))
	}
	if c.secret != nil {
		v, err := c.secret.Eval(env)
		if err != nil {
			return "", "", fmt.Errorf("subscription secret: %w", err)
		}
		if secret = template.Format(v); len(secret) > 4096 {
			return "", "", fmt.Errorf("subscription secret: longer than 4096 bytes")
		}
	}
	return id, secret, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// extend returns s with what it leaves out taken from base.
func (s *Subscription) extend(base *Subscription) *Subscription {
	switch {
	case s == nil && base == nil:
		return nil
	case s == nil:
		cp := *base
		return &cp
	case base == nil:
		cp := *s
		return &cp
	}
	out := *s
	if out.Per == "" {
		out.Per = base.Per
	}
	if out.Callback == "" {
		out.Callback = base.Callback
	}
	if out.BaseURL == "" {
		out.BaseURL = base.BaseURL
	}
	if out.Create == nil && base.Create != nil {
		c := *base.Create
		out.Create = &c
	}
	if out.Delete == nil && base.Delete != nil {
		d := *base.Delete
		out.Delete = &d
	}
	return &out
}

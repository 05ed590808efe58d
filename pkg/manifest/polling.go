package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/template"
	"github.com/switchboard-hq/switchboard/pkg/verify"
)

// Polling triggers (design §2.3): for a provider without webhooks, the
// connection-lifecycle role asks the provider's list API for new records,
// per credential and trigger event, once an interval. A Poll says how:
//
//	polling:
//	  - event: contact.updated           # one of the manifest's triggers
//	    interval: 1m                     # default DefaultPollInterval
//	    request:                         # templated: credential, cursor, poll
//	      url: "{{ credential.settings.instanceUrl }}/services/data/v60.0/query"
//	      query: {q: "SELECT … WHERE LastModifiedDate > {{ cursor }} ORDER BY LastModifiedDate"}
//	    items: body.records              # the records of one answer
//	    recordId: item.Id + "@" + item.LastModifiedDate
//	    cursor: "len(body.records) > 0 ? last(body.records).LastModifiedDate : cursor"
//	    initialCursor: poll.now          # the first poll's cursor: no backfill
//
// The cursor is the only state a poll keeps (per credential and event);
// records are deduplicated by recordId, so an id that carries the record's
// version (its modification time) makes an update a new event while a
// re-poll of the same version is absorbed. A cursor that is inclusive
// (>=, on_or_after) is safe for that reason: the records at the boundary
// come back and are dropped as duplicates.

// Variables a polling expression sees.
const (
	// VarCredential is the polled credential: id, user, integration,
	// providerAccountId, settings (never its secret: auth is applied from
	// the manifest's auth section).
	VarCredential = "credential"
	// VarCursor is the cursor the poll starts from ("" before the first).
	VarCursor = "cursor"
	// VarPoll is the poll itself: now (RFC 3339, UTC), event, interval
	// (seconds).
	VarPoll = "poll"
)

// Polling defaults and limits: one place for every bound of a poll.
const (
	DefaultPollInterval = time.Minute
	MinPollInterval     = time.Second
	MaxPollInterval     = 24 * time.Hour
	// MaxPollResponseBytes bounds one answer's body read: a bigger page
	// is refused as a whole (recorded, cursor kept), never half-read.
	MaxPollResponseBytes = 4 << 20
	// MaxPollItems bounds the records of one answer.
	MaxPollItems = 1000
	// MaxPollPages bounds the requests of one poll when `more` holds.
	MaxPollPages = 10
	// MaxCursorLen bounds a stored cursor.
	MaxCursorLen = 4096
	// MaxRecordIDLen bounds a record id (it becomes a dedupe key).
	MaxRecordIDLen = 1024
	maxPolls       = 50
)

// Poll is how one trigger event is polled.
type Poll struct {
	// Event names the trigger event (triggers[].event) this poll feeds.
	Event string `json:"event" yaml:"event"`
	// Interval between two polls of one credential (default 1m).
	Interval verify.Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	// Request is the list call.
	Request PollRequest `json:"request" yaml:"request"`
	// Start, when set, is called once before the first poll; its answer
	// is InitialCursor's body (Google Drive's changes/startPageToken).
	Start *PollRequest `json:"start,omitempty" yaml:"start,omitempty"`
	// InitialCursor is the cursor of the first poll (over body of Start's
	// answer, poll, credential); empty: "".
	InitialCursor string `json:"initialCursor,omitempty" yaml:"initialCursor,omitempty"`
	// Items selects the records of an answer (over body, headers, cursor,
	// poll, credential); it must give a list.
	Items string `json:"items" yaml:"items"`
	// RecordID is a record's id (over item and the answer's variables):
	// the dedupe key.
	RecordID string `json:"recordId" yaml:"recordId"`
	// Cursor is the next cursor (over body, headers, cursor, poll,
	// credential); nil or "" keeps the current one.
	Cursor string `json:"cursor,omitempty" yaml:"cursor,omitempty"`
	// More, when it holds for an answer, makes the poll ask again at once
	// with the new cursor (a next page), up to MaxPollPages requests.
	More string `json:"more,omitempty" yaml:"more,omitempty"`

	c pollCompiled
}

// PollRequest is a templated HTTP request: every string may hold
// `{{ expr }}` over credential, cursor and poll.
type PollRequest struct {
	Method  string            `json:"method,omitempty" yaml:"method,omitempty"`
	URL     string            `json:"url" yaml:"url"`
	Query   map[string]string `json:"query,omitempty" yaml:"query,omitempty"`
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	// Body is a JSON value sent as application/json; a string that is
	// one whole `{{ expr }}` keeps the expression's type.
	Body any `json:"body,omitempty" yaml:"body,omitempty"`

	c reqCompiled
}

type pollCompiled struct {
	initial, items, recordID, cursor, more *template.Expr
}

type reqCompiled struct {
	method  string
	url     *ptext
	query   []kv
	headers []kv
	body    pnode
}

type kv struct {
	k string
	v *ptext
}

var (
	requestVars  = []string{VarCredential, VarCursor, VarPoll}
	responseVars = []string{VarBody, VarHeaders, VarCursor, VarPoll, VarCredential}
	itemVars     = []string{VarItem, VarBody, VarHeaders, VarCursor, VarPoll, VarCredential}
	startVars    = []string{VarBody, VarPoll, VarCredential}
)

func compilePolling(m *Manifest, p *Problems) {
	if len(m.Polling) > maxPolls {
		p.add("polling", "at most %d polls", maxPolls)
	}
	seen := map[string]bool{}
	for i := range m.Polling {
		q := &m.Polling[i]
		f := fmt.Sprintf("polling[%d]", i)
		q.c = pollCompiled{}
		switch _, ok := m.Trigger(q.Event); {
		case strings.TrimSpace(q.Event) == "":
			p.add(f+".event", "is required: the trigger event this poll feeds")
		case !ok:
			p.add(f+".event", "no trigger event %q in triggers", q.Event)
		case seen[q.Event]:
			p.add(f+".event", "duplicate poll of %q", q.Event)
		}
		seen[q.Event] = true
		if d := time.Duration(q.Interval); d != 0 && (d < MinPollInterval || d > MaxPollInterval) {
			p.add(f+".interval", "must be between %s and %s", MinPollInterval, MaxPollInterval)
		}
		q.Request.compile(f+".request", p)
		if q.Start != nil {
			q.Start.compile(f+".start", p)
		}
		expr := func(field, src string, required bool, vars []string) *template.Expr {
			if strings.TrimSpace(src) == "" {
				if required {
					p.add(f+"."+field, "is required")
				}
				return nil
			}
			e, err := template.CompileExprEnv(src, vars...)
			if err != nil {
				p.add(f+"."+field, "%v", err)
				return nil
			}
			return e
		}
		q.c.items = expr("items", q.Items, true, responseVars)
		q.c.recordID = expr("recordId", q.RecordID, true, itemVars)
		q.c.cursor = expr("cursor", q.Cursor, false, responseVars)
		q.c.more = expr("more", q.More, false, responseVars)
		q.c.initial = expr("initialCursor", q.InitialCursor, q.Start != nil, startVars)
		if q.More != "" && q.Cursor == "" {
			p.add(f+".more", "needs a cursor: the next page is asked for with the new cursor")
		}
	}
}

func (r *PollRequest) compile(f string, p *Problems) {
	r.c = reqCompiled{}
	switch m := strings.ToUpper(r.Method); m {
	case "":
		r.c.method = http.MethodGet
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch:
		r.c.method = m
	default:
		p.add(f+".method", "unsupported method %q (GET, POST, PUT, PATCH)", r.Method)
	}
	if strings.TrimSpace(r.URL) == "" {
		p.add(f+".url", "is required")
	} else if t, err := compileText(r.URL); err != nil {
		p.add(f+".url", "%v", err)
	} else {
		r.c.url = t
		if t.static() {
			if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				p.add(f+".url", "must be an absolute http(s) URL")
			}
		}
	}
	pairs := func(field string, m map[string]string) []kv {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []kv
		for _, k := range keys {
			if k == "" {
				p.add(f+"."+field, "an empty name")
				continue
			}
			t, err := compileText(m[k])
			if err != nil {
				p.add(f+"."+field+"."+k, "%v", err)
				continue
			}
			out = append(out, kv{k, t})
		}
		return out
	}
	r.c.query = pairs("query", r.Query)
	r.c.headers = pairs("headers", r.Headers)
	for _, h := range r.c.headers {
		if strings.EqualFold(h.k, "Authorization") {
			p.add(f+".headers.Authorization", "is set from the credential by the manifest's auth section")
		}
	}
	if r.Body != nil {
		n, err := compileNode(r.Body, f+".body", 0)
		if err != nil {
			p.add(f+".body", "%v", err)
		}
		r.c.body = n
	}
}

// ptext is a string with `{{ expr }}` parts over the request variables.
type ptext struct {
	parts []tpart
	whole bool // one expression and nothing else: its value keeps its type
}

type tpart struct {
	lit string
	e   *template.Expr
}

func (t *ptext) static() bool {
	for _, x := range t.parts {
		if x.e != nil {
			return false
		}
	}
	return true
}

func compileText(s string) (*ptext, error) {
	t := &ptext{}
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, tpart{lit: rest})
			}
			break
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return nil, errors.New("unclosed {{")
		}
		if i > 0 {
			t.parts = append(t.parts, tpart{lit: rest[:i]})
		}
		e, err := template.CompileExprEnv(rest[i+2:i+j], requestVars...)
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, tpart{e: e})
		rest = rest[i+j+2:]
	}
	t.whole = len(t.parts) == 1 && t.parts[0].e != nil
	return t, nil
}

func (t *ptext) eval(env map[string]any) (any, error) {
	if t.whole {
		return t.parts[0].e.Eval(env)
	}
	var b strings.Builder
	for _, x := range t.parts {
		if x.e == nil {
			b.WriteString(x.lit)
			continue
		}
		v, err := x.e.Eval(env)
		if err != nil {
			return nil, err
		}
		b.WriteString(template.Format(v))
	}
	return b.String(), nil
}

func (t *ptext) str(env map[string]any) (string, error) {
	v, err := t.eval(env)
	if err != nil {
		return "", err
	}
	return template.Format(v), nil
}

// pnode is a compiled JSON body value.
type pnode interface {
	eval(env map[string]any) (any, error)
}

type pstatic struct{ v any }

func (s pstatic) eval(map[string]any) (any, error) { return s.v, nil }

type pmap map[string]pnode

func (m pmap) eval(env map[string]any) (any, error) {
	out := make(map[string]any, len(m))
	for k, n := range m {
		v, err := n.eval(env)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

type plist []pnode

func (l plist) eval(env map[string]any) (any, error) {
	out := make([]any, len(l))
	for i, n := range l {
		v, err := n.eval(env)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

type ptextNode struct{ t *ptext }

func (n ptextNode) eval(env map[string]any) (any, error) { return n.t.eval(env) }

const maxBodyDepth = 32

func compileNode(v any, path string, depth int) (pnode, error) {
	if depth > maxBodyDepth {
		return nil, fmt.Errorf("%s: nested deeper than %d", path, maxBodyDepth)
	}
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return pstatic{x}, nil
		}
		t, err := compileText(x)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return ptextNode{t}, nil
	case map[string]any:
		out := make(pmap, len(x))
		for k, e := range x {
			n, err := compileNode(e, path+"."+k, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make(plist, len(x))
		for i, e := range x {
			n, err := compileNode(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	default:
		return pstatic{x}, nil
	}
}

// PollEnv is what a poll's expressions see besides the answer.
type PollEnv struct {
	Credential map[string]any
	Cursor     string
	Now        time.Time
}

func (e PollEnv) vars(q *Poll) map[string]any {
	return map[string]any{
		VarCredential: e.Credential,
		VarCursor:     e.Cursor,
		VarPoll: map[string]any{"now": e.Now.UTC().Format(time.RFC3339), "event": q.Event,
			"interval": int64(q.EveryInterval() / time.Second)},
	}
}

// BuiltRequest is a rendered request, before auth is applied.
type BuiltRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte // JSON, nil without a body
}

// Build renders r for env.
func (r *PollRequest) Build(q *Poll, env PollEnv) (*BuiltRequest, error) {
	vars := env.vars(q)
	raw, err := r.c.url.str(vars)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("url: %q is not an absolute http(s) URL", raw)
	}
	qv := u.Query()
	for _, x := range r.c.query {
		v, err := x.v.str(vars)
		if err != nil {
			return nil, fmt.Errorf("query.%s: %w", x.k, err)
		}
		qv.Set(x.k, v)
	}
	u.RawQuery = qv.Encode()
	out := &BuiltRequest{Method: r.c.method, URL: u.String(), Header: http.Header{}}
	for _, x := range r.c.headers {
		v, err := x.v.str(vars)
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", x.k, err)
		}
		out.Header.Set(x.k, v)
	}
	if r.c.body != nil {
		v, err := r.c.body.eval(vars)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		if out.Body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		out.Header.Set("Content-Type", "application/json")
	}
	out.Header.Set("Accept", "application/json")
	return out, nil
}

// EveryInterval is the poll's interval, with the default.
func (q *Poll) EveryInterval() time.Duration {
	if q.Interval <= 0 {
		return DefaultPollInterval
	}
	return time.Duration(q.Interval)
}

// InitialCursor evaluates the first cursor; startBody is Start's parsed
// answer (nil without Start).
func (q *Poll) FirstCursor(env PollEnv, startBody any) (string, error) {
	if q.c.initial == nil {
		return "", nil
	}
	vars := env.vars(q)
	vars[VarBody] = startBody
	v, err := q.c.initial.Eval(vars)
	if err != nil {
		return "", fmt.Errorf("initialCursor: %w", err)
	}
	s := cursorString(v)
	if len(s) > MaxCursorLen {
		return "", fmt.Errorf("initialCursor: longer than %d bytes", MaxCursorLen)
	}
	return s, nil
}

// Record is one polled record.
type Record struct {
	ID      string
	Payload []byte // the record as JSON
}

// Page is what one answer gave.
type Page struct {
	Records []Record
	// Cursor is the next cursor (the current one when the answer names
	// none).
	Cursor string
	// More: ask again at once with Cursor.
	More bool
}

// Read evaluates an answer's parsed JSON body: the records (each with its
// id), the next cursor and whether more pages follow. Any failure is the
// whole page's: no record of it is used and the cursor stays.
func (q *Poll) Read(env PollEnv, header http.Header, body any) (*Page, error) {
	vars := env.vars(q)
	vars[VarBody] = body
	hs := make(map[string]any, len(header))
	for k, v := range header {
		if len(v) > 0 {
			hs[strings.ToLower(k)] = v[0]
		}
	}
	vars[VarHeaders] = hs
	raw, err := q.c.items.Eval(vars)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	var list []any
	switch x := raw.(type) {
	case nil:
	case []any:
		list = x
	default:
		return nil, fmt.Errorf("items: gave %T, not a list", raw)
	}
	if len(list) > MaxPollItems {
		return nil, fmt.Errorf("items: %d records, more than %d in one answer", len(list), MaxPollItems)
	}
	page := &Page{Cursor: env.Cursor, Records: make([]Record, 0, len(list))}
	for i, it := range list {
		vars[VarItem] = it
		v, err := q.c.recordID.Eval(vars)
		if err != nil {
			return nil, fmt.Errorf("recordId of item %d: %w", i, err)
		}
		id := cursorString(v)
		if id == "" || len(id) > MaxRecordIDLen {
			return nil, fmt.Errorf("recordId of item %d: empty or longer than %d bytes", i, MaxRecordIDLen)
		}
		b, err := json.Marshal(it)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		page.Records = append(page.Records, Record{ID: id, Payload: b})
	}
	delete(vars, VarItem)
	if q.c.cursor != nil {
		v, err := q.c.cursor.Eval(vars)
		if err != nil {
			return nil, fmt.Errorf("cursor: %w", err)
		}
		if s := cursorString(v); s != "" {
			if len(s) > MaxCursorLen {
				return nil, fmt.Errorf("cursor: longer than %d bytes", MaxCursorLen)
			}
			page.Cursor = s
		}
	}
	if q.c.more != nil {
		v, err := q.c.more.Eval(vars)
		if err != nil {
			return nil, fmt.Errorf("more: %w", err)
		}
		page.More = template.Truthy(v) && page.Cursor != env.Cursor
	}
	return page, nil
}

// cursorString formats a cursor or record id value; nil is "".
func cursorString(v any) string {
	if v == nil {
		return ""
	}
	return template.Format(v)
}

// Poll returns the poll of trigger event, if it has one.
func (m *Manifest) Poll(event string) (*Poll, bool) {
	for i := range m.Polling {
		if m.Polling[i].Event == event {
			return &m.Polling[i], true
		}
	}
	return nil, false
}

// ProviderType is the event type a polled record is published as: the
// trigger event's provider type (Type, unless a glob), else its name, so
// the router matches it exactly as a webhook delivery of that type.
func (m *Manifest) ProviderType(event string) string {
	if t, ok := m.Trigger(event); ok && t.Type != "" && !strings.HasSuffix(t.Type, "*") {
		return t.Type
	}
	return event
}

// Package client is a small typed Go client of Switchboard's HTTP API,
// written against the OpenAPI document (services/switchboard/openapi). It
// covers what the CLI calls; the request and answer types are the services'
// own exported types (their json tags are what the document describes), so
// client and server cannot drift apart silently.
//
// Every method takes the context first; a non-2xx answer is an *Error
// carrying the API's {"error":{code,message,field,details}}.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
	historyrole "github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/ingress"
	"github.com/switchboard-hq/switchboard/services/scheduler"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

// Answer types, by the name the OpenAPI document gives their schema.
type (
	ApplyResult         = ingress.ApplyResult
	Project             = ingress.ProjectView
	EventRequest        = ingress.EventRequest
	EventAccepted       = ingress.EventAccepted
	Run                 = runs.Run
	RunPage             = history.Page
	Decision            = runs.Decision
	ReplayAccepted      = historyrole.ReplayAccepted
	EventReplayAccepted = historyrole.EventReplayAccepted
	DeadLetter          = historyrole.DeadLetter
	DeadPage            = historyrole.DeadPage
	ImportResult        = lifecycle.ImportResponse
	ScheduleView        = scheduler.ScheduleView
	TriggerResult       = scheduler.TriggerResult
	BackfillRequest     = scheduler.BackfillRequest
	BackfillResult      = scheduler.BackfillResult
	WebhookReplay       = receiver.ReplayRequest
	WebhookReplayPage   = receiver.ReplayPage
)

// DefaultTimeout bounds a call when Options.HTTPClient is nil. Streaming
// calls (ImportUsers) are not bounded by it.
const DefaultTimeout = 60 * time.Second

// Options configure a Client.
type Options struct {
	// BaseURL is the API's root, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Token is sent as Authorization: Bearer — a project API key, a user
	// token or the operator token, whichever the calls need.
	Token string
	// HTTPClient sends the requests; nil uses one with DefaultTimeout
	// (and none for ImportUsers).
	HTTPClient *http.Client
}

// Client calls one Switchboard API with one token.
type Client struct {
	base   string
	token  string
	hc     *http.Client
	stream *http.Client // no overall timeout: a body of any size may take long
}

// New returns a client of opts.BaseURL.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q is not an http(s) URL", opts.BaseURL)
	}
	c := &Client{base: strings.TrimRight(opts.BaseURL, "/"), token: opts.Token, hc: opts.HTTPClient, stream: opts.HTTPClient}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: DefaultTimeout}
		c.stream = &http.Client{}
	}
	return c, nil
}

// Error is a non-2xx answer.
type Error struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	Field        string
	Details      json.RawMessage
	// Body is the answer as received (indented when it is JSON).
	Body []byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d\n%s", e.Method, e.Path, e.Status, e.Body)
}

// IsCode reports whether err is an API error with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// request is one call.
type request struct {
	method, path string
	query        url.Values
	header       http.Header
	contentType  string
	body         io.Reader
	length       int64 // of body, when known (-1 otherwise)
	stream       bool
}

// do sends r and decodes a 2xx JSON answer into out (nil: discarded).
func (c *Client) do(ctx context.Context, r request, out any) error {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if r.body != nil && r.length >= 0 {
		req.ContentLength = r.length
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	hc := c.hc
	if r.stream {
		hc = c.stream
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(r, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer %q: %w", r.method, r.path, raw, err)
	}
	return nil
}

func apiError(r request, status int, raw []byte) *Error {
	e := &Error{Method: r.method, Path: r.path, Status: status, Body: raw}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") == nil {
		e.Body = pretty.Bytes()
	}
	var body struct {
		Error *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Field   string          `json:"field"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		e.Code, e.Message, e.Field, e.Details = body.Error.Code, body.Error.Message, body.Error.Field, body.Error.Details
	}
	return e
}

func jsonBody(v any) (io.Reader, int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, fmt.Errorf("client: encode the request: %w", err)
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

func projectPath(project string, rest ...string) string {
	p := "/v1/projects/" + url.PathEscape(project)
	for _, s := range rest {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// GetProject returns a project (the operator's token or the project's API
// key; API key prefixes only).
func (c *Client) GetProject(ctx context.Context, project string) (*Project, error) {
	var out Project
	return &out, c.do(ctx, request{method: http.MethodGet, path: projectPath(project)}, &out)
}

// Apply applies documents (a multi-document YAML stream, or JSON) all or
// nothing.
func (c *Client) Apply(ctx context.Context, project string, documents []byte) (*ApplyResult, error) {
	var out ApplyResult
	err := c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "apply"), contentType: "application/yaml",
		body: bytes.NewReader(documents), length: int64(len(documents))}, &out)
	return &out, err
}

// EventOptions are an App Event's headers and query.
type EventOptions struct {
	// Credential runs the event for this credential only.
	Credential string
	// IdempotencyKey makes a retry return the original answer.
	IdempotencyKey string
	// WaitRouted waits for the router's decision and returns the run ids.
	WaitRouted bool
}

// SendEvent sends an App Event; it returns once JetStream stored it.
func (c *Client) SendEvent(ctx context.Context, project string, ev EventRequest, opts EventOptions) (*EventAccepted, error) {
	body, n, err := jsonBody(ev)
	if err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, path: projectPath(project, "events"), contentType: "application/json", body: body, length: n, header: http.Header{}}
	if opts.Credential != "" {
		r.header.Set("X-Switchboard-Credential", opts.Credential)
	}
	if opts.IdempotencyKey != "" {
		r.header.Set("Idempotency-Key", opts.IdempotencyKey)
	}
	if opts.WaitRouted {
		r.query = url.Values{"wait": {"routed"}}
	}
	var out EventAccepted
	return &out, c.do(ctx, r, &out)
}

// RunFilter selects runs; zero fields do not filter.
type RunFilter struct {
	Workflow, User string
	Status         runs.Status
	Since, Until   time.Time
	Cursor         string
	Limit          int
}

func (f RunFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"workflow": f.Workflow, "user": f.User, "status": string(f.Status), "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ListRuns lists one page of runs, newest first.
func (c *Client) ListRuns(ctx context.Context, project string, f RunFilter) (*RunPage, error) {
	var out RunPage
	return &out, c.do(ctx, request{method: http.MethodGet, path: projectPath(project, "runs"), query: f.query()}, &out)
}

// GetRun returns one run with every step.
func (c *Client) GetRun(ctx context.Context, project, run string) (*Run, error) {
	var out Run
	return &out, c.do(ctx, request{method: http.MethodGet, path: projectPath(project, "runs", run)}, &out)
}

// ReplayRun starts a new run from the run's original trigger.
func (c *Client) ReplayRun(ctx context.Context, project, run string) (*ReplayAccepted, error) {
	var out ReplayAccepted
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "runs", run, "replay")}, &out)
}

// GetDecision returns an event's decision record.
func (c *Client) GetDecision(ctx context.Context, project, event string) (*Decision, error) {
	var out Decision
	return &out, c.do(ctx, request{method: http.MethodGet, path: projectPath(project, "events", event)}, &out)
}

// ReplayEvent publishes a stored trigger event again as a new event.
func (c *Client) ReplayEvent(ctx context.Context, project, event string) (*EventReplayAccepted, error) {
	var out EventReplayAccepted
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "events", event, "replay")}, &out)
}

// DeadFilter selects dead letters.
type DeadFilter struct {
	Workflow string
	Newest   bool // newest first (default oldest first)
	Cursor   string
	Limit    int
}

// ListDead lists one page of the project's dead letters.
func (c *Client) ListDead(ctx context.Context, project string, f DeadFilter) (*DeadPage, error) {
	q := url.Values{}
	if f.Workflow != "" {
		q.Set("workflow", f.Workflow)
	}
	if f.Newest {
		q.Set("order", "newest")
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out DeadPage
	return &out, c.do(ctx, request{method: http.MethodGet, path: projectPath(project, "dead"), query: q}, &out)
}

// ReplayDead starts a new run from a dead run's trigger.
func (c *Client) ReplayDead(ctx context.Context, project string, seq uint64) (*ReplayAccepted, error) {
	var out ReplayAccepted
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "dead", strconv.FormatUint(seq, 10), "replay")}, &out)
}

// ImportUsers streams NDJSON (one user per line) to the bulk import; size
// is the body's length, or -1 when unknown. The call has no overall
// timeout (unless Options.HTTPClient sets one): ctx bounds it. An error
// answer that says how far the import got carries it in Error.Details.
func (c *Client) ImportUsers(ctx context.Context, project string, ndjson io.Reader, size int64) (*ImportResult, error) {
	var out ImportResult
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "users", "import"),
		contentType: lifecycle.ContentTypeNDJSON, body: ndjson, length: size, stream: true}, &out)
}

// GetSchedule returns each zone's next ticks (next per zone; 0: the
// server's default) and the last one.
func (c *Client) GetSchedule(ctx context.Context, project, workflow string, next int) (*ScheduleView, error) {
	q := url.Values{}
	if next > 0 {
		q.Set("next", strconv.Itoa(next))
	}
	var out ScheduleView
	return &out, c.do(ctx, request{method: http.MethodGet, path: projectPath(project, "workflows", workflow, "schedule"), query: q}, &out)
}

// TriggerSchedule fires a tick now, for one user (or all when user is "").
func (c *Client) TriggerSchedule(ctx context.Context, project, workflow, user string) (*TriggerResult, error) {
	body, n, err := jsonBody(scheduler.TriggerRequest{User: user})
	if err != nil {
		return nil, err
	}
	var out TriggerResult
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "workflows", workflow, "schedule", "trigger"),
		contentType: "application/json", body: body, length: n}, &out)
}

// BackfillSchedule fires one page of a past range's ticks.
func (c *Client) BackfillSchedule(ctx context.Context, project, workflow string, req BackfillRequest) (*BackfillResult, error) {
	body, n, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var out BackfillResult
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "workflows", workflow, "schedule", "backfill"),
		contentType: "application/json", body: body, length: n}, &out)
}

// ReplayWebhooks publishes one page of an integration's stored webhook
// events of a time range again.
func (c *Client) ReplayWebhooks(ctx context.Context, project, integration string, req WebhookReplay) (*WebhookReplayPage, error) {
	body, n, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var out WebhookReplayPage
	return &out, c.do(ctx, request{method: http.MethodPost, path: projectPath(project, "integrations", integration, "replay"),
		contentType: "application/json", body: body, length: n}, &out)
}

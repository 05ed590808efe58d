// Package workflow defines the documents a project applies — workflows and
// app event declarations — and validates and compiles them. Compilation
// happens on apply and again whenever a service loads a document from the
// catalog, so every expression a run evaluates was checked before it ran.
package workflow

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/schedule"
	"github.com/switchboard-hq/switchboard/pkg/template"
)

// Document kinds.
const (
	KindWorkflow    = "Workflow"
	KindAppEvent    = "AppEvent"
	KindIntegration = "Integration"
)

// Trigger types.
const (
	TriggerAppEvent = "app_event"
	TriggerRequest  = "request"
	TriggerSchedule = "schedule"
)

// Step types.
const (
	StepHTTP     = "http"
	StepEmit     = "emit"
	StepResponse = "response"
	StepFunction = "function"
)

// Limits and defaults.
const (
	DefaultRequestTimeout = 55 * time.Second
	MaxRequestTimeout     = 300 * time.Second
	DefaultStepTimeout    = 30 * time.Second
	MaxStepTimeout        = 5 * time.Minute
	DefaultAttempts       = 5
	MaxAttempts           = 20
	DefaultBackoff        = time.Second
)

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	stepIDPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// ValidID reports whether s may be a project, workflow, integration or
// function id. Ids become NATS subject tokens, so the alphabet is narrow.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Duration is a time.Duration written as "10s" or "1m30s" in documents.
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string like \"10s\"")
		}
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Workflow is a trigger plus steps.
type Workflow struct {
	Kind             string  `json:"kind"`
	Project          string  `json:"project"`
	ID               string  `json:"id"`
	Name             string  `json:"name,omitempty"`
	Integration      string  `json:"integration,omitempty"`
	EnabledByDefault *bool   `json:"enabledByDefault,omitempty"`
	Trigger          Trigger `json:"trigger"`
	Steps            []*Step `json:"steps"`
}

// Trigger says what starts a workflow.
type Trigger struct {
	Type string `json:"type"`
	// app_event
	Event string `json:"event,omitempty"`
	// request
	Methods    []string           `json:"methods,omitempty"`
	Timeout    Duration           `json:"timeout,omitempty"`
	Validation *RequestValidation `json:"validation,omitempty"`
	// integration: event (the provider event), integration, filter, params
	// (integration_trigger.go).
	Integration string         `json:"integration,omitempty"`
	Filter      string         `json:"filter,omitempty"`
	Params      map[string]any `json:"params,omitempty"`
	filter      *template.Expr
	// schedule: every | cron, timezone | timezoneFrom + fallbackZone,
	// overlap, catchup, catchupWindow, spread, jitter (pkg/schedule owns
	// the fields, so the scheduler and the router read the same spec).
	schedule.Spec

	sched *schedule.Schedule
}

// Schedule is the compiled schedule of a schedule trigger (nil for other
// types and before Compile).
func (t *Trigger) Schedule() *schedule.Schedule { return t.sched }

// RequestValidation is the declarative check a request trigger runs before
// any run starts.
type RequestValidation struct {
	AllowArbitraryPayload bool         `json:"allowArbitraryPayload,omitempty"`
	Query                 []QueryRule  `json:"query,omitempty"`
	Headers               []HeaderRule `json:"headers,omitempty"`
	Body                  []BodyRule   `json:"body,omitempty"`
}

type QueryRule struct {
	Key      string `json:"key"`
	Required bool   `json:"required,omitempty"`
}

type HeaderRule struct {
	Key      string `json:"key"`
	Required bool   `json:"required,omitempty"`
	Equals   string `json:"equals,omitempty"`
}

type BodyRule struct {
	Key      string `json:"key"`
	Type     string `json:"type,omitempty"`
	Required bool   `json:"required,omitempty"`
}

// Retry configures per-step retries with exponential backoff.
type Retry struct {
	Attempts int      `json:"attempts,omitempty"`
	Backoff  Duration `json:"backoff,omitempty"`
}

// Step is one unit of a workflow.
type Step struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	If   string `json:"if,omitempty"`

	// http
	Method  string            `json:"method,omitempty"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Query   map[string]string `json:"query,omitempty"`
	JSON    any               `json:"json,omitempty"`
	Body    any               `json:"body,omitempty"`
	Auth    string            `json:"auth,omitempty"`
	Timeout Duration          `json:"timeout,omitempty"`
	Retry   *Retry            `json:"retry,omitempty"`

	// emit
	Event   string `json:"event,omitempty"`
	Payload any    `json:"payload,omitempty"`
	User    string `json:"user,omitempty"`

	// response
	Status any `json:"status,omitempty"`

	// function
	Function string `json:"function,omitempty"`
	Input    any    `json:"input,omitempty"`

	c compiledStep
}

type compiledStep struct {
	cond    *template.Expr
	url     *template.Template
	method  string
	headers map[string]*template.Template
	query   map[string]*template.Template
	json    *template.Template
	body    *template.Template
	payload *template.Template
	user    *template.Template
	status  *template.Template
	input   *template.Template
	timeout time.Duration
	retry   Retry
}

// Compiled accessors used by the executor.

func (s *Step) Cond() *template.Expr                           { return s.c.cond }
func (s *Step) URLTemplate() *template.Template                { return s.c.url }
func (s *Step) HTTPMethod() string                             { return s.c.method }
func (s *Step) HeaderTemplates() map[string]*template.Template { return s.c.headers }
func (s *Step) QueryTemplates() map[string]*template.Template  { return s.c.query }
func (s *Step) JSONTemplate() *template.Template               { return s.c.json }
func (s *Step) BodyTemplate() *template.Template               { return s.c.body }
func (s *Step) PayloadTemplate() *template.Template            { return s.c.payload }
func (s *Step) UserTemplate() *template.Template               { return s.c.user }
func (s *Step) StatusTemplate() *template.Template             { return s.c.status }
func (s *Step) InputTemplate() *template.Template              { return s.c.input }
func (s *Step) StepTimeout() time.Duration                     { return s.c.timeout }
func (s *Step) RetryPolicy() Retry                             { return s.c.retry }

// IsEnabledByDefault is the enablement for credentials and users that have
// not chosen: true unless the document says otherwise.
func (w *Workflow) IsEnabledByDefault() bool { return w.EnabledByDefault == nil || *w.EnabledByDefault }

// RequestTimeout is how long a synchronous caller waits for the response step.
func (w *Workflow) RequestTimeout() time.Duration {
	if w.Trigger.Timeout <= 0 {
		return DefaultRequestTimeout
	}
	return time.Duration(w.Trigger.Timeout)
}

// AllowsMethod reports whether a request trigger accepts method.
func (w *Workflow) AllowsMethod(method string) bool {
	if len(w.Trigger.Methods) == 0 {
		return method == "POST"
	}
	for _, m := range w.Trigger.Methods {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

// HasResponseStep reports whether a synchronous caller should wait.
func (w *Workflow) HasResponseStep() bool {
	for _, s := range w.Steps {
		if s.Type == StepResponse {
			return true
		}
	}
	return false
}

// AppEvent declares an app event name for a project, optionally with a JSON
// Schema its payloads must satisfy.
type AppEvent struct {
	Kind    string         `json:"kind"`
	Project string         `json:"project"`
	Name    string         `json:"name"`
	Schema  map[string]any `json:"schema,omitempty"`

	schema *jsonschema.Schema
}

// Integration is an integration document: a manifest (pkg/manifest) —
// auth, webhook, trigger events, settings — for one project. One with the id
// of a built-in manifest extends it: what the document leaves out comes from
// the built-in (Effective).
type Integration struct {
	Kind    string `json:"kind"`
	Project string `json:"project"`
	manifest.Manifest

	eff *manifest.Manifest
}

// Effective is the manifest the integration stands for: the document
// over the built-in of the same id, if there is one. Set by Compile.
func (in *Integration) Effective() *manifest.Manifest {
	if in.eff == nil {
		return &in.Manifest
	}
	return in.eff
}

// BuiltinIntegration is the embedded manifest id as an integration of
// project p, for a project that has not applied its own.
func BuiltinIntegration(p, id string) (*Integration, bool) {
	m, ok := manifest.Builtin(id)
	if !ok {
		return nil, false
	}
	return &Integration{Kind: KindIntegration, Project: p, Manifest: *m, eff: m}, true
}

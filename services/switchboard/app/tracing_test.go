package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-hq/switchboard/pkg/tracing"
)

// TestTraceOfAnAppEvent sends one App Event through every role of a real
// process (embedded NATS) and checks it makes one connected trace:
//
//	POST /v1/projects/:p/events   server, the caller's traceparent as parent
//	└─ publish TRIGGERS           producer (pkg/trigger)
//	   └─ decide                  consumer (router)
//	      └─ publish RUNS         producer (router)
//	         └─ run               consumer (executor)
//	            └─ step http      internal; its request carries its traceparent
//
// once with a caller's traceparent (whose trace id it keeps) and once
// without one (a new trace, rooted at the server span); and a request
// trigger, whose run the router executes in place under its decide span.
func TestTraceOfAnAppEvent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })

	received := make(chan string, 4) // the traceparent each call of the step had
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received <- r.Header.Get("traceparent")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	const admin = "adm_tracing_test_token"
	opts := options(t)
	opts.AdminToken, opts.AllowLoopback, opts.TracerProvider = admin, true, tp
	a := start(t, opts)
	base := "http://" + a.HTTPAddr()

	trCall(t, base, "PUT", "/v1/projects/dev", admin, `{"name":"Dev"}`, nil, http.StatusOK)
	var key struct{ Key string }
	trCall(t, base, "POST", "/v1/projects/dev/api-keys", admin, "", nil, http.StatusCreated, &key)
	trCall(t, base, "POST", "/v1/projects/dev/apply", key.Key, `kind: AppEvent
name: Traced
---
kind: Workflow
id: traced
trigger: {type: app_event, event: Traced}
steps:
  - id: notify
    type: http
    method: POST
    url: `+hook.URL+`/hook
    json: {run: "{{ run.id }}"}
---
kind: Workflow
id: traced-request
trigger: {type: request, methods: [POST]}
steps:
  - id: reply
    type: response
    json: {ok: true}
  - id: notify
    type: http
    method: POST
    url: `+hook.URL+`/hook
    json: {run: "{{ run.id }}"}
`, nil, http.StatusOK)
	trCall(t, base, "PUT", "/v1/projects/dev/users/u1", key.Key, `{"metadata":{}}`, nil, http.StatusOK)

	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const callerSpan = "00f067aa0ba902b7"
	for _, tc := range []struct {
		name        string
		traceparent string
	}{
		{"caller's traceparent", "00-" + callerTrace + "-" + callerSpan + "-01"},
		{"no traceparent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp.Reset()
			h := http.Header{"X-Switchboard-User": {"u1"}}
			if tc.traceparent != "" {
				h.Set("traceparent", tc.traceparent)
			}
			var ack struct{ ID string }
			trCall(t, base, "POST", "/v1/projects/dev/events", key.Key, `{"name":"Traced","payload":{}}`, h, http.StatusAccepted, &ack)

			var hookParent string
			select {
			case hookParent = <-received:
			case <-time.After(20 * time.Second):
				t.Fatal("the workflow's http step was not called within 20s")
			}
			chain := []string{"POST /v1/projects/:p/events", "publish TRIGGERS", "decide", "publish RUNS", "run", "step http"}
			spans := waitSpans(t, exp, chain, 10*time.Second)

			server := spans[chain[0]]
			tid := server.SpanContext.TraceID()
			if tc.traceparent != "" {
				caller := tracing.SpanContextOf(tc.traceparent)
				if tid != caller.TraceID() {
					t.Fatalf("trace id %s, want the caller's %s", tid, caller.TraceID())
				}
				if server.Parent.SpanID() != caller.SpanID() || !server.Parent.IsRemote() {
					t.Fatalf("server span's parent %s (remote %v), want the caller's span %s", server.Parent.SpanID(), server.Parent.IsRemote(), caller.SpanID())
				}
			} else if server.Parent.IsValid() {
				t.Fatalf("without a traceparent the server span has parent %s, want a root span", server.Parent.SpanID())
			}
			kinds := []trace.SpanKind{trace.SpanKindServer, trace.SpanKindProducer, trace.SpanKindConsumer,
				trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKindInternal}
			for i, name := range chain {
				s := spans[name]
				if s.SpanContext.TraceID() != tid {
					t.Errorf("%s: trace id %s, want %s", name, s.SpanContext.TraceID(), tid)
				}
				if s.SpanKind != kinds[i] {
					t.Errorf("%s: kind %s, want %s", name, s.SpanKind, kinds[i])
				}
				if i > 0 {
					if parent := spans[chain[i-1]]; s.Parent.SpanID() != parent.SpanContext.SpanID() {
						t.Errorf("%s: parent span %s, want %s's %s", name, s.Parent.SpanID(), chain[i-1], parent.SpanContext.SpanID())
					}
				}
			}
			step := spans["step http"]
			attrs := map[string]string{}
			for _, kv := range step.Attributes {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			if attrs[string(tracing.AttrStepID)] != "notify" || attrs[string(tracing.AttrStepType)] != "http" {
				t.Errorf("step span attributes %v, want step id notify and type http", attrs)
			}
			if pub := spans["publish TRIGGERS"]; !hasAttr(pub, "messaging.message.id", ack.ID) {
				t.Errorf("publish span attributes %v, want the event id %s", pub.Attributes, ack.ID)
			}
			// The called service continues the trace from the step's span.
			if got := tracing.SpanContextOf(hookParent); got.TraceID() != tid || got.SpanID() != step.SpanContext.SpanID() {
				t.Errorf("the step's request carried traceparent %q, want trace %s and the step span %s", hookParent, tid, step.SpanContext.SpanID())
			}
		})
	}

	// A request's one run is executed in place by the router that decided
	// it: no RUNS publish, the run is the decide span's child.
	t.Run("request trigger", func(t *testing.T) {
		exp.Reset()
		h := http.Header{"X-Switchboard-User": {"u1"}, "traceparent": {"00-" + callerTrace + "-" + callerSpan + "-01"}}
		trCall(t, base, "POST", "/v1/projects/dev/workflows/traced-request/trigger", key.Key, `{}`, h, http.StatusOK)
		select {
		case <-received:
		case <-time.After(20 * time.Second):
			t.Fatal("the workflow's http step was not called within 20s")
		}
		chain := []string{"POST /v1/projects/:p/workflows/:w/trigger", "publish TRIGGERS", "decide", "run"}
		spans := waitSpans(t, exp, append(chain, "step response", "step http"), 10*time.Second)
		for i, name := range chain {
			s := spans[name]
			if s.SpanContext.TraceID().String() != callerTrace {
				t.Errorf("%s: trace id %s, want the caller's %s", name, s.SpanContext.TraceID(), callerTrace)
			}
			if i > 0 && s.Parent.SpanID() != spans[chain[i-1]].SpanContext.SpanID() {
				t.Errorf("%s: parent span %s, want %s's", name, s.Parent.SpanID(), chain[i-1])
			}
		}
		for _, step := range []string{"step response", "step http"} {
			if p := spans[step].Parent.SpanID(); p != spans["run"].SpanContext.SpanID() {
				t.Errorf("%s: parent span %s, want the run's", step, p)
			}
		}
	})
}

// waitSpans polls exp until a span of every name in names has ended, and
// returns them by name (the first of each).
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, names []string, within time.Duration) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			if _, ok := got[s.Name]; !ok {
				got[s.Name] = s
			}
		}
		var missing []string
		for _, n := range names {
			if _, ok := got[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			var all []string
			for _, s := range exp.GetSpans() {
				all = append(all, s.Name)
			}
			t.Fatalf("spans %v not ended within %s; have %v", missing, within, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key && kv.Value.String() == value {
			return true
		}
	}
	return false
}

// trCall makes one API call and checks its status; out, if given, is
// decoded from the JSON answer.
func trCall(t *testing.T, base, method, path, token, body string, h http.Header, want int, out ...any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	switch {
	case strings.HasPrefix(body, "{"):
		req.Header.Set("Content-Type", "application/json")
	case body != "":
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	for _, o := range out {
		if err := json.Unmarshal(b, o); err != nil {
			t.Fatal(fmt.Errorf("%s %s: %w", method, path, err))
		}
	}
}

// TestTracerFromEnv: tracing is off unless OTEL_TRACES_EXPORTER names an
// exporter, and a name or protocol this build lacks fails the start.
func TestTracerFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		on   bool
		err  string
	}{
		{name: "unset", on: false},
		{name: "none", env: map[string]string{EnvTracesExporter: "none"}, on: false},
		{name: "otlp http", env: map[string]string{EnvTracesExporter: "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, on: true},
		{name: "otlp grpc", env: map[string]string{EnvTracesExporter: "otlp", EnvOTLPProtocol: "grpc"}, on: true},
		{name: "console and otlp", env: map[string]string{EnvTracesExporter: "console, otlp"}, on: true},
		{name: "unknown exporter", env: map[string]string{EnvTracesExporter: "jaeger"}, err: `"jaeger"`},
		{name: "unknown protocol", env: map[string]string{EnvTracesExporter: "otlp", EnvOTLPTracesProtocol: "http/json"}, err: "http/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := tracerFromEnv(t.Context(), func(k string) string { return tc.env[k] }, []string{RoleRouter})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tp != nil) != tc.on {
				t.Fatalf("provider %v, want one: %v", tp, tc.on)
			}
			if tp != nil {
				// Nothing was exported, so shutting down needs no collector.
				if err := tp.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

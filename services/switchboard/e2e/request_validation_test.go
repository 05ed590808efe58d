package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/fnworker"
	"github.com/switchboard-hq/switchboard/pkg/reqbody"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

const rqValidationDocs = `kind: Workflow
id: rq-valid
trigger:
  type: request
  validation:
    query:
      - {key: tenant, required: true}
    headers:
      - {key: X-Api-Version, required: true}
      - {key: X-Signature, equals: s3cret}
    body:
      - {key: name, type: string, required: true}
      - {key: count, type: number}
      - {key: active, type: boolean}
      - {key: meta, type: object}
      - {key: tags, type: array}
      - {key: address.city, type: string, required: true}
steps:
  - id: reply
    type: response
    json: {ok: true, city: "{{ trigger.request.body.address.city }}"}
---
kind: Workflow
id: rq-any
trigger: {type: request}
steps:
  - id: reply
    type: response
    json: {ok: true}
---
kind: Workflow
id: rq-tmpl
trigger: {type: request}
steps:
  - id: reply
    type: response
    status: 200
    json: {x: "{{ trigger.request.body.a.b.c }}"}
---
kind: Workflow
id: rq-noworker
trigger: {type: request}
steps:
  - id: call
    type: function
    function: rq-nobody-serves-this
    retry: {attempts: 2, backoff: 100ms}
---
kind: Workflow
id: rq-silent
trigger: {type: request}
steps:
  - id: call
    type: function
    function: rq-silent
    timeout: 500ms
    retry: {attempts: 1}
---
kind: Workflow
id: rq-hangup
trigger: {type: request}
steps:
  - id: work
    type: function
    function: rq-second
    retry: {attempts: 1}
  - id: reply
    type: response
    json: {done: true}
`

// rqFieldErrors decodes the details of a 400 validation_failed answer.
func rqFieldErrors(t testing.TB, r response) []reqbody.FieldError {
	t.Helper()
	e := expectError(t, r, http.StatusBadRequest, "validation_failed")
	var fes []reqbody.FieldError
	if err := json.Unmarshal(e.Error.Details, &fes); err != nil {
		t.Fatalf("validation_failed details are not a list of field errors (%v): %s", err, r.Body)
	}
	for _, f := range fes {
		if f.Message == "" {
			t.Errorf("field error %+v has no message", f)
		}
		if !strings.Contains(e.Error.Message, f.Field) {
			t.Errorf("the error message %q does not name %s", e.Error.Message, f.Field)
		}
	}
	return fes
}

// TestRequestValidation sends every kind of bad input to request triggers:
// each validation failure (400 listing every failing field, no run), an
// unsupported content type (415), oversized bodies and multipart parts
// (413), a response step whose template fails (500 with the run id, run
// failed), a function with no worker or a silent one (run failed with a
// clear step error), and a caller hanging up (the run completes anyway).
func TestRequestValidation(t *testing.T) {
	t.Parallel()
	const smallBody = 2048
	sys, _ := startDev(t, dev.Options{NATSAddr: "127.0.0.1:0", MaxBody: smallBody})
	a := newAPI(sys.HTTPAddr)
	key := sys.APIKey
	rqSetup(t, a, key, rqValidationDocs)
	token, err := sys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + token
	trigger := func(w string) string { return a.base + "/v1/projects/dev/workflows/" + w + "/trigger" }

	// A big-body system for the multipart part limits.
	bigSys, _ := startDev(t, dev.Options{MaxBody: 8 << 20})
	big := newAPI(bigSys.HTTPAddr)
	rqSetup(t, big, bigSys.APIKey, rqValidationDocs)
	bigToken, err := bigSys.Token("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Workers: one that never answers, one that takes a second.
	release := make(chan struct{})
	silentCalls, secondCalls := newRqCounter(), newRqCounter()
	svc, err := fnworker.Serve(rqConnect(t, sys.NATSURL), fnworker.Options{Project: dev.Project, Functions: map[string]fnworker.Handler{
		"rq-silent": func(ctx context.Context, _ fnworker.Request) (any, error) {
			silentCalls.inc()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("released")
		},
		"rq-second": func(ctx context.Context, _ fnworker.Request) (any, error) {
			secondCalls.inc()
			time.Sleep(time.Second)
			return map[string]any{"ok": true}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release); _ = svc.Stop() })

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		validBody := map[string]any{"name": "Ada", "count": 3, "active": true, "meta": map[string]any{"k": "v"},
			"tags": []any{"a"}, "address": map[string]any{"city": "Paris"}}
		with := func(changes map[string]any) []byte {
			m := map[string]any{}
			for k, v := range validBody {
				m[k] = v
			}
			for k, v := range changes {
				if v == nil {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			return rqJSON(t, m)
		}
		validHdr := []string{"Authorization", bearer, "X-Api-Version", "2", "X-Signature", "s3cret"}
		type want struct{ field, code string }
		cases := []struct {
			name  string
			query string
			hdr   []string
			body  []byte
			want  []want
		}{
			{"missing required query parameter", "", validHdr, with(nil), []want{{"query.tenant", reqbody.CodeRequired}}},
			{"empty required query parameter", "?tenant=", validHdr, with(nil), []want{{"query.tenant", reqbody.CodeRequired}}},
			{"missing required header", "?tenant=t1", []string{"Authorization", bearer, "X-Signature", "s3cret"}, with(nil),
				[]want{{"headers.x-api-version", reqbody.CodeRequired}}},
			{"header equals mismatch", "?tenant=t1", []string{"Authorization", bearer, "X-Api-Version", "2", "X-Signature", "wrong"}, with(nil),
				[]want{{"headers.x-signature", reqbody.CodeMismatch}}},
			{"missing body field", "?tenant=t1", validHdr, with(map[string]any{"name": nil}), []want{{"body.name", reqbody.CodeRequired}}},
			{"null body field", "?tenant=t1", validHdr, with(map[string]any{"name": json.RawMessage("null")}), []want{{"body.name", reqbody.CodeRequired}}},
			{"string has the wrong type", "?tenant=t1", validHdr, with(map[string]any{"name": 5}), []want{{"body.name", reqbody.CodeType}}},
			{"number has the wrong type", "?tenant=t1", validHdr, with(map[string]any{"count": "3"}), []want{{"body.count", reqbody.CodeType}}},
			{"boolean has the wrong type", "?tenant=t1", validHdr, with(map[string]any{"active": "true"}), []want{{"body.active", reqbody.CodeType}}},
			{"object has the wrong type", "?tenant=t1", validHdr, with(map[string]any{"meta": []any{1}}), []want{{"body.meta", reqbody.CodeType}}},
			{"array has the wrong type", "?tenant=t1", validHdr, with(map[string]any{"tags": map[string]any{"0": "a"}}), []want{{"body.tags", reqbody.CodeType}}},
			{"nested dotted key missing", "?tenant=t1", validHdr, with(map[string]any{"address": map[string]any{}}), []want{{"body.address.city", reqbody.CodeRequired}}},
			{"nested dotted key wrong type", "?tenant=t1", validHdr, with(map[string]any{"address": map[string]any{"city": 75}}), []want{{"body.address.city", reqbody.CodeType}}},
			{"nested parent not an object", "?tenant=t1", validHdr, with(map[string]any{"address": "Paris"}), []want{{"body.address.city", reqbody.CodeRequired}}},
			{"empty body", "?tenant=t1", validHdr, nil, []want{{"body.name", reqbody.CodeRequired}, {"body.address.city", reqbody.CodeRequired}}},
			{"every failure at once", "", []string{"Authorization", bearer, "X-Signature", "nope"},
				rqJSON(t, map[string]any{"count": "x", "active": 1, "meta": "m", "tags": "t", "address": map[string]any{"city": false}}),
				[]want{
					{"query.tenant", reqbody.CodeRequired}, {"headers.x-api-version", reqbody.CodeRequired},
					{"headers.x-signature", reqbody.CodeMismatch}, {"body.name", reqbody.CodeRequired},
					{"body.count", reqbody.CodeType}, {"body.active", reqbody.CodeType}, {"body.meta", reqbody.CodeType},
					{"body.tags", reqbody.CodeType}, {"body.address.city", reqbody.CodeType},
				}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := rqCall(t, "POST", trigger("rq-valid")+c.query, c.body, c.hdr...)
				fes := rqFieldErrors(t, r)
				var got, exp []string
				for _, f := range fes {
					got = append(got, f.Field+"/"+f.Code)
				}
				for _, w := range c.want {
					exp = append(exp, w.field+"/"+w.code)
				}
				sort.Strings(got)
				sort.Strings(exp)
				if strings.Join(got, ",") != strings.Join(exp, ",") {
					t.Errorf("failing fields %v, want exactly %v (%s)", got, exp, r.Body)
				}
				if strings.Contains(string(r.Body), "s3cret") {
					t.Errorf("the answer echoes the expected header value: %s", r.Body)
				}
			})
		}
		t.Run("415 for a typed body with an unsupported content type", func(t *testing.T) {
			r := rqCall(t, "POST", trigger("rq-valid")+"?tenant=t1", []byte("name=Ada"),
				append(append([]string{}, validHdr...), "Content-Type", "text/plain")...)
			expectError(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
		t.Run("400 for malformed JSON", func(t *testing.T) {
			r := rqCall(t, "POST", trigger("rq-valid")+"?tenant=t1", []byte(`{"name":`), validHdr...)
			expectError(t, r, http.StatusBadRequest, "invalid_body")
		})

		// A refusal is the caller's answer at admission: nothing reaches
		// TRIGGERS, so nothing is decided and no run starts. A valid
		// request, sent last, is the only run of the workflow.
		if n := rqSubjectMsgs(t, sys.JS, subjects.StreamTriggers, subjects.Trigger(dev.Project, subjects.KindRequest, "rq-valid")); n != 0 {
			t.Fatalf("%d refused requests reached TRIGGERS", n)
		}
		ok := rqCall(t, "POST", trigger("rq-valid")+"?tenant=t1", with(nil), validHdr...)
		if ok.Status != http.StatusOK || rqObject(t, ok)["city"] != "Paris" {
			t.Fatalf("valid request: %s, want 200 with city Paris", ok)
		}
		runID := ok.Header.Get("X-Switchboard-Run-Id")
		waitRun(t, a, key, runID)
		if list := rqListRuns(t, a, key, "rq-valid"); len(list) != 1 || list[0].ID != runID {
			t.Errorf("runs of rq-valid: %+v, want only the valid request's run %s", list, runID)
		}
	})

	t.Run("413 for an oversized body", func(t *testing.T) {
		t.Parallel()
		body := rqJSON(t, map[string]any{"pad": strings.Repeat("x", 2*smallBody)})
		expectError(t, rqCall(t, "POST", trigger("rq-any"), body, "Authorization", bearer), http.StatusRequestEntityTooLarge, "payload_too_large")
		// Chunked, without a Content-Length.
		req, err := http.NewRequest("POST", trigger("rq-any"), rqChunked(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := rqClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked oversized body: %d, want 413", resp.StatusCode)
		}
	})

	t.Run("413 for too many multipart parts", func(t *testing.T) {
		t.Parallel()
		var fields [][2]string
		for i := range reqbody.DefaultMaxParts + 1 {
			fields = append(fields, [2]string{fmt.Sprintf("f%d", i), "v"})
		}
		ct, body := rqMultipart(t, fields)
		r := rqCall(t, "POST", big.base+"/v1/projects/dev/workflows/rq-any/trigger", body, "Authorization", "Bearer "+bigToken, "Content-Type", ct)
		expectError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		// Exactly the limit is fine.
		ct, body = rqMultipart(t, fields[:reqbody.DefaultMaxParts])
		r = rqCall(t, "POST", big.base+"/v1/projects/dev/workflows/rq-any/trigger", body, "Authorization", "Bearer "+bigToken, "Content-Type", ct)
		if r.Status != http.StatusOK {
			t.Errorf("%d parts: %s, want 200", reqbody.DefaultMaxParts, r)
		}
	})

	t.Run("413 for a too large multipart part", func(t *testing.T) {
		t.Parallel()
		ct, body := rqMultipart(t, [][2]string{{"name", "x"}},
			rqFile{Field: "doc", Filename: "big.bin", ContentType: "application/octet-stream", Data: bytes.Repeat([]byte{'z'}, reqbody.DefaultMaxPartBytes+1)})
		r := rqCall(t, "POST", big.base+"/v1/projects/dev/workflows/rq-any/trigger", body, "Authorization", "Bearer "+bigToken, "Content-Type", ct)
		expectError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		if n := rqSubjectMsgs(t, bigSys.JS, subjects.StreamTriggers, subjects.Trigger(dev.Project, subjects.KindRequest, "rq-any")); n > 1 {
			t.Errorf("%d request triggers stored, want only the one with %d parts", n, reqbody.DefaultMaxParts)
		}
	})

	t.Run("a response template that fails is 500 and fails the run", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-tmpl"), []byte(`{"a":"just a string"}`), "Authorization", bearer)
		e := expectError(t, r, http.StatusInternalServerError, "response_template_failed")
		var details struct {
			RunID string `json:"runId"`
		}
		if err := json.Unmarshal(e.Error.Details, &details); err != nil || !runs.ValidID(details.RunID) {
			t.Fatalf("details %s carry no run id (%v)", e.Error.Details, err)
		}
		run := waitRun(t, a, key, details.RunID)
		if run.Status != runs.StatusFailed || run.Workflow != "rq-tmpl" {
			t.Fatalf("run %+v, want rq-tmpl failed", run)
		}
		s, ok := run.StepByID("reply")
		if !ok || s.Status != runs.StepFailed || s.Attempts != 1 || !strings.Contains(s.Error, "response_template_failed") {
			t.Errorf("response step %+v, want failed once with response_template_failed", s)
		}
	})

	t.Run("function with no worker fails the run after its retries", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-noworker"), []byte(`{}`), "Authorization", bearer)
		if r.Status != http.StatusAccepted {
			t.Fatalf("got %s, want 202", r)
		}
		runID, _ := rqObject(t, r)["runId"].(string)
		run := waitRun(t, a, key, runID)
		if run.Status != runs.StatusFailed {
			t.Fatalf("run %s: %s, want failed", runID, run.Status)
		}
		s, ok := run.StepByID("call")
		if !ok || s.Status != runs.StepFailed || s.Attempts != 2 || !strings.Contains(s.Error, "no worker") ||
			!strings.Contains(s.Error, "rq-nobody-serves-this") {
			t.Errorf("step %+v, want 2 attempts failing with \"no worker ... rq-nobody-serves-this\"", s)
		}
		if !strings.Contains(run.Error, "no worker") {
			t.Errorf("run error %q does not say why", run.Error)
		}
	})

	t.Run("a worker that never answers is a step timeout", func(t *testing.T) {
		t.Parallel()
		r := rqCall(t, "POST", trigger("rq-silent"), []byte(`{}`), "Authorization", bearer)
		if r.Status != http.StatusAccepted {
			t.Fatalf("got %s, want 202", r)
		}
		runID, _ := rqObject(t, r)["runId"].(string)
		run := waitRun(t, a, key, runID)
		if run.Status != runs.StatusFailed {
			t.Fatalf("run %s: %s, want failed", runID, run.Status)
		}
		s, ok := run.StepByID("call")
		if !ok || s.Attempts != 1 || !strings.Contains(s.Error, "did not answer within 500ms") {
			t.Errorf("step %+v, want one attempt failing with \"did not answer within 500ms\"", s)
		}
		if d := s.FinishedAt.Sub(s.StartedAt); d < 450*time.Millisecond || d > 5*time.Second {
			t.Errorf("the step took %s, want about its 500ms timeout", d)
		}
		if silentCalls.get() != 1 {
			t.Errorf("the worker got %d calls, want 1", silentCalls.get())
		}
	})

	t.Run("a caller that hangs up does not stop the run", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := rqDo(ctx, "POST", trigger("rq-hangup"), []byte(`{}`), "Authorization", bearer)
		if err == nil {
			t.Fatal("the call returned within 200ms; want the caller to give up first")
		}
		var run runs.Run
		eventually(t, 20*time.Second, "the abandoned run to finish", func() (bool, string) {
			list := rqListRuns(t, a, key, "rq-hangup")
			if len(list) != 1 {
				return false, fmt.Sprintf("%d runs", len(list))
			}
			run = list[0]
			return run.Status.Terminal(), string(run.Status)
		})
		if run.Status != runs.StatusSucceeded || len(run.Steps) != 2 {
			t.Fatalf("run %+v, want succeeded with both steps", run)
		}
		if got := waitRun(t, a, key, run.ID); got.Status != runs.StatusSucceeded {
			t.Errorf("GET run: %s", got.Status)
		}
		if secondCalls.get() != 1 {
			t.Errorf("the worker got %d calls, want 1", secondCalls.get())
		}
	})
}

// rqChunked hides the length of b so the request is sent chunked.
func rqChunked(b []byte) *struct{ *bytes.Reader } {
	return &struct{ *bytes.Reader }{bytes.NewReader(b)}
}

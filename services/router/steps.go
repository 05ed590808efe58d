package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/egress"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/tracing"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// runStepOnce runs one attempt of st and returns its input and output.
func (s *Service) runStepOnce(ctx context.Context, x *execution, st *workflow.Step) (any, any, error) {
	switch st.Type {
	case workflow.StepHTTP:
		return s.httpStep(ctx, x, st)
	case workflow.StepEmit:
		return s.emitStep(ctx, x, st)
	case workflow.StepResponse:
		return s.responseStep(ctx, x, st)
	case workflow.StepFunction:
		return s.functionStep(ctx, x, st)
	default:
		return nil, nil, permanent(fmt.Errorf("not implemented: %s steps", st.Type))
	}
}

const maxResponseBody = 10 << 20

func (s *Service) httpStep(ctx context.Context, x *execution, st *workflow.Step) (any, any, error) {
	env := x.env
	rawURL, err := evalString(st.URLTemplate(), env)
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("url: %w", err))
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, permanent(fmt.Errorf("url %q is not an absolute http(s) URL", rawURL))
	}
	if qt := st.QueryTemplates(); len(qt) > 0 {
		q := u.Query()
		for k, t := range qt {
			v, err := evalString(t, env)
			if err != nil {
				return nil, nil, permanent(fmt.Errorf("query.%s: %w", k, err))
			}
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	headers := http.Header{}
	for k, t := range st.HeaderTemplates() {
		v, err := evalString(t, env)
		if err != nil {
			return nil, nil, permanent(fmt.Errorf("headers.%s: %w", k, err))
		}
		headers.Set(k, v)
	}
	var body []byte
	var inputBody any
	switch {
	case st.JSONTemplate() != nil:
		v, err := st.JSONTemplate().Eval(env)
		if err != nil {
			return nil, nil, permanent(fmt.Errorf("json: %w", err))
		}
		if body, err = json.Marshal(v); err != nil {
			return nil, nil, permanent(fmt.Errorf("json: %w", err))
		}
		inputBody = v
		if headers.Get("Content-Type") == "" {
			headers.Set("Content-Type", "application/json")
		}
	case st.BodyTemplate() != nil:
		v, err := st.BodyTemplate().EvalString(env)
		if err != nil {
			return nil, nil, permanent(fmt.Errorf("body: %w", err))
		}
		body, inputBody = []byte(v), v
	}
	if st.Auth == "credential" {
		if err := s.applyCredential(ctx, x, headers); err != nil {
			return nil, nil, err
		}
	}
	input := map[string]any{"method": st.HTTPMethod(), "url": u.String()}
	if inputBody != nil {
		input["body"] = inputBody
	}

	rctx, cancel := context.WithTimeout(ctx, st.StepTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, st.HTTPMethod(), u.String(), bytes.NewReader(body))
	if err != nil {
		return input, nil, permanent(err)
	}
	req.Header = headers
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "switchboard/1")
	}
	if req.Header.Get("traceparent") == "" {
		// The called service continues the run's trace, from this step's
		// span; a traceparent the workflow sets itself is its author's.
		tracing.InjectHTTP(rctx, req.Header)
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(err, egress.ErrForbiddenAddress) {
			return input, nil, permanent(err)
		}
		return input, nil, fmt.Errorf("request failed: %w", err)
	}
	defer resp.Body.Close()
	raw, err := egress.ReadBody(resp, maxResponseBody)
	if err != nil {
		return input, nil, fmt.Errorf("reading response: %w", err)
	}
	out := map[string]any{
		"status":  resp.StatusCode,
		"headers": flatHeaders(resp.Header),
		"body":    responseBody(resp.Header.Get("Content-Type"), raw),
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return input, out, fmt.Errorf("HTTP %d from %s", resp.StatusCode, u.Host)
	case resp.StatusCode >= 400:
		return input, out, permanent(fmt.Errorf("HTTP %d from %s", resp.StatusCode, u.Host))
	}
	return input, out, nil
}

// applyCredential adds the run's credential to an outbound request, as the
// integration's auth type says. The secret is read here and nowhere else,
// and not kept: a failed read is retried, a missing secret is permanent.
// A run without a credential of its own whose workflow is an app-level API
// Resource's uses that resource's one credential set.
func (s *Service) applyCredential(ctx context.Context, x *execution, h http.Header) error {
	if x.cred == nil {
		if in := s.appResource(x); in != nil {
			return s.applyAppCredential(ctx, x, in, h)
		}
		return permanent(fmt.Errorf("auth: credential: the run has no credential"))
	}
	secret, err := s.opts.Directory.Secret(ctx, x.run.Project, x.run.User, x.cred.ID)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return permanent(fmt.Errorf("auth: credential %s no longer exists", x.cred.ID))
	case errors.Is(err, directory.ErrSecretUnavailable):
		return permanent(fmt.Errorf("auth: %w", err))
	case err != nil:
		return fmt.Errorf("auth: read the secret of credential %s: %w", x.cred.ID, err)
	}
	in, _ := s.opts.Catalog.Integration(x.run.Project, x.cred.Integration)
	return setAuth(h, in, secret, "credential "+x.cred.ID)
}

// appResource is the app-level API Resource the run's workflow belongs to
// (its trigger's integration, else its own), or nil.
func (s *Service) appResource(x *execution) *workflow.Integration {
	if x.wf == nil {
		return nil
	}
	for _, id := range []string{x.wf.Trigger.Integration, x.wf.Integration} {
		if in, ok := s.opts.Catalog.Integration(x.run.Project, id); id != "" && ok && in.Effective().AppLevel() {
			return in
		}
	}
	return nil
}

// applyAppCredential applies app-level resource in's one credential set,
// read from storage for each request (a replaced one applies at once).
func (s *Service) applyAppCredential(ctx context.Context, x *execution, in *workflow.Integration, h http.Header) error {
	ac, err := s.opts.Directory.AppCredential(ctx, x.run.Project, in.ID)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return permanent(fmt.Errorf("auth: app-level resource %s has no credential (PUT /v1/projects/%s/resources/%s/credential)", in.ID, x.run.Project, in.ID))
	case errors.Is(err, directory.ErrSecretUnavailable):
		return permanent(fmt.Errorf("auth: %w", err))
	case err != nil:
		return fmt.Errorf("auth: read the app credential of %s: %w", in.ID, err)
	}
	return setAuth(h, in, ac.Secret, "the app credential of "+in.ID)
}

// setAuth sets the request's authentication from secret, as integration
// in's auth type says (nil in, or no type: guessed from the secret's keys);
// what names the credential in errors.
func setAuth(h http.Header, in *workflow.Integration, secret map[string]any, what string) error {
	var a manifest.Auth
	if in != nil {
		a = in.Auth
	}
	if err := a.Apply(h, secret); err != nil {
		return permanent(fmt.Errorf("auth: %s has %w", what, err))
	}
	return nil
}

func flatHeaders(h http.Header) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return out
}

func responseBody(contentType string, raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	if strings.Contains(strings.ToLower(contentType), "json") {
		var v any
		if err := json.Unmarshal(raw, &v); err == nil {
			return v
		}
	}
	return string(raw)
}

// emitStep publishes another App Event for the same (or a named) user. Its
// id derives from the run and step, so re-running the step after a crash
// publishes the same event, which JetStream dedupes.
func (s *Service) emitStep(ctx context.Context, x *execution, st *workflow.Step) (any, any, error) {
	payload, err := st.PayloadTemplate().Eval(x.env)
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("payload: %w", err))
	}
	user := x.run.User
	if t := st.UserTemplate(); t != nil {
		if user, err = t.EvalString(x.env); err != nil {
			return nil, nil, permanent(fmt.Errorf("user: %w", err))
		}
	}
	decl, ok := s.opts.Catalog.AppEvent(x.run.Project, st.Event)
	if !ok {
		return nil, nil, permanent(fmt.Errorf("event %q is not declared in project %s", st.Event, x.run.Project))
	}
	pb, err := json.Marshal(payload)
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("payload: %w", err))
	}
	// The router would record the event as validation_failed and run
	// nothing; failing the step here says so where the author looks.
	if probs := decl.ValidatePayload(pb); len(probs) > 0 {
		return nil, nil, permanent(fmt.Errorf("payload does not match the schema of %q: %s", st.Event, probs.Error()))
	}
	now := time.Now()
	ev := &sbv1.TriggerEvent{
		Id:         envelope.DerivedID(x.run.CreatedAt, "emit", x.run.ID, st.ID),
		Project:    x.run.Project,
		Kind:       sbv1.Kind_APP_EVENT,
		Name:       st.Event,
		User:       user,
		Payload:    pb,
		OccurredAt: timestamppb.New(now),
		ReceivedAt: timestamppb.New(now),
	}
	input := map[string]any{"event": st.Event, "user": user, "payload": payload}
	// ChildOf makes the event one hop deeper than this run's trigger: the
	// router stops the chain at its limit, so a workflow emitting its own
	// event ends.
	if _, err := s.opts.Triggers.Publish(ctx, ev, trigger.ChildOf(x.ev)); err != nil {
		if wire.Permanent(err) {
			return input, nil, permanent(fmt.Errorf("publish event: %w", err))
		}
		return input, nil, fmt.Errorf("publish event: %w", err)
	}
	return input, map[string]any{"eventId": ev.Id}, nil
}

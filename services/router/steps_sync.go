package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
	"github.com/switchboard-hq/switchboard/pkg/tracing"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// ErrResponseTemplate marks a response step that could not be rendered;
// the caller gets 500 response_template_failed and the run fails.
var ErrResponseTemplate = errors.New("response_template_failed")

// responseStep renders the synchronous answer. The run checkpoints the step
// before the answer is sent (see runSteps), so a redelivered run never
// answers twice.
func (s *Service) responseStep(_ context.Context, x *execution, st *workflow.Step) (any, any, error) {
	rep, err := renderResponse(x.env, st)
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("%w: %v", ErrResponseTemplate, err))
	}
	rep.RunID = x.run.ID
	out := map[string]any{"status": rep.Status, "headers": rep.Headers, "body": responseBody(rep.Headers["Content-Type"], rep.Body)}
	x.reply = rep
	return nil, out, nil
}

func renderResponse(env map[string]any, st *workflow.Step) (*runs.Reply, error) {
	rep := &runs.Reply{Status: http.StatusOK, Headers: map[string]string{}}
	sv, err := st.StatusTemplate().Eval(env)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	switch n := sv.(type) {
	case int:
		rep.Status = n
	case float64:
		rep.Status = int(n)
	case string:
		if _, err := fmt.Sscanf(n, "%d", &rep.Status); err != nil {
			return nil, fmt.Errorf("status %q is not a number", n)
		}
	default:
		return nil, fmt.Errorf("status %v is not a number", sv)
	}
	if rep.Status < 200 || rep.Status > 599 {
		// 1xx is not an answer the caller can be given (101 would leave
		// the connection hanging in a protocol switch that never comes).
		return nil, fmt.Errorf("status %d is not an HTTP status a response can have (200-599)", rep.Status)
	}
	for k, t := range st.HeaderTemplates() {
		name := http.CanonicalHeaderKey(k)
		v, err := t.EvalString(env)
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", k, err)
		}
		rep.Headers[name] = v
	}
	switch {
	case st.JSONTemplate() != nil:
		v, err := st.JSONTemplate().Eval(env)
		if err != nil {
			return nil, fmt.Errorf("json: %w", err)
		}
		if rep.Body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("json: %w", err)
		}
		if rep.Headers["Content-Type"] == "" {
			rep.Headers["Content-Type"] = "application/json"
		}
	case st.BodyTemplate() != nil:
		v, err := st.BodyTemplate().EvalString(env)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		rep.Body = []byte(v)
		if rep.Headers["Content-Type"] == "" {
			rep.Headers["Content-Type"] = "text/plain; charset=utf-8"
		}
	}
	return rep, nil
}

// sendReply answers the synchronous caller, if one waits. Core NATS: if the
// caller is gone, the answer is dropped and nothing else changes.
func (x *execution) sendReply(rep *runs.Reply) {
	if x.ev.Reply == "" || rep == nil || x.replied {
		return
	}
	x.replied = true
	x.s.reply(x.ev.Reply, rep)
}

// functionStep sends the step's input to a worker on sb.fn.<project>.<name>
// with a NATS request and takes its JSON answer as the output. Workers
// answer with micro's Respond or Error (Nats-Service-Error headers).
func (s *Service) functionStep(ctx context.Context, x *execution, st *workflow.Step) (any, any, error) {
	var input any
	var err error
	if t := st.InputTemplate(); t != nil {
		if input, err = t.Eval(x.env); err != nil {
			return nil, nil, permanent(fmt.Errorf("input: %w", err))
		}
	}
	data, err := json.Marshal(map[string]any{
		"input": input, "runId": x.run.ID, "workflow": x.run.Workflow, "step": st.ID, "user": x.run.User,
	})
	if err != nil {
		return input, nil, permanent(fmt.Errorf("input: %w", err))
	}
	subject := subjects.Function(x.run.Project, st.Function)
	rctx, cancel := context.WithTimeout(ctx, st.StepTimeout())
	defer cancel()
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set("Sb-Run-Id", x.run.ID)
	tracing.Inject(rctx, m.Header) // the worker may continue the step's trace
	resp, err := s.opts.NC.RequestMsgWithContext(rctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return input, nil, fmt.Errorf("no worker is serving function %q (subject %s)", st.Function, subject)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return input, nil, fmt.Errorf("function %q did not answer within %s", st.Function, st.StepTimeout())
	case err != nil:
		return input, nil, fmt.Errorf("function %q: %w", st.Function, err)
	}
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		desc := resp.Header.Get(micro.ErrorHeader)
		err := fmt.Errorf("function %q failed: %s %s", st.Function, code, desc)
		if strings.HasPrefix(code, "4") {
			err = permanent(err) // the worker says the input is wrong: retrying cannot help
		}
		return input, decodeJSON(resp.Data), err
	}
	return input, decodeJSON(resp.Data), nil
}

// Package fnworker serves Switchboard `function` steps from Go, with the
// nats.go micro package.
//
// The contract, for workers in any language: a function step of project P
// named N sends a NATS request to sb.fn.P.N whose data is JSON
//
//	{"input": <the step's rendered input>, "runId": "...", "workflow": "...", "step": "...", "user": "..."}
//
// and takes the reply's data, parsed as JSON, as the step's output. A reply
// with the headers Nats-Service-Error-Code and Nats-Service-Error (what
// micro's Request.Error sets) fails the step: codes starting with 4 fail it
// at once, any other code is retried with the step's backoff. No worker
// listening, or no answer within the step's timeout, are step errors too.
// Workers share the queue group "sb-fn", so running several spreads the load.
package fnworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// QueueGroup is the queue group every worker joins.
const QueueGroup = "sb-fn"

// Request is one call of a function.
type Request struct {
	Input    json.RawMessage `json:"input"`
	RunID    string          `json:"runId"`
	Workflow string          `json:"workflow"`
	Step     string          `json:"step"`
	User     string          `json:"user"`
}

// Handler computes a function's output; it is encoded as JSON.
type Handler func(ctx context.Context, req Request) (any, error)

// Error is a failure with a code the step reports; codes starting with 4
// mean "bad input, do not retry".
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// Options configure Serve.
type Options struct {
	// Project whose functions this worker serves.
	Project string
	// Functions by name ([a-z0-9][a-z0-9_-]*).
	Functions map[string]Handler
	// Name and Version identify the micro service (defaults
	// "switchboard-functions", "1.0.0").
	Name, Version string
	// Timeout bounds one call (default 5 minutes, the longest step timeout).
	Timeout time.Duration
}

// Serve registers every function as a micro endpoint on nc and returns the
// service; Stop it to drain.
func Serve(nc *nats.Conn, opts Options) (micro.Service, error) {
	if opts.Project == "" || len(opts.Functions) == 0 {
		return nil, errors.New("fnworker: Project and Functions are required")
	}
	if opts.Name == "" {
		opts.Name = "switchboard-functions"
	}
	if opts.Version == "" {
		opts.Version = "1.0.0"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	svc, err := micro.AddService(nc, micro.Config{Name: opts.Name, Version: opts.Version, QueueGroup: QueueGroup,
		Description: "Switchboard function steps of project " + opts.Project})
	if err != nil {
		return nil, fmt.Errorf("fnworker: add service: %w", err)
	}
	for name, h := range opts.Functions {
		err := svc.AddEndpoint(name, handle(h, opts.Timeout),
			micro.WithEndpointSubject(subjects.Function(opts.Project, name)))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("fnworker: endpoint %s: %w", name, err)
		}
	}
	return svc, nil
}

func handle(h Handler, timeout time.Duration) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		var req Request
		if err := json.Unmarshal(r.Data(), &req); err != nil {
			_ = r.Error("400", "request is not JSON: "+err.Error(), nil)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := h(ctx, req)
		if err != nil {
			var fe *Error
			if errors.As(err, &fe) {
				_ = r.Error(fe.Code, fe.Description, nil)
			} else {
				_ = r.Error("500", err.Error(), nil)
			}
			return
		}
		if err := r.RespondJSON(out); err != nil {
			_ = r.Error("500", "output is not JSON-encodable: "+err.Error(), nil)
		}
	})
}

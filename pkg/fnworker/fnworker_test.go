package fnworker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/fnworker"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

func connect(t testing.TB, e *broker.Embedded) *nats.Conn {
	t.Helper()
	nc, err := e.Connect("t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func serve(t testing.TB, nc *nats.Conn, opts fnworker.Options) micro.Service {
	t.Helper()
	svc, err := fnworker.Serve(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	// The worker's subscriptions count once the server has them: a request
	// sent before that goes to the workers already registered only.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return svc
}

const reqJSON = `{"input":{"n":21,"tags":["a"]},"runId":"run_abc","workflow":"wf","step":"calc","user":"u1"}`

func TestServe(t *testing.T) {
	nc := brokertest.Start(t).NC
	var gotReq atomic.Pointer[fnworker.Request]
	var deadline atomic.Int64
	serve(t, nc, fnworker.Options{
		Project: "acme",
		Timeout: time.Minute,
		Functions: map[string]fnworker.Handler{
			"double": func(ctx context.Context, req fnworker.Request) (any, error) {
				gotReq.Store(&req)
				if d, ok := ctx.Deadline(); ok {
					deadline.Store(int64(time.Until(d)))
				}
				var in struct {
					N int `json:"n"`
				}
				if err := json.Unmarshal(req.Input, &in); err != nil {
					return nil, &fnworker.Error{Code: "400", Description: "input.n must be a number"}
				}
				return map[string]any{"n": in.N * 2, "runId": req.RunID}, nil
			},
			"bad-input": func(context.Context, fnworker.Request) (any, error) {
				return nil, &fnworker.Error{Code: "400", Description: "no such customer"}
			},
			"wrapped": func(context.Context, fnworker.Request) (any, error) {
				return nil, fmt.Errorf("lookup: %w", &fnworker.Error{Code: "422", Description: "unprocessable"})
			},
			"boom": func(context.Context, fnworker.Request) (any, error) {
				return nil, errors.New("database is down")
			},
			"unencodable": func(context.Context, fnworker.Request) (any, error) {
				return map[string]any{"ch": make(chan int)}, nil
			},
			"null": func(context.Context, fnworker.Request) (any, error) {
				return nil, nil
			},
		},
	})

	cases := []struct {
		name     string
		function string
		data     string
		// reply body (exact JSON) when there is no error code
		body string
		code string
		desc string
	}{
		{"ok", "double", reqJSON, `{"n":42,"runId":"run_abc"}`, "", ""},
		{"bad input from handler", "double", `{"input":"x"}`, "", "400", "input.n must be a number"},
		{"fnworker.Error", "bad-input", reqJSON, "", "400", "no such customer"},
		{"wrapped fnworker.Error", "wrapped", reqJSON, "", "422", "unprocessable"},
		{"generic error", "boom", reqJSON, "", "500", "database is down"},
		{"unencodable output", "unencodable", reqJSON, "", "500", ""},
		{"null output", "null", reqJSON, `null`, "", ""},
		{"request not JSON", "double", `not json`, "", "400", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := nc.Request(subjects.Function("acme", c.function), []byte(c.data), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			code := msg.Header.Get("Nats-Service-Error-Code")
			if code != c.code {
				t.Fatalf("error code = %q, want %q (data %s, error %q)", code, c.code, msg.Data, msg.Header.Get("Nats-Service-Error"))
			}
			if c.code != "" {
				if desc := msg.Header.Get("Nats-Service-Error"); c.desc != "" && desc != c.desc {
					t.Errorf("error = %q, want %q", desc, c.desc)
				}
				if msg.Header.Get("Nats-Service-Error") == "" {
					t.Error("Nats-Service-Error header missing")
				}
				return
			}
			if string(msg.Data) != c.body {
				t.Errorf("reply = %s, want %s", msg.Data, c.body)
			}
		})
	}

	r := gotReq.Load()
	if r == nil {
		t.Fatal("handler never saw a request")
	}
	// The last call of "double" was the {"input":"x"} one; call it again
	// with the full request and check every field arrived.
	if _, err := nc.Request(subjects.Function("acme", "double"), []byte(reqJSON), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r = gotReq.Load()
	want := fnworker.Request{Input: json.RawMessage(`{"n":21,"tags":["a"]}`), RunID: "run_abc", Workflow: "wf", Step: "calc", User: "u1"}
	if !reflect.DeepEqual(*r, want) {
		t.Errorf("request = %+v\nwant %+v", *r, want)
	}
	if d := time.Duration(deadline.Load()); d <= 0 || d > time.Minute {
		t.Errorf("handler deadline in %v, want within the 1m timeout", d)
	}
	// Another project's subject has no responder.
	if _, err := nc.Request(subjects.Function("other", "double"), []byte(reqJSON), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request to another project = %v, want ErrNoResponders", err)
	}
}

func TestServeValidation(t *testing.T) {
	nc := brokertest.Start(t).NC
	h := func(context.Context, fnworker.Request) (any, error) { return 1, nil }
	cases := []struct {
		name string
		opts fnworker.Options
	}{
		{"no project", fnworker.Options{Functions: map[string]fnworker.Handler{"f": h}}},
		{"no functions", fnworker.Options{Project: "acme"}},
		{"bad endpoint name", fnworker.Options{Project: "acme", Functions: map[string]fnworker.Handler{"a b": h}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc, err := fnworker.Serve(nc, c.opts)
			if err == nil {
				_ = svc.Stop()
				t.Fatal("Serve succeeded")
			}
		})
	}
}

func TestServiceInfo(t *testing.T) {
	nc := brokertest.Start(t).NC
	svc := serve(t, nc, fnworker.Options{Project: "acme", Functions: map[string]fnworker.Handler{
		"f": func(context.Context, fnworker.Request) (any, error) { return 1, nil },
	}})
	info := svc.Info()
	if info.Name != "switchboard-functions" || info.Version != "1.0.0" {
		t.Errorf("name/version = %s/%s", info.Name, info.Version)
	}
	if len(info.Endpoints) != 1 {
		t.Fatalf("endpoints = %+v", info.Endpoints)
	}
	ep := info.Endpoints[0]
	if ep.Subject != "sb.fn.acme.f" || ep.QueueGroup != fnworker.QueueGroup || ep.Name != "f" {
		t.Errorf("endpoint = %+v", ep)
	}
}

func TestQueueGroupSpreadsLoad(t *testing.T) {
	srv := brokertest.Start(t)
	var counts [2]atomic.Int64
	for i := range 2 {
		nc := connect(t, srv.Embedded)
		serve(t, nc, fnworker.Options{Project: "acme", Functions: map[string]fnworker.Handler{
			"who": func(context.Context, fnworker.Request) (any, error) {
				counts[i].Add(1)
				return i, nil
			},
		}})
	}
	client := srv.NC
	const n = 50
	replies := map[string]int{}
	for range n {
		msg, err := client.Request(subjects.Function("acme", "who"), []byte(reqJSON), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		replies[string(msg.Data)]++
	}
	a, b := counts[0].Load(), counts[1].Load()
	if a+b != n {
		t.Errorf("handled %d+%d requests, want %d in total (each exactly once)", a, b, n)
	}
	if a == 0 || b == 0 {
		t.Errorf("one worker got nothing: %d / %d", a, b)
	}
	if replies["0"] != int(a) || replies["1"] != int(b) {
		t.Errorf("replies %v do not match handler counts %d/%d", replies, a, b)
	}
}

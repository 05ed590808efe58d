// Command example-worker serves two function steps for project "dev" over
// NATS, as a template for custom code: "slow-echo" answers after the number
// of milliseconds in input.delayMs, and "price" computes input.qty *
// input.unitPrice (a 400 error when either is missing).
//
//	./bin/example-worker --nats nats://127.0.0.1:4222
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-hq/switchboard/pkg/fnworker"
)

func main() {
	url := flag.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	project := flag.String("project", "dev", "project whose functions to serve")
	flag.Parse()
	nc, err := nats.Connect(*url, nats.Name("example-worker"), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	svc, err := fnworker.Serve(nc, fnworker.Options{Project: *project, Functions: map[string]fnworker.Handler{
		"slow-echo": slowEcho,
		"price":     price,
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("serving functions slow-echo and price of project %s on %s\n", *project, *url)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	_ = svc.Stop()
	_ = nc.Drain()
}

func slowEcho(ctx context.Context, req fnworker.Request) (any, error) {
	var in struct {
		DelayMs int `json:"delayMs"`
	}
	_ = json.Unmarshal(req.Input, &in)
	select {
	case <-time.After(time.Duration(in.DelayMs) * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return map[string]any{"echo": json.RawMessage(req.Input), "run": req.RunID}, nil
}

func price(_ context.Context, req fnworker.Request) (any, error) {
	var in struct {
		Qty       *float64 `json:"qty"`
		UnitPrice *float64 `json:"unitPrice"`
	}
	if err := json.Unmarshal(req.Input, &in); err != nil || in.Qty == nil || in.UnitPrice == nil {
		return nil, &fnworker.Error{Code: "400", Description: "input needs qty and unitPrice numbers"}
	}
	return map[string]any{"total": *in.Qty * *in.UnitPrice}, nil
}

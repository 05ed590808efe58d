// Command router runs the router and executor against an external NATS
// (SWITCHBOARD_NATS_URL): the microservice deployment shape.
package main

import (
	"fmt"
	"os"

	"github.com/switchboard-hq/switchboard/pkg/egress"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/services/router"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}

func run() error {
	service.TuneRuntime()
	ctx, stop := service.SignalContext()
	defer stop()
	d, err := service.Bootstrap(ctx, "router", "127.0.0.1:8081")
	if err != nil {
		return err
	}
	svc, err := router.New(router.Options{
		NC: d.NC, JS: d.JS, Catalog: d.Catalog, Metrics: d.Metrics, Logger: d.Logger,
		HTTPClient:  egress.NewClient(egress.Options{AllowPrivate: d.Config.AllowPrivate}),
		Concurrency: d.Config.Concurrency,
	})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	return d.ServeUntilDone(ctx, svc)
}

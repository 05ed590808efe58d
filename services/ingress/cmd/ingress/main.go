// Command ingress runs the ingress service against an external NATS
// (SWITCHBOARD_NATS_URL): the microservice deployment shape. Its run history
// read model lives in SWITCHBOARD_DATA_DIR/history.db.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/history"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/services/ingress"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingress:", err)
		os.Exit(1)
	}
}

func run() error {
	service.TuneRuntime()
	ctx, stop := service.SignalContext()
	defer stop()
	d, err := service.Bootstrap(ctx, "ingress", "127.0.0.1:8080")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Config.DataDir, 0o700); err != nil {
		return err
	}
	hist, err := history.Open(ctx, history.Options{Path: filepath.Join(d.Config.DataDir, "history.db"), JS: d.JS, Logger: d.Logger})
	if err != nil {
		return err
	}
	defer hist.Close()
	hctx, stopHist := context.WithCancel(context.Background())
	defer stopHist()
	histDone := make(chan error, 1)
	go func() { histDone <- hist.Run(hctx) }()

	svc, err := ingress.New(ingress.Options{
		NC: d.NC, JS: d.JS, Catalog: d.Catalog, History: hist, Metrics: d.Metrics, Logger: d.Logger,
		Access:  access.New(access.Options{Catalog: d.Catalog, AdminToken: d.Config.AdminToken}),
		MaxBody: d.Config.MaxBody,
	})
	if err != nil {
		return err
	}
	svc.Register(d.Echo)
	err = d.ServeUntilDone(ctx, svc, service.StopFunc(func(context.Context) error {
		stopHist()
		return <-histDone
	}))
	return err
}

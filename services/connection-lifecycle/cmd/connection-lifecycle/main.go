// Command connection-lifecycle serves the connection lifecycle API
// (connected users, credentials, per-credential workflow enablement) in
// split deployments. Configuration comes from the SWITCHBOARD_* environment.
package main

import (
	"fmt"
	"os"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/service"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "connection-lifecycle:", err)
		os.Exit(1)
	}
}

func run() error {
	service.TuneRuntime()
	ctx, stop := service.SignalContext()
	defer stop()
	d, err := service.Bootstrap(ctx, "connection-lifecycle", "127.0.0.1:8082")
	if err != nil {
		return err
	}
	svc, err := lifecycle.New(lifecycle.Options{
		Catalog: d.Catalog,
		Access:  access.New(access.Options{Catalog: d.Catalog, AdminToken: d.Config.AdminToken}),
		MaxBody: d.Config.MaxBody,
		Logger:  d.Logger,
	})
	if err != nil {
		return err
	}
	svc.Register(d.Echo)
	return d.ServeUntilDone(ctx)
}

package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	sbexamples "github.com/switchboard-hq/switchboard/examples"
	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

func newDevCmd() *cobra.Command {
	var httpAddr, natsAddr, dataDir, examples, listener string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run every Switchboard service in one process with an embedded NATS (the quick start)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := service.ConfigFromEnv(httpAddr)
			if err != nil {
				return err
			}
			// "process", not "service": each role adds its own "service" key,
			// and JSON logs with the key twice are ambiguous to every reader.
			logger := service.NewLogger(cfg.LogLevel).With("process", "switchboard-dev")
			started := time.Now()
			ctx, stop := service.SignalContext()
			defer stop()
			// Without --examples the binary's own copy applies, so dev
			// works from any directory; --examples= (empty) applies none.
			var embedded fs.FS
			if !cmd.Flags().Changed("examples") {
				embedded = sbexamples.FS()
			}
			sys, err := dev.Start(ctx, dev.Options{
				DataDir: dataDir, HTTPAddr: httpAddr, NATSAddr: natsAddr, ExamplesDir: examples, Examples: embedded, ExamplesListener: listener,
				APIKey: os.Getenv("SWITCHBOARD_DEV_API_KEY"), AdminToken: cfg.AdminToken, SecretKey: cfg.SecretKey,
				AllowPrivate: cfg.AllowPrivate, MaxBody: cfg.MaxBody, Concurrency: cfg.Concurrency,
				Limits: cfg.Limits, PprofAddr: cfg.PprofAddr, Logger: logger,
				AdminAddr: cfg.AdminAddr, AdminPprof: cfg.AdminPprof, HTTPLimits: cfg.HTTPLimits,
			})
			if err != nil {
				return err
			}
			logger.Info("ready", "http", sys.HTTPAddr, "nats", sys.NATSURL, "data_dir", dataDir, "startup", time.Since(started).String())
			printQuickStart(cmd.OutOrStdout(), sys, dataDir)
			<-ctx.Done()
			logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownWait)
			defer cancel()
			sys.Stop(sctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP API")
	cmd.Flags().StringVar(&natsAddr, "nats-addr", "127.0.0.1:4222", "address the embedded NATS listens on for outside clients")
	cmd.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir, "where NATS, keys and the read model are kept")
	cmd.Flags().StringVar(&examples, "examples", "", "directory of documents applied to project dev at start (default: the repository's examples/, embedded in the binary; --examples= applies none)")
	cmd.Flags().StringVar(&listener, "examples-listener", examplesListener(),
		"host:port the examples' http steps call instead of "+dev.ExamplesListenerDefault+" (env "+examplesListenerEnv+")")
	return cmd
}

func printQuickStart(w io.Writer, sys *dev.System, dataDir string) {
	base := "http://" + sys.HTTPAddr
	var b strings.Builder
	fmt.Fprintf(&b, "\nSwitchboard dev is ready.\n\n")
	fmt.Fprintf(&b, "  API          %s\n  NATS         %s\n  project      %s\n  data dir     %s\n\n", base, sys.NATSURL, dev.Project, dataDir)
	fmt.Fprintf(&b, "Paste into another shell:\n\n")
	fmt.Fprintf(&b, "  export SB=%s\n", base)
	fmt.Fprintf(&b, "  export KEY=%s\n", sys.APIKey)
	fmt.Fprintf(&b, "  export TOKEN=$(./bin/switchboard token --data-dir %s --user u1 | tail -1)\n\n", dataDir)
	fmt.Fprintf(&b, "  curl -s -X PUT $SB/v1/projects/dev/users/u1 -H \"Authorization: Bearer $KEY\" -d '{}'\n")
	fmt.Fprintf(&b, "  curl -s -X POST $SB/v1/projects/dev/events -H \"Authorization: Bearer $TOKEN\" \\\n      -d '{\"name\":\"Contact Created\",\"payload\":{\"email\":\"ada@example.com\"}}'\n")
	fmt.Fprintf(&b, "  curl -s \"$SB/v1/projects/dev/runs?limit=5\" -H \"Authorization: Bearer $KEY\"\n\n")
	fmt.Fprintf(&b, "See README.md for the full walk-through.\n\n")
	_, _ = io.WriteString(w, b.String())
}

// examplesListenerEnv moves the examples' listener off port 9000 for both
// `switchboard dev` (the applied examples call it) and `switchboard
// echo-server` (listens there), so one export covers the walk-through.
const examplesListenerEnv = "SWITCHBOARD_EXAMPLES_LISTENER"

func examplesListener() string {
	if v := os.Getenv(examplesListenerEnv); v != "" {
		return v
	}
	return dev.ExamplesListenerDefault
}

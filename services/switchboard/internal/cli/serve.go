package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/service"
	"github.com/switchboard-hq/switchboard/services/switchboard/app"
)

func newServeCmd() *cobra.Command {
	var roles []string
	cmd := &cobra.Command{
		Use:   "serve --role ROLE[,ROLE...] | --role all",
		Short: "Run the chosen roles against an external NATS, on one HTTP server (the deployment shape)",
		Long: `Run the chosen roles in one process against the NATS server or cluster at
SWITCHBOARD_NATS_URL, all on one HTTP server at SWITCHBOARD_HTTP_ADDR with one
/healthz and /readyz (/metrics is on the admin listener, SWITCHBOARD_ADMIN_ADDR). Roles, in start order: ` + strings.Join(app.RoleNames(), ", ") + `.
The history role keeps its read model in SWITCHBOARD_DATA_DIR. Every other
setting comes from the SWITCHBOARD_* environment (see the README).

On SIGTERM or SIGINT the process answers /readyz with 503, keeps serving for
SWITCHBOARD_DRAIN_DELAY, stops HTTP intake, stops the roles in reverse order
and drains NATS, all within SWITCHBOARD_SHUTDOWN_TIMEOUT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := app.ParseRoles(strings.Join(roles, ","))
			if err != nil {
				return err
			}
			cfg, err := service.ConfigFromEnv("127.0.0.1:8080")
			if err != nil {
				return err
			}
			list := strings.Join(names, ",")
			// "process", not "service": each role adds its own "service" key,
			// and JSON logs with the key twice are ambiguous to every reader.
			logger := service.NewLogger(cfg.LogLevel).With("process", "switchboard")
			box, err := cfg.SecretBox(logger)
			if err != nil {
				return err
			}
			started := time.Now()
			ctx, stop := service.SignalContext()
			defer stop()
			a, err := app.Start(ctx, app.Options{
				Roles: names, Name: "switchboard " + list,
				NATSURL: cfg.NATSURL, HTTPAddr: cfg.HTTPAddr, DataDir: cfg.DataDir,
				AdminToken: cfg.AdminToken, Secrets: box, MaxBody: cfg.MaxBody,
				AllowPrivate: cfg.AllowPrivate, Concurrency: cfg.Concurrency, Limits: cfg.Limits,
				DrainDelay: cfg.DrainDelay, PprofAddr: cfg.PprofAddr, Logger: logger,
				AdminAddr: cfg.AdminAddr, AdminPprof: cfg.AdminPprof, HTTPLimits: cfg.HTTPLimits,
			})
			if err != nil {
				return err
			}
			logger.Info("ready", "http", a.HTTPAddr(), "nats", cfg.NATSURL, "startup", time.Since(started).String())
			select {
			case <-ctx.Done():
				logger.Info("shutting down", "drain_delay", cfg.DrainDelay.String())
			case <-a.Done():
				logger.Error("the HTTP server stopped; shutting down", "err", a.Err())
			}
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownWait)
			defer cancel()
			return a.Stop(sctx)
		},
	}
	cmd.Flags().StringSliceVar(&roles, "role", nil, "roles to run, comma-separated or repeated: "+strings.Join(app.RoleNames(), ", ")+", or all")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

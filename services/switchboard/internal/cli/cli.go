// Package cli implements the switchboard command line.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/service"

	"github.com/switchboard-hq/switchboard/services/switchboard/client"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// DefaultDataDir is where `switchboard dev` keeps its state unless told otherwise.
const DefaultDataDir = ".switchboard"

// Main runs the CLI and returns the exit code.
func Main(args []string) int {
	service.TuneRuntime()
	root := newRoot()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// newRoot is the command list.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "switchboard",
		Short:         "Switchboard: a self-hosted trigger plane for embedded integration workflows",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDevCmd(), newServeCmd(), newApplyCmd(), newTokenCmd(), newEventsCmd(), newRunsCmd(), newDeadCmd(), newUsersCmd(), newSchedulesCmd(), newWebhooksCmd(), newEchoServerCmd(), newProbeCmd(), newFakeProviderCmd(), newVersionCmd())
	return root
}

// clientFlags are shared by the commands that call the HTTP API.
type clientFlags struct {
	url     string
	apiKey  string
	project string
	dataDir string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "url", envOr("SWITCHBOARD_URL", "http://127.0.0.1:8080"), "Switchboard API base URL (SWITCHBOARD_URL)")
	cmd.Flags().StringVar(&f.apiKey, "api-key", os.Getenv("SWITCHBOARD_API_KEY"), "project API key (SWITCHBOARD_API_KEY; default: the dev key in --data-dir)")
	cmd.Flags().StringVar(&f.project, "project", dev.Project, "project id")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", DefaultDataDir, "dev data dir (to find the dev API key)")
}

func (f *clientFlags) key() (string, error) {
	if f.apiKey != "" {
		return f.apiKey, nil
	}
	b, err := os.ReadFile(filepath.Join(f.dataDir, dev.APIKeyFile))
	if err != nil {
		return "", fmt.Errorf("no API key: pass --api-key or SWITCHBOARD_API_KEY (or run `switchboard dev` with --data-dir %s first)", f.dataDir)
	}
	return strings.TrimSpace(string(b)), nil
}

// api is a client of the API for these flags, with the project's key.
func (f *clientFlags) api() (*client.Client, error) {
	key, err := f.key()
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{BaseURL: f.url, Token: key})
}

// printJSON prints an answer as indented JSON, the way commands without a
// table of their own show it.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

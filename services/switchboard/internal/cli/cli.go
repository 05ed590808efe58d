// Package cli implements the switchboard command line.
package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/service"

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
	root.AddCommand(newDevCmd(), newServeCmd(), newApplyCmd(), newTokenCmd(), newEventsCmd(), newRunsCmd(), newDeadCmd(), newUsersCmd(), newSchedulesCmd(), newWebhooksCmd(), newEchoServerCmd(), newProbeCmd(), newFakeProviderCmd())
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

// call sends a request to the API and prints the JSON answer; a non-2xx
// answer is an error carrying the API's message.
func (f *clientFlags) call(method, path string, contentType string, body []byte, out io.Writer, edit ...func(*http.Request)) error {
	key, err := f.key()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, strings.TrimRight(f.url, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, e := range edit {
		e(req)
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") == nil {
		raw = pretty.Bytes()
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d\n%s", method, path, resp.StatusCode, raw)
	}
	_, err = fmt.Fprintf(out, "%s\n", raw)
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func projectPath(project, rest string) string {
	return "/v1/projects/" + url.PathEscape(project) + rest
}

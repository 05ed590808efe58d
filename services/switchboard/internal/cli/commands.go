package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

func newApplyCmd() *cobra.Command {
	var cf clientFlags
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f PATH",
		Short: "Apply workflow, app event and integration documents (a file or a directory of .yaml/.json files)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f PATH is required")
			}
			body, err := readDocuments(file)
			if err != nil {
				return err
			}
			api, err := cf.api()
			if err != nil {
				return err
			}
			res, err := api.Apply(cmd.Context(), cf.project, body)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "file or directory to apply")
	return cmd
}

// readDocuments joins a file, or every YAML/JSON file of a directory, into
// one multi-document YAML stream (JSON documents are valid YAML).
func readDocuments(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return os.ReadFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(b))
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s has no .yaml, .yml or .json files", path)
	}
	return []byte(strings.Join(docs, "\n---\n")), nil
}

func newTokenCmd() *cobra.Command {
	var project, user, dataDir, baseURL string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token --user U",
		Short: "Print a user token signed with the dev signing key of the data dir (the token alone on the last line)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return fmt.Errorf("--user is required")
			}
			b, err := os.ReadFile(filepath.Join(dataDir, "signing-key.pem"))
			if err != nil {
				return fmt.Errorf("no signing key in %s (start `switchboard dev --data-dir %s` once): %w", dataDir, dataDir, err)
			}
			key, err := auth.ParsePrivateKeyPEM(b)
			if err != nil {
				return err
			}
			if project != dev.Project {
				if err := checkTokenProject(cmd.Context(), baseURL, dataDir, project, &key.PublicKey); err != nil {
					return err
				}
			}
			tok, err := auth.MintUserToken(key, project, user, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&project, "project", dev.Project, "project id (the token's audience)")
	cmd.Flags().StringVar(&user, "user", "", "connected user id (the token's subject)")
	cmd.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir, "dev data dir holding signing-key.pem")
	cmd.Flags().StringVar(&baseURL, "url", envOr("SWITCHBOARD_URL", "http://127.0.0.1:8080"), "API base URL, asked whether a --project other than dev exists (SWITCHBOARD_URL)")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "token lifetime")
	return cmd
}

func newEventsCmd() *cobra.Command {
	events := &cobra.Command{Use: "events", Short: "App events"}
	var cf clientFlags
	var name, user, payload, credential string
	send := &cobra.Command{
		Use:   "send --name NAME --user U [--payload JSON]",
		Short: "Send an app event for a connected user",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !json.Valid([]byte(payload)) {
				return fmt.Errorf("--payload is not valid JSON")
			}
			api, err := cf.api()
			if err != nil {
				return err
			}
			res, err := api.SendEvent(cmd.Context(), cf.project, client.EventRequest{Name: name, User: user, Payload: json.RawMessage(payload)},
				client.EventOptions{Credential: credential})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	cf.register(send)
	send.Flags().StringVar(&name, "name", "", "event name")
	send.Flags().StringVar(&user, "user", "", "connected user id")
	send.Flags().StringVar(&payload, "payload", "{}", "payload (JSON)")
	send.Flags().StringVar(&credential, "credential", "", "only run for this credential")
	events.AddCommand(send, newEventsReplayCmd())
	return events
}

func newRunsCmd() *cobra.Command {
	runsCmd := &cobra.Command{Use: "runs", Short: "Run history"}
	var lf clientFlags
	var workflow, user, status, cursor, listOut string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(listOut); err != nil {
				return err
			}
			api, err := lf.api()
			if err != nil {
				return err
			}
			page, err := api.ListRuns(cmd.Context(), lf.project, client.RunFilter{Workflow: workflow, User: user, Status: runs.Status(status), Cursor: cursor, Limit: limit})
			if err != nil {
				return err
			}
			if listOut == "json" {
				return printJSON(cmd.OutOrStdout(), page)
			}
			return printRunsTable(cmd.OutOrStdout(), page)
		},
	}
	lf.register(list)
	outputFlag(list, &listOut)
	list.Flags().StringVar(&workflow, "workflow", "", "only this workflow")
	list.Flags().StringVar(&user, "user", "", "only this user")
	list.Flags().StringVar(&status, "status", "", "queued, running, succeeded or failed")
	list.Flags().StringVar(&cursor, "cursor", "", "continue after this cursor")
	list.Flags().IntVar(&limit, "limit", 0, "page size (1..500)")

	var gf clientFlags
	var getOut string
	get := &cobra.Command{
		Use:   "get RUN_ID",
		Short: "Show one run with every step",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(getOut); err != nil {
				return err
			}
			api, err := gf.api()
			if err != nil {
				return err
			}
			run, err := api.GetRun(cmd.Context(), gf.project, args[0])
			if err != nil {
				return err
			}
			if getOut == "json" {
				return printJSON(cmd.OutOrStdout(), run)
			}
			return printRunSummary(cmd.OutOrStdout(), run)
		},
	}
	gf.register(get)
	outputFlag(get, &getOut)

	var rf clientFlags
	replay := &cobra.Command{
		Use:   "replay RUN_ID",
		Short: "Start a new run from a run's original trigger (linked to it by replayOf)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := rf.api()
			if err != nil {
				return err
			}
			res, err := api.ReplayRun(cmd.Context(), rf.project, args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	rf.register(replay)
	runsCmd.AddCommand(list, get, replay)
	return runsCmd
}

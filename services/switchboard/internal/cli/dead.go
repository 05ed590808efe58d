package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/services/history"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
)

// newDeadCmd lists a project's dead letters through the history role's API
// (runs that exhausted their retries and trigger messages the router could
// not read, each with its reason) and replays a dead run.
func newDeadCmd() *cobra.Command {
	dead := &cobra.Command{Use: "dead", Short: "Dead letters (the DEAD stream) of a project"}

	var lf clientFlags
	var workflow string
	var limit int
	var asJSON, newest bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List a project's dead letters with their reasons, oldest first (--newest: newest first)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit must be at least 1")
			}
			all, err := lf.deadLetters(cmd.Context(), workflow, newest, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, all)
			}
			printDead(out, all)
			return nil
		},
	}
	lf.register(list)
	list.Flags().StringVar(&workflow, "workflow", "", "only this workflow's failed runs")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many entries")
	list.Flags().BoolVar(&asJSON, "json", false, "print the dead letters as JSON")
	list.Flags().BoolVar(&newest, "newest", false, "newest first")

	var rf clientFlags
	replay := &cobra.Command{
		Use:   "replay SEQ",
		Short: "Start a new run from a dead run's trigger (SEQ is the # that dead list shows)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("SEQ must be a dead letter's number, got %q", args[0])
			}
			api, err := rf.api()
			if err != nil {
				return err
			}
			res, err := api.ReplayDead(cmd.Context(), rf.project, seq)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	rf.register(replay)
	dead.AddCommand(list, replay)
	return dead
}

// deadLetters pages through GET …/dead until limit entries or the end.
func (f *clientFlags) deadLetters(ctx context.Context, workflow string, newest bool, limit int) ([]history.DeadLetter, error) {
	api, err := f.api()
	if err != nil {
		return nil, err
	}
	all := []history.DeadLetter{}
	cursor := ""
	for len(all) < limit {
		page, err := api.ListDead(ctx, f.project, client.DeadFilter{Workflow: workflow, Newest: newest, Cursor: cursor, Limit: min(limit-len(all), history.MaxDeadLimit)})
		if err != nil {
			return nil, err
		}
		all = append(all, page.DeadLetters...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return all, nil
}

func printDead(out io.Writer, all []history.DeadLetter) {
	if len(all) == 0 {
		fmt.Fprintln(out, "no dead letters")
		return
	}
	for _, d := range all {
		fmt.Fprintf(out, "#%d %s %s\n", d.Seq, d.Time.Format(time.RFC3339), d.Subject)
		if d.RunID != "" {
			fmt.Fprintf(out, "  run: %s  user: %s  reason: %s\n", d.RunID, d.User, d.Reason)
		} else {
			fmt.Fprintf(out, "  reason: %s\n", d.Reason)
		}
	}
}

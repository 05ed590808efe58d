package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/runs"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
)

// outputFlag registers -o/--output: "table" (the default, for people) or
// "json" (the API's answer as it is, for scripts).
func outputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "table", "output format: table or json")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("--output %q: want table or json", o)
	}
	return nil
}

// printRunsTable writes one line per run, newest first as the API lists
// them, and the cursor of the next page if there is one.
func printRunsTable(w io.Writer, page *client.RunPage) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tWORKFLOW\tUSER\tSTATUS\tCREATED\tDURATION\tERROR")
	for _, r := range page.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workflow, r.User, r.Status,
			r.CreatedAt.UTC().Format(time.RFC3339), runDuration(r), oneLine(r.Error, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(page.Runs) == 0 {
		fmt.Fprintln(w, "(no runs)")
	}
	if page.NextCursor != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", page.NextCursor)
	}
	return nil
}

// printRunSummary writes a run's header fields and one line per step with
// its status, attempts, duration and error; -o json has the inputs and
// outputs.
func printRunSummary(w io.Writer, r *runs.Run) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	field("Run", r.ID)
	field("Workflow", r.Workflow)
	field("User", r.User)
	field("Credential", r.Credential)
	field("Status", string(r.Status))
	field("Error", r.Error)
	field("Event", r.EventID)
	field("Replay of", r.ReplayOf)
	field("Created", r.CreatedAt.UTC().Format(time.RFC3339Nano))
	if !r.FinishedAt.IsZero() {
		field("Finished", r.FinishedAt.UTC().Format(time.RFC3339Nano))
		field("Duration", runDuration(r))
	}
	if p := r.Pending; p != nil {
		field("Retrying", fmt.Sprintf("step %s after attempt %d at %s: %s", p.Step, p.Attempts, p.RetryAt.UTC().Format(time.RFC3339), p.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tTYPE\tSTATUS\tATTEMPTS\tDURATION\tOUTPUT / ERROR")
	for _, s := range r.Steps {
		detail := s.Error
		if detail == "" {
			detail = compactJSON(s.Output)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Type, s.Status, s.Attempts,
			s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond), oneLine(detail, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Steps) == 0 {
		fmt.Fprintln(w, "(no steps recorded yet)")
	}
	return nil
}

func runDuration(r *runs.Run) string {
	if r.FinishedAt.IsZero() || r.StartedAt.IsZero() {
		return "-"
	}
	return r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
}

func compactJSON(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// oneLine keeps a table row on one line: newlines become spaces and long
// text is cut with an ellipsis.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

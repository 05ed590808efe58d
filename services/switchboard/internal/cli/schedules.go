package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/services/scheduler"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
)

// newSchedulesCmd shows and runs schedule triggers through the scheduler's
// API: the next ticks of every zone a workflow ticks in, and a tick now.
func newSchedulesCmd() *cobra.Command {
	schedules := &cobra.Command{Use: "schedules", Short: "Schedule triggers: next ticks per zone, run a tick now"}

	var nf clientFlags
	var n int
	var asJSON bool
	next := &cobra.Command{
		Use:   "next WORKFLOW",
		Short: "Show each zone's next ticks and the last fired ones with their run counts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := nf.api()
			if err != nil {
				return err
			}
			v, err := api.GetSchedule(cmd.Context(), nf.project, args[0], n)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			// Run counts come from the history role's decision records.
			for i := range v.Zones {
				for j := range v.Zones[i].Recent[:min(1, len(v.Zones[i].Recent))] {
					f := &v.Zones[i].Recent[j]
					if f.Runs == nil {
						f.Runs = tickRuns(cmd.Context(), api, nf.project, f.Events)
					}
				}
			}
			printSchedule(cmd, v)
			return nil
		},
	}
	nf.register(next)
	next.Flags().IntVar(&n, "n", 3, "how many next ticks per zone (1..100)")
	next.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")

	var tf clientFlags
	var user string
	trig := &cobra.Command{
		Use:   "trigger WORKFLOW",
		Short: "Run a tick now, for every enrolled user or one (--user)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := tf.api()
			if err != nil {
				return err
			}
			res, err := api.TriggerSchedule(cmd.Context(), tf.project, args[0], user)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	tf.register(trig)
	trig.Flags().StringVar(&user, "user", "", "only this connected user")
	schedules.AddCommand(next, trig, newBackfillCmd())
	return schedules
}

// newBackfillCmd fires a past range of ticks, a page of them per call,
// with a progress bar over the range's time.
func newBackfillCmd() *cobra.Command {
	var bf clientFlags
	var from, to, user string
	var page int
	var quiet bool
	cmd := &cobra.Command{
		Use:   "backfill WORKFLOW --from T --to T",
		Short: "Fire the ticks of a past range (RFC 3339 times); ticks that ran already do not run again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start, err := time.Parse(time.RFC3339, from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			end, err := time.Parse(time.RFC3339, to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if !end.After(start) {
				return fmt.Errorf("--to must be after --from")
			}
			span := end.Sub(start)
			var bar *progressbar.ProgressBar
			if !quiet {
				bar = progressbar.NewOptions64(1000,
					progressbar.OptionSetDescription("backfilling"),
					progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionFullWidth(),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.ErrOrStderr()) }),
				)
			}
			api, err := bf.api()
			if err != nil {
				return err
			}
			var ticks, events int
			for cur := start; ; {
				res, err := api.BackfillSchedule(cmd.Context(), bf.project, args[0], client.BackfillRequest{From: cur, To: end, User: user, Limit: page})
				if err != nil {
					return err
				}
				ticks, events = ticks+res.Ticks, events+res.Events
				if res.Done || !res.Next.After(cur) {
					break
				}
				cur = res.Next
				if bar != nil {
					_ = bar.Set64(int64(cur.Sub(start) * 1000 / span))
				}
			}
			if bar != nil {
				_ = bar.Finish()
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d ticks, %d events\n", ticks, events)
			return err
		},
	}
	bf.register(cmd)
	cmd.Flags().StringVar(&from, "from", "", "start of the range (exclusive), RFC 3339")
	cmd.Flags().StringVar(&to, "to", "", "end of the range (inclusive), RFC 3339, not in the future")
	cmd.Flags().StringVar(&user, "user", "", "only this connected user")
	cmd.Flags().IntVar(&page, "page", 50, "ticks per call (1..200)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

// tickRuns sums the runs the decisions of a tick's events started; nil
// while one is not decided (or not readable).
func tickRuns(ctx context.Context, api *client.Client, project string, events []string) *int {
	total := 0
	for _, id := range events {
		d, err := api.GetDecision(ctx, project, id)
		if err != nil {
			return nil
		}
		total += d.Summary.Ran
	}
	return &total
}

func printSchedule(cmd *cobra.Command, v *scheduler.ScheduleView) {
	out := cmd.OutOrStdout()
	kind := "fixed zone"
	if v.PerUser {
		kind = "each user's zone"
	}
	fmt.Fprintf(out, "workflow %s: %s (%s)\n", v.Workflow, v.Schedule, kind)
	if len(v.Zones) == 0 {
		fmt.Fprintln(out, "no zone in use: no enrolled user yet")
		return
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ZONE\tNEXT (local)\tNEXT (UTC)\tLAST FIRED\tRUNS")
	for _, z := range v.Zones {
		name := z.Zone
		if name == "" {
			name = "(no zone: " + z.Location + ")"
		}
		loc, err := time.LoadLocation(z.Location)
		if err != nil {
			loc = time.UTC
		}
		last, ran := "-", "-"
		if z.Last != nil {
			last = z.Last.UTC().Format(time.RFC3339)
		}
		if len(z.Recent) > 0 && z.Recent[0].Runs != nil {
			ran = fmt.Sprint(*z.Recent[0].Runs)
		}
		for i, t := range z.Next {
			if i > 0 {
				name, last, ran = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, t.In(loc).Format("2006-01-02 15:04:05 MST"), t.UTC().Format(time.RFC3339), last, ran)
		}
	}
	tw.Flush()
}

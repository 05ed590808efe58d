package cli

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/services/switchboard/client"
	receiver "github.com/switchboard-hq/switchboard/services/webhook-receiver"
)

// newEventsReplayCmd is `switchboard events replay EVENT_ID` (one stored
// trigger event published again as a new event; prints the answer: the new
// event id and the runs it started) or `switchboard events replay
// --integration I --since T`: the integration's stored webhook events in a
// time range, published again page by page (each a new event the router
// decides anew), with a progress bar on stderr.
func newEventsReplayCmd() *cobra.Command {
	var cf clientFlags
	var integration, since, until string
	var page int
	var quiet bool
	cmd := &cobra.Command{
		Use:   "replay (EVENT_ID | --integration hubspot --since 2026-12-01T09:00:00Z [--until …])",
		Short: "Replay one stored event, or an integration's stored webhook events in a time range",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if integration != "" || since != "" || until != "" {
					return errors.New("give an EVENT_ID or --integration with --since, not both")
				}
				api, err := cf.api()
				if err != nil {
					return err
				}
				res, err := api.ReplayEvent(cmd.Context(), cf.project, args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), res)
			}
			if integration == "" || since == "" {
				return errors.New("give an EVENT_ID, or --integration and --since for a time range")
			}
			start, err := parseWhen(since)
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			// Until is fixed at the start, so later pages never reach past
			// the moment the replay began.
			end := time.Now().UTC()
			if until != "" {
				if end, err = parseWhen(until); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			replayID := "cli-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			api, err := cf.api()
			if err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			total := 0
			for cur := start; ; {
				res, err := api.ReplayWebhooks(cmd.Context(), cf.project, integration, client.WebhookReplay{Since: cur, Until: end, ReplayID: replayID, Limit: page})
				if err != nil {
					return err
				}
				total += res.Replayed
				if bar == nil && !quiet {
					bar = progressbar.NewOptions64(int64(total)+int64(res.Remaining),
						progressbar.OptionSetDescription("replaying "+integration),
						progressbar.OptionSetWriter(cmd.ErrOrStderr()),
						progressbar.OptionShowCount(),
						progressbar.OptionThrottle(100*time.Millisecond),
						progressbar.OptionFullWidth(),
						progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.ErrOrStderr()) }),
					)
				}
				if bar != nil {
					_ = bar.Set64(int64(total))
				}
				if res.Next == "" {
					break
				}
				next, err := time.Parse(time.RFC3339Nano, res.Next)
				if err != nil || !next.After(cur) {
					break
				}
				cur = next
			}
			if bar != nil {
				_ = bar.Finish()
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d events replayed\n", total)
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&integration, "integration", "", "integration id (a time-range replay)")
	cmd.Flags().StringVar(&since, "since", "", "start of the range: RFC 3339, or a duration ago (e.g. 2h)")
	cmd.Flags().StringVar(&until, "until", "", "end of the range (default: now)")
	cmd.Flags().IntVar(&page, "page", receiver.MaxReplayPage, "events per request")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

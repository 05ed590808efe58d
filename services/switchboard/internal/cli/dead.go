package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// newDeadCmd lists the DEAD stream: runs that exhausted their retries and
// trigger messages the router could not read, each with its reason.
func newDeadCmd() *cobra.Command {
	dead := &cobra.Command{Use: "dead", Short: "Dead letters (the DEAD stream)"}
	var natsURL string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters with their reasons, oldest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			nc, err := nats.Connect(natsURL, nats.Name("switchboard-cli"))
			if err != nil {
				return fmt.Errorf("connect %s: %w", natsURL, err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			cons, err := js.OrderedConsumer(ctx, subjects.StreamDead, jetstream.OrderedConsumerConfig{})
			if err != nil {
				return fmt.Errorf("read %s: %w", subjects.StreamDead, err)
			}
			out := cmd.OutOrStdout()
			for n := 0; n < limit; n++ {
				m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
				if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
					break
				}
				if err != nil {
					return err
				}
				md, _ := m.Metadata()
				fmt.Fprintf(out, "#%d %s %s\n  run: %s  reason: %s\n", md.Sequence.Stream, md.Timestamp.Format(time.RFC3339),
					m.Subject(), m.Headers().Get("Sb-Run-Id"), m.Headers().Get("Sb-Dead-Reason"))
			}
			return nil
		},
	}
	list.Flags().StringVar(&natsURL, "nats", envOr("SWITCHBOARD_NATS_URL", "nats://127.0.0.1:4222"), "NATS URL (SWITCHBOARD_NATS_URL)")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many entries")
	dead.AddCommand(list)
	return dead
}

package consume_test

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

var errPoison = errors.New("poison message")

func routeMsg(context.Context, jetstream.Msg) error { return nil }

// The router's trigger consumer: a message that can never be routed is
// Permanent (dead-lettered to sb.dead.<project>.trigger at once); any other
// failure is retried with backoff and dead-lettered on the 10th delivery.
func ExampleStart() {
	var js jetstream.JetStream // from broker.JetStream
	ctx := context.Background()
	c, err := consume.Start(ctx, js, consume.Options{
		Name:           "router",
		Stream:         subjects.StreamTriggers,
		FilterSubjects: []string{subjects.TriggersAll},
		AckWait:        30 * time.Second,
		Concurrency:    64,
		MaxAckPending:  64 * 16,
		Middleware:     []consume.Middleware{consume.Timeout(30 * time.Second), consume.KeepAlive(0)},
		DeadLetter: consume.DeadLetterTo(js, func(m jetstream.Msg) string {
			project, _ := subjects.TriggerProject(m.Subject())
			return subjects.DeadTrigger(project)
		}),
		Handler: func(ctx context.Context, m jetstream.Msg) error {
			if err := routeMsg(ctx, m); err != nil {
				if errors.Is(err, errPoison) {
					return consume.Permanent(err)
				}
				return err
			}
			return nil
		},
		Logger: slog.Default(),
	})
	if err != nil {
		return
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Stop(sctx)
	}()
}

// One executor consumer per project, all sharing 256 run slots, so one
// project's burst of runs does not hold up another project's.
func ExampleGroup() {
	var js jetstream.JetStream
	ctx := context.Background()
	g, err := consume.NewGroup(js, consume.GroupOptions{
		Slots: consume.NewSlots(256),
		Consumer: func(project string) consume.Options {
			return consume.Options{
				Name:           "executor",
				Durable:        "executor-" + project,
				Stream:         subjects.StreamRuns,
				FilterSubjects: []string{"sb.run." + project + ".>"},
				Concurrency:    64,
				Middleware:     []consume.Middleware{consume.KeepAlive(0)},
				DeadLetter: consume.DeadLetterTo(js, func(m jetstream.Msg) string {
					return "sb.dead." + project + ".run-message"
				}),
				Handler: func(ctx context.Context, m jetstream.Msg) error { return nil },
			}
		},
	})
	if err != nil {
		return
	}
	_ = g.Add(ctx, "acme")    // as projects appear in the catalog
	_ = g.Remove(ctx, "acme") // as they go; the durable is kept
}

package trigger_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// TestWriteCosts measures what the dedupe designs weighed in "Claims in the
// subject" (dedupe.go) cost the server, 32 publishers on one embedded
// server, each write acknowledged before the next:
//
//   - single: one publish, the event alone;
//   - own subject, no check: the event on a subject of its own (what a
//     new subject per event costs by itself);
//   - in subject: the event on a subject of its own with
//     Nats-Expected-Last-Subject-Sequence: 0 (Dedupe.InSubject);
//   - claim, then publish: a KV Create in sb_dedupe, then the event;
//   - atomic batch: a claim message and the event as one JetStream atomic
//     batch in TRIGGERS (AllowAtomicPublish and AllowMsgTTL switched on for
//     the measurement).
//
// It runs only with SB_TRIGGER_WRITE_COSTS=1 and prints writes per second;
// SB_TRIGGER_WRITE_COSTS_SECONDS (default 3) per case.
func TestWriteCosts(t *testing.T) {
	if os.Getenv("SB_TRIGGER_WRITE_COSTS") == "" {
		t.Skip("set SB_TRIGGER_WRITE_COSTS=1 to measure the dedupe write costs")
	}
	secs, _ := strconv.Atoi(os.Getenv("SB_TRIGGER_WRITE_COSTS_SECONDS"))
	if secs <= 0 {
		secs = 3
	}
	const publishers = 32
	srv := brokertest.Start(t)
	ctx := context.Background()
	js := srv.JS
	st, err := js.Stream(ctx, subjects.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "sb.claim.>")
	cfg.AllowAtomicPublish, cfg.AllowMsgTTL = true, true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, subjects.BucketDedupe)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 600) // about a Stripe delivery's envelope
	event := func(id string, i int64) *nats.Msg {
		m := nats.NewMsg(fmt.Sprintf("sb.trigger.acme.integration.s%d", i%100))
		m.Header.Set(nats.MsgIdHdr, id)
		m.Data = body
		return m
	}
	cases := []struct {
		name  string
		write func(id string, i int64) error
	}{
		{"single", func(id string, i int64) error {
			_, err := js.PublishMsg(ctx, event(id, i))
			return err
		}},
		{"own subject, no check", func(id string, i int64) error {
			m := event(id, i)
			m.Subject += "." + id
			_, err := js.PublishMsg(ctx, m)
			return err
		}},
		{"in subject", func(id string, i int64) error {
			m := event(id, i)
			m.Subject += "." + id
			_, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(0))
			return err
		}},
		{"claim, then publish", func(id string, i int64) error {
			if _, err := kv.Create(ctx, id, body[:100], jetstream.KeyTTL(time.Hour)); err != nil {
				return err
			}
			_, err := js.PublishMsg(ctx, event(id, i))
			return err
		}},
		{"atomic batch", func(id string, i int64) error {
			c := nats.NewMsg("sb.claim.acme." + id)
			c.Header.Set("Nats-Batch-Id", id)
			c.Header.Set("Nats-Batch-Sequence", "1")
			c.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			c.Header.Set(jetstream.MsgTTLHeader, "1h")
			c.Data = body[:100]
			if err := srv.NC.PublishMsg(c); err != nil {
				return err
			}
			m := event(id, i)
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", "2")
			m.Header.Set("Nats-Batch-Commit", "1")
			_, err := js.PublishMsg(ctx, m)
			return err
		}},
	}
	for _, c := range cases {
		var n, failed atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(time.Duration(secs) * time.Second)
		start := time.Now()
		for range publishers {
			wg.Go(func() {
				for time.Now().Before(stop) {
					i := n.Add(1)
					if err := c.write(fmt.Sprintf("%s-%d", c.name[:1], i), i); err != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		t.Logf("%-20s %8.0f writes/s (%d in %s, %d failed)", c.name, float64(n.Load()-failed.Load())/el.Seconds(), n.Load(), el.Round(time.Millisecond), failed.Load())
	}
}

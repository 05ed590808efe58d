package receiver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
)

// TestThroughput measures verified webhooks per second against a baseline
// in one run, on the same embedded NATS, the same HTTP stack and the same
// load:
//
//   - baseline: an echo route that reads the body (capped) and publishes it
//     to JetStream with a Nats-Msg-Id, answering 200 once stored;
//   - receiver: POST /v1/hooks/acme/stripe — Stripe-signed deliveries, each
//     a new event for one of 10,000 connected accounts: resolve, read,
//     verify, extract, publish with the days-long dedupe key, answer.
//
// It runs only with SB_WEBHOOK_BENCH=1: SB_WEBHOOK_BENCH_SECONDS (default
// 10) one-second slices of each side, alternating, with
// SB_WEBHOOK_BENCH_CLIENTS concurrent clients (default 32); it prints both
// rates and their ratio. docs/benchmarks.md has the figures and the command.
func TestThroughput(t *testing.T) {
	if os.Getenv("SB_WEBHOOK_BENCH") == "" {
		t.Skip("set SB_WEBHOOK_BENCH=1 to run the webhook throughput benchmark")
	}
	secs, _ := strconv.Atoi(os.Getenv("SB_WEBHOOK_BENCH_SECONDS"))
	if secs <= 0 {
		secs = 10
	}
	clients, _ := strconv.Atoi(os.Getenv("SB_WEBHOOK_BENCH_CLIENTS"))
	if clients <= 0 {
		clients = 32
	}
	e := newEnvWith(t, func(ec *echo.Echo, nc *nats.Conn) {
		js, _ := nc.JetStream()
		ec.POST("/baseline", func(c *echo.Context) error {
			body, err := httpx.ReadBody(c, maxBody)
			if err != nil {
				return err
			}
			m := nats.NewMsg("sb.trigger.acme.integration.baseline")
			m.Data = body
			m.Header.Set(nats.MsgIdHdr, strconv.FormatUint(rand.Uint64(), 36))
			if _, err := js.PublishMsg(m, nats.Context(c.Request().Context())); err != nil {
				return err
			}
			return c.JSON(http.StatusOK, map[string]string{"status": "accepted"})
		})
	})
	e.secrets("stripe", directory.WebhookSecret{Value: stripeSecret})
	const accounts = 10_000

	// Deliveries are built and signed before the clock starts, so the load
	// generator, which shares the CPU with the server, spends the same on
	// both sides.
	pool, _ := strconv.Atoi(os.Getenv("SB_WEBHOOK_BENCH_POOL"))
	if pool <= 0 {
		pool = 300_000
	}
	type signedBody struct {
		body []byte
		sig  string
	}
	deliveries := make([]signedBody, pool)
	now := time.Now()
	for i := range deliveries {
		body := fmt.Sprintf(`{"id":"evt_bench_%d","object":"event","type":"invoice.paid","account":"acct_%d","data":{"object":{"id":"in_%d","amount_due":4200,"currency":"usd"}}}`,
			i, rand.IntN(accounts), i)
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: stripeSecret, Timestamp: now, Scheme: "v1"})
		deliveries[i] = signedBody{[]byte(body), sp.Header}
	}
	var seq atomic.Uint64
	delivery := func(path string, signed bool) *http.Request {
		d := deliveries[int(seq.Add(1)-1)%len(deliveries)]
		req, _ := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader(d.body))
		req.Header.Set("Content-Type", "application/json")
		if signed {
			req.Header.Set("Stripe-Signature", d.sig)
		}
		return req
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// One slice of load on one path: how many deliveries were answered 200.
	slice := func(path string, signed bool, d time.Duration) (ok, bad int64) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var okN, badN atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for ctx.Err() == nil {
					res, err := hc.Do(delivery(path, signed))
					if err != nil {
						badN.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						okN.Add(1)
					} else {
						badN.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return okN.Load(), badN.Load()
	}
	// Warm both paths (connections, JIT-free Go still warms caches and the
	// stream's first block) before measuring.
	for range 200 {
		for _, p := range []struct {
			path   string
			signed bool
		}{{"/baseline", false}, {"/v1/hooks/acme/stripe", true}} {
			if res, err := hc.Do(delivery(p.path, p.signed)); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}
	}
	// The two sides alternate in one-second slices, so a machine whose
	// load changes during the run (it is shared) weighs on both alike.
	var baseOK, recvOK, failed int64
	var baseTime, recvTime time.Duration
	for range secs {
		start := time.Now()
		ok, bad := slice("/baseline", false, time.Second)
		baseOK, failed, baseTime = baseOK+ok, failed+bad, baseTime+time.Since(start)
		start = time.Now()
		ok, bad = slice("/v1/hooks/acme/stripe", true, time.Second)
		recvOK, failed, recvTime = recvOK+ok, failed+bad, recvTime+time.Since(start)
	}
	if failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
	if int(seq.Load()) > len(deliveries) {
		t.Logf("note: the pool of %d deliveries wrapped; later ones were duplicates (raise SB_WEBHOOK_BENCH_POOL)", len(deliveries))
	}
	base, recv := float64(baseOK)/baseTime.Seconds(), float64(recvOK)/recvTime.Seconds()
	t.Logf("baseline %8.0f req/s (%d in %s), receiver %8.0f req/s (%d in %s), %d clients", base, baseOK, baseTime.Round(time.Millisecond),
		recv, recvOK, recvTime.Round(time.Millisecond), clients)
	t.Logf("ratio receiver/baseline = %.2f", recv/base)
}

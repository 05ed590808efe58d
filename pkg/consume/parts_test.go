package consume_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hq/switchboard/pkg/consume"
	"github.com/switchboard-hq/switchboard/pkg/metrics"
)

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name     string
		b        consume.Backoff
		n        uint64
		min, max time.Duration
	}{
		{"first", consume.Backoff{Initial: 100 * ms, Max: time.Second}, 1, 80 * ms, 100 * ms},
		{"doubles", consume.Backoff{Initial: 100 * ms, Max: time.Second}, 3, 320 * ms, 400 * ms},
		{"capped", consume.Backoff{Initial: 100 * ms, Max: time.Second}, 5, 800 * ms, time.Second},
		{"stays capped", consume.Backoff{Initial: 100 * ms, Max: time.Second}, 1000, 800 * ms, time.Second},
		{"no jitter", consume.Backoff{Initial: 100 * ms, Max: time.Second, Jitter: -1}, 2, 200 * ms, 200 * ms},
		{"more jitter", consume.Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 0.5}, 1, 50 * ms, 100 * ms},
		{"zero value", consume.Backoff{}, 1, 800 * ms, time.Second},
		{"zero value capped", consume.Backoff{}, 20, 4 * time.Minute, 5 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				if d := tc.b.Delay(tc.n); d < tc.min || d > tc.max {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tc.n, d, tc.min, tc.max)
				}
			}
		})
	}
}

func TestClassification(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		permanent bool
	}{
		{"plain", errors.New("x"), false},
		{"permanent", consume.Permanent(errors.New("x")), true},
		{"wrapped permanent", fmt.Errorf("a: %w", consume.Permanent(errors.New("x"))), true},
		{"permanent wins over retry", consume.Retry(consume.Permanent(errors.New("x")), time.Second), true},
		{"retry", consume.Retry(errors.New("x"), time.Second), false},
		{"nil permanent is still an error", consume.Permanent(nil), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || tc.err.Error() == "" {
				t.Fatal("classified error has no text")
			}
			if got := consume.IsPermanent(tc.err); got != tc.permanent {
				t.Fatalf("IsPermanent = %v, want %v", got, tc.permanent)
			}
		})
	}
}

func TestRecoverOutsideAConsumer(t *testing.T) {
	cause := errors.New("inner")
	h := consume.Chain(func(context.Context, jetstream.Msg) error { panic(cause) }, consume.Recover())
	err := h(context.Background(), nil)
	var pe *consume.PanicError
	if !consume.IsPermanent(err) || !errors.As(err, &pe) || !errors.Is(err, cause) {
		t.Fatalf("err = %v, want Permanent(*PanicError) wrapping the panic value", err)
	}
	if !strings.Contains(pe.Stack, "parts_test.go:") || strings.ContainsAny(pe.Stack, "\r\n") {
		t.Fatalf("stack %q: want one line naming the panic site", pe.Stack)
	}
}

// fetchOne publishes data on subject and returns its delivery from a fresh
// durable, for calling a DeadLetter directly.
func (e *env) fetchOne(t *testing.T, durable, subject string, data []byte) jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, workStream, jetstream.ConsumerConfig{Durable: durable, FilterSubject: subject})
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set("X-Test", "kept")
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := cons.Next(jetstream.FetchMaxWait(waitFor))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestDeadLetterTo(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	small, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "SMALLDEAD", Subjects: []string{"smalldead.>"}, MaxMsgSize: 2048, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	toSmall := func(m jetstream.Msg) string { return "smalldead." + strings.TrimPrefix(m.Subject(), "work.") }

	longReason := errors.New("first line\r\nsecond line\t" + strings.Repeat("é", 3000))
	cases := []struct {
		name    string
		subject func(jetstream.Msg) string
		stream  jetstream.Stream
		data    []byte
		reason  error
		calls   int
		check   func(t *testing.T, dead *jetstream.RawStreamMsg)
		wantErr bool
	}{
		{
			name: "reason is one bounded line", subject: deadSubject, stream: e.dead,
			data: []byte("d"), reason: longReason, calls: 1,
			check: func(t *testing.T, dead *jetstream.RawStreamMsg) {
				r := dead.Header.Get(consume.HeaderDeadReason)
				if len(r) > consume.MaxReasonBytes || !utf8.ValidString(r) || strings.ContainsAny(r, "\r\n\t") {
					t.Fatalf("reason of %d bytes, valid UTF-8 %v, %q…", len(r), utf8.ValidString(r), r[:40])
				}
				if !strings.HasPrefix(r, "first line  second line ") || !strings.HasSuffix(r, "…") {
					t.Fatalf("reason %q…: want the start kept and the cut marked", r[:40])
				}
			},
		},
		{
			name: "a retried publish is deduplicated", subject: deadSubject, stream: e.dead,
			data: []byte("d"), reason: errors.New("r"), calls: 3,
			check: func(t *testing.T, dead *jetstream.RawStreamMsg) {
				info, err := e.dead.Info(ctx, jetstream.WithSubjectFilter(dead.Subject))
				if err != nil {
					t.Fatal(err)
				}
				if n := info.State.Subjects[dead.Subject]; n != 1 {
					t.Fatalf("%d dead letters for one message, want 1", n)
				}
			},
		},
		{
			name: "too large for the dead stream keeps a reference", subject: toSmall, stream: small,
			data: []byte(strings.Repeat("x", 4096)), reason: errors.New("r"), calls: 1,
			check: func(t *testing.T, dead *jetstream.RawStreamMsg) {
				if len(dead.Data) != 0 || dead.Header.Get("X-Test") != "" {
					t.Fatalf("oversized copy kept %d bytes of data and X-Test %q", len(dead.Data), dead.Header.Get("X-Test"))
				}
				if !strings.Contains(dead.Header.Get(consume.HeaderDeadTruncated), "4096 bytes") ||
					dead.Header.Get(consume.HeaderDeadSequence) == "" || dead.Header.Get(consume.HeaderDeadReason) != "r" {
					t.Fatalf("headers %v: want the reason, the original's position and why it was cut", dead.Header)
				}
			},
		},
		{
			name: "no subject", subject: func(jetstream.Msg) string { return "" }, stream: e.dead,
			data: []byte("d"), reason: errors.New("r"), calls: 1, wantErr: true,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("dl%d", i)
			m := e.fetchOne(t, key, "work."+key, tc.data)
			dl := consume.DeadLetterTo(e.js, tc.subject)
			for range tc.calls {
				err := dl(ctx, m, tc.reason)
				if tc.wantErr {
					if err == nil {
						t.Fatal("DeadLetter succeeded")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			dead, err := tc.stream.GetLastMsgForSubject(ctx, tc.subject(m))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, dead)
		})
	}
}

// metric reads one sample from reg; ok is false when the series is absent.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (value float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// TestMetrics runs two consumers on the registry pkg/metrics makes, which
// already has a pending gauge of the same name: they share it, and each
// counts its own outcomes.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	reg := metrics.New().Registry
	var calls atomic.Int32
	h := func(_ context.Context, m jetstream.Msg) error {
		calls.Add(1)
		switch string(m.Data()) {
		case "bad":
			return consume.Permanent(errors.New("bad"))
		case "again":
			if md, _ := m.Metadata(); md.NumDelivered == 1 {
				return errors.New("once more")
			}
		}
		return nil
	}
	m1 := e.start(t, consume.Options{Name: "m1", FilterSubjects: []string{"work.m1"}, Registerer: reg, Handler: h})
	e.start(t, consume.Options{Name: "m2", FilterSubjects: []string{"work.m2"}, Registerer: reg, Handler: h})
	e.publish(t, "work.m1", "ok")
	e.publish(t, "work.m1", "bad")
	last := e.publish(t, "work.m1", "again")
	seq2 := e.publish(t, "work.m2", "ok")
	e.waitSettled(t, "m1", last)
	e.waitSettled(t, "m2", seq2)

	cases := []struct {
		name     string
		consumer string
		want     float64
	}{
		{"switchboard_consumer_handled_total", "m1", 4},
		{"switchboard_consumer_acked_total", "m1", 2},
		{"switchboard_consumer_retried_total", "m1", 1},
		{"switchboard_consumer_dead_lettered_total", "m1", 1},
		{"switchboard_consumer_handler_duration_seconds", "m1", 4},
		{"switchboard_consumer_handled_total", "m2", 1},
		{"switchboard_consumer_acked_total", "m2", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/"+tc.consumer, func(t *testing.T) {
			got, ok := metric(t, reg, tc.name, map[string]string{"consumer": tc.consumer})
			if !ok || got != tc.want {
				t.Fatalf("%s{consumer=%q} = %v (present %v), want %v", tc.name, tc.consumer, got, ok, tc.want)
			}
		})
	}
	pending := map[string]string{"stream": workStream, "consumer": "m1"}
	eventually(t, "the pending gauge", func() bool {
		_, ok := metric(t, reg, "switchboard_consumer_pending", pending)
		return ok
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := m1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := metric(t, reg, "switchboard_consumer_pending", pending); ok {
		t.Fatal("a stopped consumer's pending series is still exported")
	}
}

package lifecycle_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/subjects"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// TestPollAtScale is the polling benchmark (skipped unless SB_POLL_BENCH
// is set): SB_POLL_N (default 100000) credentials polled every minute
// against the local fake Salesforce SOQL endpoint by two replicas, for
// SB_POLL_ROUNDS intervals (default 3) after every credential was polled
// once. It reports the lag of each poll behind its due time, the CPU per
// poll (of the whole test process: both replicas, the embedded NATS server
// and the fake provider) and checks that every credential is polled once
// per interval — never twice, none missed.
//
//	SB_POLL_BENCH=1 go test -run TestPollAtScale -v -timeout 1h ./services/connection-lifecycle/
func TestPollAtScale(t *testing.T) {
	if os.Getenv("SB_POLL_BENCH") == "" {
		t.Skip("set SB_POLL_BENCH=1 to run the polling benchmark")
	}
	n := 100_000
	if v, _ := strconv.Atoi(os.Getenv("SB_POLL_N")); v > 0 {
		n = v
	}
	rounds := 3
	if v, _ := strconv.Atoi(os.Getenv("SB_POLL_ROUNDS")); v > 0 {
		rounds = v
	}
	interval := time.Minute
	if v, err := time.ParseDuration(os.Getenv("SB_POLL_INTERVAL")); err == nil && v > 0 {
		interval = v
	}
	e := newPollEnv(t, interval)
	ctx := t.Context()

	start := time.Now()
	pr, pw := io.Pipe()
	go func() {
		enc := json.NewEncoder(pw)
		for i := range n {
			_ = enc.Encode(map[string]any{"id": fmt.Sprintf("u%06d", i), "credentials": []any{map[string]any{
				"id": "c1", "integration": "sfpoll", "providerAccountId": fmt.Sprintf("org-%06d", i),
				"settings": map[string]any{"instanceUrl": e.listsURL},
				"secret":   map[string]any{"accessToken": fmt.Sprintf("tok-%06d", i)},
			}}})
		}
		pw.Close()
	}()
	res, err := e.dir.Import(ctx, "proj", pr, directory.ImportOptions{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("import: %v %+v", err, res.Errors)
	}
	loaded := time.Since(start)

	type obs struct{ due, started time.Time }
	var mu sync.Mutex
	seen := make([][]obs, n)
	record := func(o lifecycle.PollObservation) {
		if o.Outcome == "skipped" || o.Outcome == "unavailable" {
			return
		}
		i, _ := strconv.Atoi(o.User[1:])
		mu.Lock()
		seen[i] = append(seen[i], obs{o.Due, o.Started})
		mu.Unlock()
	}
	edit := func(p *lifecycle.PollOptions) { p.LeaseTTL, p.Observe = lifecycle.DefaultPollLeaseTTL, record }
	e.replica(t, "r1", edit)
	e.replica(t, "r2", edit)

	kv, err := e.srv.JS.KeyValue(ctx, subjects.BucketLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	for {
		keys, err := kv.ListKeysFiltered(ctx, "pt.>")
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for range keys.Keys() {
			c++
		}
		if c == n {
			break
		}
		if time.Since(start) > 30*time.Minute {
			t.Fatalf("%d of %d credentials indexed", c, n)
		}
		time.Sleep(2 * time.Second)
	}
	indexed := time.Since(start)
	polledAll := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range seen {
			if len(seen[i]) == 0 {
				return false
			}
		}
		return true
	}
	for !polledAll() {
		if time.Since(start) > indexed+3*interval {
			t.Fatal("not every credential polled within 3 intervals of being indexed")
		}
		time.Sleep(time.Second)
	}
	firstRound := time.Since(start)

	// The measured window: `rounds` intervals from now.
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	w0 := time.Now()
	time.Sleep(time.Duration(rounds) * interval) // the benchmark's measured window
	w1 := time.Now()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond

	mu.Lock()
	defer mu.Unlock()
	var lags []time.Duration
	polls, twice, missed := 0, 0, 0
	minGap, maxGap := time.Duration(1<<62), time.Duration(0)
	perCred := map[int]int{}
	for i, os := range seen {
		var prev time.Time
		for _, o := range os {
			if !o.started.Before(w0) && o.started.Before(w1) {
				polls++
				perCred[i]++
				lags = append(lags, o.started.Sub(o.due))
			}
			if !prev.IsZero() && o.started.After(w0.Add(-interval)) && o.started.Before(w1) {
				g := o.started.Sub(prev)
				minGap, maxGap = min(minGap, g), max(maxGap, g)
				if g < interval-time.Second {
					twice++
				}
				if g > interval+interval/2 {
					missed++
				}
			}
			prev = o.started
		}
	}
	counts := map[int]int{}
	for i := range n {
		counts[perCred[i]]++
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[int(p*float64(len(lags)-1))].Round(time.Millisecond)
	}
	t.Logf("%d credentials, interval %s, %d replicas: loaded %s, indexed by %s, all polled once by %s; "+
		"window %s: %d polls (%.0f/s), polls per credential %v; gap between two polls of a credential min %s max %s, "+
		"twice within an interval %d, missed an interval %d; lag behind due p50 %s p99 %s max %s; CPU %s = %s per poll (whole process)",
		n, interval, 2, loaded.Round(time.Second), indexed.Round(time.Second), firstRound.Round(time.Second),
		w1.Sub(w0).Round(time.Second), polls, float64(polls)/w1.Sub(w0).Seconds(), counts,
		minGap.Round(time.Millisecond), maxGap.Round(time.Millisecond), twice, missed,
		q(0.5), q(0.99), q(1), cpu.Round(time.Millisecond), (cpu / time.Duration(max(polls, 1))).Round(time.Microsecond))
	if twice > 0 || missed > 0 {
		t.Fatalf("twice %d, missed %d", twice, missed)
	}
}

package lifecycle_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/directory"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
)

// TestRefreshAtScale is the refresh benchmark (skipped unless SB_REFRESH_N
// is set): N OAuth credentials whose tokens expire uniformly within the
// next SB_REFRESH_WINDOW (default 3m), refreshed by two replicas against
// the fake provider (lead 1m, jitter 30s). It checks that every credential
// is refreshed exactly once and reports how far each refresh was from its
// planned time (expiry − lead) and how the refreshes spread per minute.
//
//	SB_REFRESH_N=100000 SB_REFRESH_WINDOW=10m go test -run TestRefreshAtScale -v -timeout 1h ./services/connection-lifecycle/
func TestRefreshAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SB_REFRESH_N"))
	if n <= 0 {
		t.Skip("set SB_REFRESH_N (e.g. 10000) to run the refresh benchmark")
	}
	window := 3 * time.Minute
	if v := os.Getenv("SB_REFRESH_WINDOW"); v != "" {
		var err error
		if window, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	const lead, jitter = time.Minute, 30 * time.Second
	o := newOAuthEnv(t, time.Hour) // a refreshed token lasts an hour: each is refreshed once in the test
	opts := func(opts *lifecycle.Options) {
		opts.RefreshLead, opts.RefreshJitter, opts.RefreshInterval = lead, jitter, time.Second
	}
	ctx := t.Context()

	// Load: users with one credential each, secret and expiry as the
	// connect flow stores them, through the bulk import.
	start := time.Now()
	// Tokens come due only after loading and scheduling are done (about
	// 1 ms per credential here), so the figures are the refresher's, not
	// the load's.
	setup := max(30*time.Second, time.Duration(n)*2*time.Millisecond)
	expiry := make([]time.Time, n)
	pr, pw := io.Pipe()
	go func() {
		enc := json.NewEncoder(pw)
		for i := range n {
			expiry[i] = start.Add(setup + lead + time.Duration(rand.Int64N(int64(window)))).Truncate(time.Second)
			acct := fmt.Sprintf("acct-%06d", i)
			_ = enc.Encode(map[string]any{"id": fmt.Sprintf("u%06d", i), "credentials": []any{map[string]any{
				"id": "c1", "integration": "crm", "providerAccountId": acct,
				"secret": map[string]any{"accessToken": "old", "refreshToken": o.fake.IssueRefreshToken(acct), "tokenType": "Bearer",
					"expiresAt": expiry[i].UTC().Format(time.RFC3339), "oauth": true},
			}}})
		}
		pw.Close()
	}()
	res, err := o.dir.Import(ctx, "proj", pr, directory.ImportOptions{})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("import: %v %+v", err, res.Errors)
	}
	loaded := time.Since(start)
	r1 := o.replicaWith(t, "r1", nil, opts)
	o.replicaWith(t, "r2", nil, opts)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := r1.ScheduleRefresh(ctx, "proj", fmt.Sprintf("u%06d", i), "c1", expiry[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	scheduled := time.Since(start)

	if scheduled > setup {
		t.Logf("loading and scheduling took %s, longer than the %s allowed: the first refreshes are late because of it", scheduled, setup)
	}
	deadline := start.Add(setup + window + lead + 5*time.Minute)
	unique := func() int {
		seen := map[string]bool{}
		for _, r := range o.fake.Refreshes() {
			seen[r.Account] = true
		}
		return len(seen)
	}
	for unique() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d credentials refreshed by %s", unique(), n, deadline.Format(time.TimeOnly))
		}
		time.Sleep(time.Second) // polled until the deadline
	}
	refs := o.fake.Refreshes()
	times := map[string]int{}
	var lags []time.Duration
	perMinute := map[int64]int{}
	for _, r := range refs {
		times[r.Account]++
		var i int
		fmt.Sscanf(r.Account, "acct-%06d", &i)
		lags = append(lags, r.At.Sub(expiry[i].Add(-lead)))
		perMinute[r.At.Unix()/60]++
	}
	twice := 0
	for _, c := range times {
		if c > 1 {
			twice++
		}
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration { return lags[int(p*float64(len(lags)-1))].Round(100 * time.Millisecond) }
	var minutes []int64
	for m := range perMinute {
		minutes = append(minutes, m)
	}
	slices.Sort(minutes)
	spread := ""
	for _, m := range minutes {
		spread += fmt.Sprintf(" %s:%d", time.Unix(m*60, 0).UTC().Format("15:04"), perMinute[m])
	}
	t.Logf("%d credentials, tokens expiring within %s: loaded in %s, scheduled by %s; refreshed %d (missed %d, twice %d); "+
		"refresh vs planned (expiry − %s, jitter up to %s earlier): min %s p50 %s p99 %s max %s; per minute:%s; provider refused %d",
		n, window, loaded.Round(time.Millisecond), scheduled.Round(time.Millisecond), len(times), n-len(times), twice,
		lead, jitter, q(0), q(0.5), q(0.99), q(1), spread, o.fake.Stats()["refused"])
	if len(times) != n || twice > 0 {
		t.Fatalf("missed %d, refreshed twice %d", n-len(times), twice)
	}
	for _, l := range lags {
		// Never after the token expired.
		if l > lead {
			t.Fatalf("a refresh came %s after its planned time, past the expiry", l)
		}
	}
}

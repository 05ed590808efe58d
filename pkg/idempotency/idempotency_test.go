package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/idempotency"
)

func openStore(t testing.TB) *idempotency.Store {
	t.Helper()
	s, err := idempotency.Open(context.Background(), brokertest.Start(t).JS)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var created = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func TestClaim(t *testing.T) {
	s := openStore(t)
	ctx := ctxT(t)
	fp := idempotency.Fingerprint([]byte("POST"), []byte(`{"a":1}`))
	first := idempotency.Record{Fingerprint: fp, EventID: "evt1", RunID: "run_1", CreatedAt: created}

	steps := []struct {
		name    string
		scope   string
		key     string
		rec     idempotency.Record
		want    *idempotency.Record
		wantErr error
	}{
		{"first claim owns the key", "acme.events", "k1", first, nil, nil},
		{"same request gets the original", "acme.events", "k1", idempotency.Record{Fingerprint: fp, EventID: "evt2"}, &first, nil},
		{"different request is refused", "acme.events", "k1", idempotency.Record{Fingerprint: idempotency.Fingerprint([]byte("POST"), []byte(`{"a":2}`)), EventID: "evt3"}, &first, idempotency.ErrReused},
		{"other key is free", "acme.events", "k2", idempotency.Record{Fingerprint: fp, EventID: "evt4"}, nil, nil},
		{"same key in another scope is free", "other.events", "k1", idempotency.Record{Fingerprint: fp, EventID: "evt5"}, nil, nil},
		{"odd key characters", "acme.events", "a key with spaces.and.dots/*>", idempotency.Record{Fingerprint: fp, EventID: "evt6"}, nil, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.Claim(ctx, st.scope, st.key, st.rec)
			if !errors.Is(err, st.wantErr) || (err != nil) != (st.wantErr != nil) {
				t.Fatalf("Claim err = %v, want %v", err, st.wantErr)
			}
			if (got == nil) != (st.want == nil) || (got != nil && *got != *st.want) {
				t.Errorf("Claim = %+v, want %+v", got, st.want)
			}
		})
	}
}

func TestConcurrentClaims(t *testing.T) {
	s := openStore(t)
	ctx := ctxT(t)
	const n = 50
	fp := idempotency.Fingerprint([]byte("same"))
	var wg sync.WaitGroup
	results := make([]*idempotency.Record, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = s.Claim(ctx, "acme.events", "dup", idempotency.Record{Fingerprint: fp, EventID: fmt.Sprintf("evt-%d", i)})
		}()
	}
	close(start)
	wg.Wait()
	owners := 0
	var winner string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if results[i] == nil {
			owners++
			winner = fmt.Sprintf("evt-%d", i)
		}
	}
	if owners != 1 {
		t.Fatalf("%d claims owned the key, want exactly 1", owners)
	}
	// Every other claim was answered with the winner's record.
	for i := range n {
		if results[i] != nil && results[i].EventID != winner {
			t.Errorf("claim %d got event %s, want the winner's %s", i, results[i].EventID, winner)
		}
	}
}

func TestRelease(t *testing.T) {
	s := openStore(t)
	ctx := ctxT(t)
	rec := idempotency.Record{Fingerprint: "f1", EventID: "e1"}
	if prev, err := s.Claim(ctx, "sc", "k", rec); prev != nil || err != nil {
		t.Fatalf("first Claim = %v, %v", prev, err)
	}
	if err := s.Release(ctx, "sc", "k"); err != nil {
		t.Fatal(err)
	}
	// After a release the key is free again, even for another request.
	rec2 := idempotency.Record{Fingerprint: "f2", EventID: "e2"}
	if prev, err := s.Claim(ctx, "sc", "k", rec2); prev != nil || err != nil {
		t.Fatalf("Claim after Release = %v, %v", prev, err)
	}
	prev, err := s.Claim(ctx, "sc", "k", rec)
	if !errors.Is(err, idempotency.ErrReused) || prev == nil || prev.EventID != "e2" {
		t.Errorf("Claim of the old request = %+v, %v; want e2 and ErrReused", prev, err)
	}
	// Releasing an unknown key is not an error.
	if err := s.Release(ctx, "sc", "never"); err != nil {
		t.Errorf("Release(never) = %v", err)
	}
	// Release, claim, release, claim: each cycle starts fresh.
	for i := range 3 {
		if err := s.Release(ctx, "sc", "k"); err != nil {
			t.Fatal(err)
		}
		if prev, err := s.Claim(ctx, "sc", "k", rec); prev != nil || err != nil {
			t.Fatalf("cycle %d: Claim = %v, %v", i, prev, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	cases := []struct {
		name string
		a, b [][]byte
		same bool
	}{
		{"equal", [][]byte{[]byte("a"), []byte("b")}, [][]byte{[]byte("a"), []byte("b")}, true},
		{"different", [][]byte{[]byte("a")}, [][]byte{[]byte("b")}, false},
		{"boundaries", [][]byte{[]byte("ab"), []byte("c")}, [][]byte{[]byte("a"), []byte("bc")}, false},
		{"empty part", [][]byte{[]byte("a"), nil}, [][]byte{[]byte("a")}, false},
		{"nil and empty", [][]byte{nil}, [][]byte{{}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fa, fb := idempotency.Fingerprint(c.a...), idempotency.Fingerprint(c.b...)
			if (fa == fb) != c.same {
				t.Errorf("Fingerprint equal = %v, want %v", fa == fb, c.same)
			}
			if len(fa) != 64 {
				t.Errorf("Fingerprint length = %d", len(fa))
			}
		})
	}
}

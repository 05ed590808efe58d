package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/broker"
	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/idempotency"
)

// TestTTL: the key TTL is the one provisioned for the bucket
// (SWITCHBOARD_IDEMPOTENCY_TTL), the stock 24 h by default.
func TestTTL(t *testing.T) {
	srv := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := idempotency.Open(ctx, srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	if s.TTL() != 24*time.Hour {
		t.Fatalf("TTL %s, want the default 24h", s.TTL())
	}
	if err := broker.Provision(ctx, srv.JS, broker.Limits{IdempotencyTTL: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if s, err = idempotency.Open(ctx, srv.JS); err != nil {
		t.Fatal(err)
	}
	if s.TTL() != 2*time.Hour {
		t.Fatalf("TTL %s, want the configured 2h", s.TTL())
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

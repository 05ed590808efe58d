package idempotency_test

import (
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/idempotency"
)

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
